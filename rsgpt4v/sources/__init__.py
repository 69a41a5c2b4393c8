"""Registry of source adapters: the built-in ones and plugins from the `rsgpt4v.sources` entry points."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from importlib import import_module
from importlib.metadata import entry_points
from importlib.resources import files
from pathlib import Path
from typing import get_args, get_origin, get_type_hints

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




def adapter_options(cls: type[Source]) -> dict[str, inspect.Parameter]:
    """The keyword options an adapter takes beyond root and split (its constructor's parameters)."""
    params = inspect.signature(cls.__init__).parameters
    return {name: p for name, p in params.items() if name not in ("self", "root", "split")}


def parse_options(cls: type[Source], pairs: list[str]) -> dict[str, object]:
    """`--option KEY=VALUE` pairs as constructor arguments, converted by the parameter's type:
    booleans (true/false), numbers, paths, and mappings written `KEY:PATH,KEY:PATH`."""
    known = adapter_options(cls)
    hints = get_type_hints(cls.__init__)
    parsed: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in known:
            accepted = ", ".join(known) or "none"
            raise SourceError(f"--option {pair!r}: {cls.name} takes KEY=VALUE with KEY one of: {accepted}")
        parsed[key] = _convert(hints.get(key, str), value.strip(), pair)
    return parsed


def _convert(hint: object, value: str, pair: str) -> object:
    kinds = [hint, *get_args(hint)]
    if bool in kinds:
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise SourceError(f"--option {pair!r}: expected true or false")
        return value.lower() in ("true", "1", "yes")
    if int in kinds:
        try:
            return int(value)
        except ValueError:
            raise SourceError(f"--option {pair!r}: expected a whole number") from None
    if any(get_origin(k) in (Mapping, dict) for k in kinds):
        entries = [e.partition(":") for e in value.split(",") if e]
        if any(not sep for _, sep, _ in entries):
            raise SourceError(f"--option {pair!r}: expected KEY:PATH,KEY:PATH")
        return {k.strip(): Path(v.strip()) for k, _, v in entries}
    if Path in kinds:
        return Path(value)
    return value


__all__ = ["Source", "SourceError", "adapter_options", "available", "get_source", "parse_options", "sample_root"]
