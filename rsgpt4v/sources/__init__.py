"""Registry of source adapters: the built-in ones and plugins from the `rsgpt4v.sources` entry points."""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points
from importlib.resources import files
from pathlib import Path

from rsgpt4v.sources.base import Source, SourceError

_BUILTIN = {
    "dota": "rsgpt4v.sources.dota:DOTA",
}


def _load(target: str) -> type[Source]:
    module, _, attr = target.partition(":")
    return getattr(import_module(module), attr)


def available() -> dict[str, type[Source]]:
    """Every adapter by `--source` name; a plugin may not shadow a built-in."""
    found = {name: _load(target) for name, target in _BUILTIN.items()}
    for ep in entry_points(group="rsgpt4v.sources"):
        if ep.name not in found:
            found[ep.name] = ep.load()
    return found


def get_source(name: str) -> type[Source]:
    adapters = available()
    if name not in adapters:
        raise SourceError(f"unknown source {name!r}; choose from: {', '.join(sorted(adapters))}")
    return adapters[name]


def sample_root(name: str) -> Path:
    """The bundled synthetic sample for a source, shipped inside the package."""
    root = Path(str(files("rsgpt4v") / "sample_data" / name))
    if not root.is_dir():
        raise SourceError(f"no bundled sample for source {name!r}")
    return root


__all__ = ["Source", "SourceError", "available", "get_source", "sample_root"]
