"""Prices and token estimates: what a request will cost before it is sent, and what a run did cost.

The table is configs/prices.yaml, dated and editable; a model matches the longest key its name
starts with. Each entry carries the model family's image-token rule; models you serve yourself
(Qwen2.5-VL, InternVL, LLaVA-OneVision) have a rule and no price. Unpriced and unknown models cost
None: estimates then show tokens (and hours at a stated throughput) only.
"""

from __future__ import annotations

import base64
import datetime
import io
from pathlib import Path
from typing import Annotated, Any, Literal

from PIL import Image
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Tag,
    ValidationError,
    field_validator,
)

from rsgpt4v.core.problems import UnreadableYAML, read_yaml, validation_line, validation_problem
from rsgpt4v.core.resources import resource_dir
from rsgpt4v.llm.image_tokens import (
    image_tokens,
    internvl_tokens,
    llava_onevision_tokens,
    patch_tokens,
    qwen2_vl_tokens,
)

_UNREADABLE_IMAGE = (2048, 2048)


class PriceError(Exception):
    """A price table that cannot be read or does not have the shape of configs/prices.yaml."""


# USD per 1M tokens, or the batch fraction of the live price: a finite number, not negative.
Price = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _Entry(BaseModel):
    # Frozen, and unknown keys refused: a misspelt key would otherwise leave a default in force.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)


class TileRule(_Entry):
    """OpenAI's 512-pixel tiles: `base` + `tile` per tile (GPT-4o, GPT-4.1, GPT-4o-mini's dearer tiles)."""

    formula: Literal["tiles"] = "tiles"
    base: NonNegativeInt = 85
    tile: NonNegativeInt = 170

    def tokens(self, width: int, height: int, detail: str) -> int:
        return image_tokens(width, height, detail, self.base, self.tile)


class PatchRule(_Entry):
    """OpenAI's 32-pixel patches, up to `cap`, times `multiplier` (GPT-4.1-mini and -nano, GPT-5-mini)."""

    formula: Literal["patches"]
    patch: PositiveInt = 32
    cap: PositiveInt = 1536
    multiplier: PositiveFloat = 1.0

    def tokens(self, width: int, height: int, detail: str) -> int:
        return patch_tokens(width, height, self.patch, self.cap, self.multiplier)


class QwenRule(_Entry):
    """Qwen2-VL / Qwen2.5-VL: one token per 28 x 28 block after resizing into [min_pixels, max_pixels]."""

    formula: Literal["qwen2-vl"]
    min_pixels: PositiveInt = 3136
    max_pixels: PositiveInt = 12845056
    patch_size: PositiveInt = 14
    merge_size: PositiveInt = 2

    def tokens(self, width: int, height: int, detail: str) -> int:
        return qwen2_vl_tokens(width, height, self.min_pixels, self.max_pixels, self.patch_size, self.merge_size)


class InternVLRule(_Entry):
    """InternVL2/2.5: `tokens_per_tile` per 448-pixel tile of the best grid, plus a thumbnail tile."""

    formula: Literal["internvl"]
    min_tiles: PositiveInt = 1
    max_tiles: PositiveInt = 12
    thumbnail: bool = True
    tile_size: PositiveInt = 448
    tokens_per_tile: PositiveInt = 256

    def tokens(self, width: int, height: int, detail: str) -> int:
        return internvl_tokens(width, height, self.min_tiles, self.max_tiles, self.thumbnail, self.tile_size,
                               self.tokens_per_tile)


class LlavaOneVisionRule(_Entry):
    """LLaVA-OneVision (anyres_max_9): the base crop plus the unpadded features of the best grid canvas."""

    formula: Literal["llava-onevision"]
    crop: PositiveInt = 384
    per_side: PositiveInt = 27
    grid: PositiveInt = 6
    max_crops: PositiveInt = 9

    def tokens(self, width: int, height: int, detail: str) -> int:
        return llava_onevision_tokens(width, height, self.crop, self.per_side, self.grid, self.max_crops)


FORMULAS = ("tiles", "patches", "qwen2-vl", "internvl", "llava-onevision")


def _formula(value: Any) -> str | None:
    """Which rule a table entry is: its `formula`, tiles when it names none (a bare {base, tile})."""
    formula = value.get("formula", "tiles") if isinstance(value, dict) else getattr(value, "formula", None)
    return formula if formula in FORMULAS else None


# How a model counts an image's input tokens; `tokens(width, height, detail)` on every kind.
ImageRule = Annotated[
    Annotated[TileRule, Tag("tiles")] | Annotated[PatchRule, Tag("patches")] | Annotated[QwenRule, Tag("qwen2-vl")]
    | Annotated[InternVLRule, Tag("internvl")] | Annotated[LlavaOneVisionRule, Tag("llava-onevision")],
    Discriminator(_formula, custom_error_type="formula",
                  custom_error_message=f"formula must be one of {', '.join(FORMULAS)}"),
]
DEFAULT_IMAGE_RULE = TileRule()


class ModelPrice(_Entry):
    """One model's prices (None: a model you serve yourself, counted in tokens only) and image rule."""

    input: Price | None = None
    output: Price | None = None
    image: ImageRule = DEFAULT_IMAGE_RULE


class PriceTable(_Entry):
    """configs/prices.yaml: the date the prices were copied, the batch discount, the output tokens
    estimates expect per stage, and the models' prices."""

    date: str
    batch_discount: Annotated[Price, Field(le=1)]
    expected_output: dict[str, NonNegativeInt] = Field(alias="expected_output_tokens")
    models: dict[str, ModelPrice]

    @field_validator("date", mode="before")
    @classmethod
    def _date_text(cls, value: Any) -> Any:
        # YAML reads an unquoted 2026-11-01 as a date.
        return str(value) if isinstance(value, datetime.date) else value

    @classmethod
    def load(cls, path: Path | None = None) -> PriceTable:
        """The table in `path` (default configs/prices.yaml), or PriceError naming the file and, in
        one line, the key at fault and what is wrong with it."""
        path = Path(path) if path is not None else resource_dir("configs") / "prices.yaml"
        try:
            data, lines = read_yaml(path, "price table")
        except UnreadableYAML as exc:
            raise PriceError(str(exc)) from None
        if not isinstance(data, dict):
            problem = ("a mapping of date, batch_discount, expected_output_tokens and models, not "
                       + ("an empty file" if data is None else f"a YAML {type(data).__name__}"))
        else:
            try:
                return cls.model_validate(data)
            except ValidationError as exc:
                line = validation_line(exc, lines)
                raise PriceError(f"{path}{f':{line}' if line else ''}: not a price table like configs/prices.yaml "
                                 f"({validation_problem(exc)})") from None
        raise PriceError(f"{path}: not a price table like configs/prices.yaml ({problem})")

    def price(self, model: str) -> ModelPrice | None:
        """The entry of the longest key the model's name starts with, in any case, with or without
        its organisation (`Qwen/Qwen2.5-VL-72B-Instruct` matches `qwen2.5-vl`)."""
        names = {model.lower(), model.lower().rpartition("/")[2]}
        matches = [k for k in self.models if any(n.startswith(k.lower()) for n in names)]
        return self.models[max(matches, key=len)] if matches else None

    def priced(self, model: str) -> bool:
        price = self.price(model)
        return price is not None and price.input is not None and price.output is not None

    def image_rule(self, model: str) -> ImageRule:
        price = self.price(model)
        return price.image if price else DEFAULT_IMAGE_RULE

    def dollars(self, model: str, prompt_tokens: float, completion_tokens: float, batch: bool = False) -> float | None:
        price = self.price(model)
        if price is None or price.input is None or price.output is None:
            return None
        usd = (prompt_tokens * price.input + completion_tokens * price.output) / 1_000_000
        return usd * self.batch_discount if batch else usd


def prompt_token_parts(body: dict[str, Any], rule: ImageRule) -> tuple[int, int]:
    """Input tokens of a chat request as (text, image): text by a 4-characters-per-token estimate,
    images by `rule`."""
    text = image = 0
    for message in body.get("messages", []):
        content = message["content"]
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        text += 4  # per-message overhead of the chat format
        for part in parts:
            if part.get("type") == "text":
                text += len(part["text"]) // 4 + 1
            elif part.get("type") == "image_url":
                try:
                    width, height = data_url_size(part["image_url"]["url"])
                except (OSError, ValueError):
                    width, height = _UNREADABLE_IMAGE  # the API will reject it; budget for the worst case
                image += rule.tokens(width, height, part["image_url"].get("detail", "auto"))
    return text, image


def estimate_prompt_tokens(body: dict[str, Any], rule: ImageRule) -> int:
    return sum(prompt_token_parts(body, rule))


def data_url_size(url: str) -> tuple[int, int]:
    """Pixel size of a base64 data-URL image, read from its header only."""
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as im:
        return im.size
