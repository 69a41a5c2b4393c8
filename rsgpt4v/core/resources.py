"""Where the editable resources live: prompts/ and configs/ inside the wheel, or beside a source tree."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def resource_dir(name: str) -> Path:
    """`prompts` or `configs`: packaged into the wheel, or at the top of a source checkout."""
    packaged = Path(str(files("rsgpt4v") / name))
    if packaged.is_dir():
        return packaged
    source_tree = Path(__file__).resolve().parents[2] / name
    if source_tree.is_dir():
        return source_tree
    raise FileNotFoundError(f"rsgpt4v resource folder {name!r} is missing from this installation")
