"""Prices and token estimates: what a request will cost before it is sent, and what a run did cost.

The table is configs/prices.yaml, dated and editable; a model matches the longest key its name
starts with. Unknown models cost None: estimates then show tokens only.
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
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
)

from rsgpt4v.core.problems import UnreadableYAML, read_yaml, validation_line, validation_problem
from rsgpt4v.core.resources import resource_dir
from rsgpt4v.llm.image_tokens import image_tokens, patch_tokens

_UNREADABLE_IMAGE = (2048, 2048)


class PriceError(Exception):
    """A price table that cannot be read or does not have the shape of configs/prices.yaml."""


# USD per 1M tokens, or the batch fraction of the live price: a finite number, not negative.
Price = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _Entry(BaseModel):
    # Frozen, and unknown keys refused: a misspelt key would otherwise leave a default in force.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True, allow_inf_nan=False)


class ImageRule(_Entry):
    """How a model counts an image's input tokens: OpenAI's 512-pixel tiles (`base` + `tile` per
    tile) or 32-pixel patches (`patch`, up to `cap`, times `multiplier`)."""

    formula: Literal["tiles", "patches"] = "tiles"
    base: NonNegativeInt = 85
    tile: NonNegativeInt = 170
    patch: PositiveInt = 32
    cap: PositiveInt = 1536
    multiplier: PositiveFloat = 1.0

    def tokens(self, width: int, height: int, detail: str) -> int:
        if self.formula == "patches":
            return patch_tokens(width, height, self.patch, self.cap, self.multiplier)
        return image_tokens(width, height, detail, self.base, self.tile)


class ModelPrice(_Entry):
    """One model's prices and image rule."""

    input: Price
    output: Price
    image: ImageRule = Field(default_factory=ImageRule)


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
        matches = [k for k in self.models if model.startswith(k)]
        return self.models[max(matches, key=len)] if matches else None

    def image_rule(self, model: str) -> ImageRule:
        price = self.price(model)
        return price.image if price else ImageRule()

    def dollars(self, model: str, prompt_tokens: float, completion_tokens: float, batch: bool = False) -> float | None:
        price = self.price(model)
        if price is None:
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
