"""Recipes: the mix of a unified dataset as a YAML file (which sources, their roots and options, the
LLM stages each gets, per-task caps, image fractions, weights, the leakage policy), validated with
the file's own line numbers in every error.

A recipe is named by a path or by the name of a bundled one (`configs/recipes/<name>.yaml`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rsgpt4v.core.problems import UnreadableYAML, line_of, read_yaml
from rsgpt4v.core.resources import resource_dir

Stage = Literal["local", "global", "dialogue"]
LeakagePolicy = Literal["drop-from-train", "report", "fail"]
# Bounds far past any real mix and far below what hurts: a weight of 1e12 would write a training
# file of terabytes, a cap or image count past a billion is a typo.
MAX_WEIGHT = 100
MAX_COUNT = 10**9
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]


class RecipeError(Exception):
    """A recipe that cannot be read or used; the message starts with FILE:LINE."""


class _Strict(BaseModel):
    # strict: `true` is not a count, nor "3" a weight; finite numbers only.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class RecipeSource(_Strict):
    """One source of the mix."""

    source: str = Field(description="an adapter name from `rsgpt4v sources`")
    root: str = Field(description="folder under --data, or an absolute path")
    options: dict[str, Any] = Field(default_factory=dict, description="the adapter's -O options")
    stages: list[Stage] | None = Field(default=None, description="LLM stages; default the config's; [] = none")
    splits: list[str] | None = Field(default=None, description="only these splits; default all")
    caps: dict[str, Count] = Field(default_factory=dict, description="at most this many records per task")
    fraction: float = Field(default=1.0, gt=0, le=1, description="seeded share of the images to use")
    max_images: int | None = Field(default=None, ge=1, le=MAX_COUNT,
                                   description="at most this many images, seeded choice")
    weight: float = Field(default=1.0, ge=0, le=MAX_WEIGHT,
                          description="training records are repeated (or thinned) by this")
    line: int = Field(default=0, exclude=True)


class Recipe(_Strict):
    """A whole mix: sources in order, the seed of its order and sampling, the leakage policy."""

    seed: int = Field(default=0, ge=0, lt=2**63)
    leakage: LeakagePolicy = "drop-from-train"
    near_duplicate_bits: int = Field(default=8, ge=0, le=16,
                                     description="perceptual hashes this many bits apart are the same image")
    judge: str | None = Field(default=None, description="the judge model of every source (judge.model); --judge "
                                                        "overrides it")
    sources: list[RecipeSource] = Field(min_length=1)
    path: str = Field(default="", exclude=True)

    def where(self, line: int) -> str:
        return f"{self.path}:{line}"


_EXPECTED = {"int_type": "a whole number", "int_parsing": "a whole number", "int_from_float": "a whole number",
             "float_type": "a number", "float_parsing": "a number", "finite_number": "a finite number",
             "string_type": "text", "list_type": "a list", "dict_type": "a mapping", "bool_type": "true or false"}


def _message(error: dict[str, Any]) -> str:
    kind = error["type"]
    got = error.get("input")
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {got!r}"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "literal_error":
        return f"{error['msg'].lower()}, got {got!r}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
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
    """The recipe at `name` (a path or a bundled name), read by the strict loader and validated;
    RecipeError naming FILE:LINE."""
    path = find_recipe(name)
    try:
        data, lines = read_yaml(path, "recipe")
    except UnreadableYAML as exc:
        raise RecipeError(str(exc) if exc.line is not None else f"{path}:1: {exc.reason}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path}:1: a recipe is a mapping with a `sources:` list")
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        raise RecipeError(f"{path}:{line_of(lines, loc) or 1}: {_dotted(loc)}: {_message(first)}") from None
    recipe.path = str(path)
    for i, entry in enumerate(recipe.sources):
        entry.line = lines[("sources", i)]
    return recipe
