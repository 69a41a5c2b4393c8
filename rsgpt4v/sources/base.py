"""The interface every source adapter implements, and helpers adapters share.

An adapter reads one dataset family from its original on-disk layout and yields, in a stable
order, `Sample`s and `Issue`s (skipped samples or lines, warnings); it never raises on bad data.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from rsgpt4v.schema import Issue, Sample


class SourceError(Exception):
    """The root given cannot be read as this source at all (wrong folder, nothing found)."""


class Source(ABC):
    """A dataset family on disk.

    Subclasses set `name` (the `--source` value), `description` (one line for `rsgpt4v sources`),
    `vocabulary` (known category names, may be empty) and `task_kind` ("detection", "caption", ...).
    """

    name: ClassVar[str]
    description: ClassVar[str]
    vocabulary: ClassVar[tuple[str, ...]] = ()
    task_kind: ClassVar[str] = "detection"

    def __init__(self, root: Path, split: str | None = None) -> None:
        self.root = Path(root)
        self.split = split
        if not self.root.is_dir():
            raise SourceError(f"--root {self.root} is not a folder")

    @abstractmethod
    def __iter__(self) -> Iterator[Sample | Issue]:
        """Samples and issues, in a deterministic order."""

    def relative(self, path: Path) -> str:
        """`path` relative to the root, with forward slashes, for provenance and messages."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def inside_root(root: Path, relative: str) -> Path | None:
    """`root / relative`, or None when the path is absolute or climbs out of `root` (`../`)."""
    candidate = Path(relative)
    if candidate.is_absolute() or ".." in candidate.parts:
        return None
    return root / candidate


def find_image(folder: Path, name: str) -> Path | None:
    """`folder/name`, or the same stem with another image suffix (copies of UCM and Sydney
    reference `.jpg` where the files are `.tif`, and the reverse)."""
    exact = folder / name
    if exact.is_file():
        return exact
    stem = Path(name).stem
    for suffix in IMAGE_SUFFIXES:
        for cased in (suffix, suffix.upper()):
            candidate = folder / f"{stem}{cased}"
            if candidate.is_file():
                return candidate
    return None


def read_json(path: Path, name: str) -> tuple[object, Issue | None]:
    """Parsed JSON, or an Issue naming the file (and the line of a syntax error)."""
    import json

    try:
        return json.loads(path.read_bytes().decode("utf-8-sig")), None
    except OSError as exc:
        return None, Issue(kind="skip", file=name, reason=f"cannot read file ({exc.strerror})")
    except UnicodeDecodeError as exc:
        return None, Issue(kind="skip", file=name, reason=f"not UTF-8 text ({exc.reason})")
    except json.JSONDecodeError as exc:
        return None, Issue(kind="skip", file=name, line=exc.lineno, reason=f"invalid JSON: {exc.msg}")
