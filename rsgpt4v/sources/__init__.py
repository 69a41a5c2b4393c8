"""Registry of source adapters: the built-in ones and plugins from the `rsgpt4v.sources` entry points."""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points
from importlib.resources import files
from pathlib import Path

from rsgpt4v.sources.base import Source, SourceError

_BUILTIN = {
    "dota": "rsgpt4v.sources.dota:DOTA",
    "dior": "rsgpt4v.sources.dior:DIOR",
    "dior-rsvg": "rsgpt4v.sources.dior:DIORRSVG",
    "fair1m": "rsgpt4v.sources.fair1m:FAIR1M",
    "coco": "rsgpt4v.sources.coco:COCO",
    "rsicd": "rsgpt4v.sources.captions:RSICD",
    "ucm-captions": "rsgpt4v.sources.captions:UCMCaptions",
    "sydney-captions": "rsgpt4v.sources.captions:SydneyCaptions",
    "rsitmd": "rsgpt4v.sources.captions:RSITMD",
    "nwpu-captions": "rsgpt4v.sources.captions:NWPUCaptions",
    "rsvqa-lr": "rsgpt4v.sources.rsvqa:RSVQALR",
    "rsvqa-hr": "rsgpt4v.sources.rsvqa:RSVQAHR",
    "floodnet-vqa": "rsgpt4v.sources.floodnet:FloodNetVQA",
    "rsivqa": "rsgpt4v.sources.rsivqa:RSIVQA",
    "nwpu-resisc45": "rsgpt4v.sources.scenes:NWPURESISC45",
    "aid": "rsgpt4v.sources.scenes:AID",
    "ucm": "rsgpt4v.sources.scenes:UCMerced",
}


def _load(target: str) -> type[Source]:
    module, _, attr = target.partition(":")
    return getattr(import_module(module), attr)


def available() -> dict[str, type[Source]]:
    """Every adapter by `--source` name; a plugin may not shadow a built-in."""
    found = {name: _load(target) for name, target in _BUILTIN.items() if _importable(target)}
    for ep in entry_points(group="rsgpt4v.sources"):
        if ep.name not in found:
            found[ep.name] = ep.load()
    return found


def _importable(target: str) -> bool:
    try:
        _load(target)
    except (ImportError, AttributeError):
        return False
    return True


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
