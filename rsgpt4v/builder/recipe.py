"""Recipes: the mix of a unified dataset as a YAML file (which sources, their roots and options, the
LLM stages each gets, per-task caps, image fractions, weights, the leakage policy), validated with
the file's own line numbers in every error.

A recipe is named by a path or by the name of a bundled one (`configs/recipes/<name>.yaml`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rsgpt4v.core.resources import resource_dir

Stage = Literal["local", "global", "dialogue"]
LeakagePolicy = Literal["drop-from-train", "report", "fail"]


class RecipeError(Exception):
    """A recipe that cannot be read or used; the message starts with FILE:LINE."""


class RecipeSource(BaseModel):
    """One source of the mix."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(description="an adapter name from `rsgpt4v sources`")
    root: str = Field(description="folder under --data, or an absolute path")
    options: dict[str, Any] = Field(default_factory=dict, description="the adapter's -O options")
    stages: list[Stage] | None = Field(default=None, description="LLM stages; default the config's; [] = none")
    splits: list[str] | None = Field(default=None, description="only these splits; default all")
    caps: dict[str, int] = Field(default_factory=dict, description="at most this many records per task")
    fraction: float = Field(default=1.0, gt=0, le=1, description="seeded share of the images to use")
    max_images: int | None = Field(default=None, ge=1, description="at most this many images, seeded choice")
    weight: float = Field(default=1.0, ge=0, description="training records are repeated (or thinned) by this")
    line: int = Field(default=0, exclude=True)

    @field_validator("caps")
    @classmethod
    def _caps_not_negative(cls, caps: dict[str, int]) -> dict[str, int]:
        for task, n in caps.items():
            if n < 0:
                raise ValueError(f"cap of {task!r} must be 0 or more, not {n}")
        return caps


class Recipe(BaseModel):
    """A whole mix: sources in order, the seed of its order and sampling, the leakage policy."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    leakage: LeakagePolicy = "drop-from-train"
    near_duplicate_bits: int = Field(default=8, ge=0, le=16,
                                     description="perceptual hashes this many bits apart are the same image")
    sources: list[RecipeSource] = Field(min_length=1)
    path: str = Field(default="", exclude=True)

    def where(self, line: int) -> str:
        return f"{self.path}:{line}"


def _lines(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int]) -> None:
    """Line (1-based) of every value in the composed YAML, keyed by its path of keys and indices."""
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else str(key.value)
            _lines(value, (*path, name), out)
            out[(*path, name)] = key.start_mark.line + 1  # a key's own line, where its value may start below
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, (*path, i), out)


def _line_of(lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return 1


def _message(error: dict[str, Any]) -> str:
    kind = error["type"]
    got = error.get("input")
    if kind.startswith("int_"):
        return f"expected a whole number, got {got!r}"
    if kind.startswith("float_"):
        return f"expected a number, got {got!r}"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "literal_error":
        return f"{error['msg'].lower()}, got {got!r}"
    return error["msg"].removeprefix("Value error, ")


def _dotted(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def find_recipe(name: str) -> Path:
    """A recipe path as given, or the bundled recipe of that name."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    bundled = resource_dir("configs") / "recipes" / f"{name}.yaml"
    if not bundled.is_file():
        names = sorted(p.stem for p in (resource_dir("configs") / "recipes").glob("*.yaml"))
        raise RecipeError(f"{name}: no such recipe file, and no bundled recipe of that name "
                          f"(bundled: {', '.join(names)})")
    return bundled


def load_recipe(name: str) -> Recipe:
    """The recipe at `name` (a path or a bundled name), validated; RecipeError naming FILE:LINE."""
    path = find_recipe(name)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RecipeError(f"{path}: cannot read recipe ({exc.strerror})") from None
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise RecipeError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    if not isinstance(data, dict) or node is None:
        raise RecipeError(f"{path}:1: a recipe is a mapping with a `sources:` list")
    lines: dict[tuple[Any, ...], int] = {}
    _lines(node, (), lines)
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        raise RecipeError(f"{path}:{_line_of(lines, loc)}: {_dotted(loc)}: {_message(first)}") from None
    recipe.path = str(path)
    for i, entry in enumerate(recipe.sources):
        entry.line = lines[("sources", i)]
    return recipe
