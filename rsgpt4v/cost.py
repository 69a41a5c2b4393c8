"""Prices and token estimates: what a request will cost before it is sent, and what a run did cost.

The table is configs/prices.yaml, dated and editable; a model matches the longest key its name
starts with. Unknown models cost None: estimates then show tokens only.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from PIL import Image

from rsgpt4v.config import yaml_problem
from rsgpt4v.imaging import image_tokens, patch_tokens
from rsgpt4v.resources import resource_dir

_UNREADABLE_IMAGE = (2048, 2048)


class PriceError(Exception):
    """A price table that cannot be read or does not have the shape of configs/prices.yaml."""


def _price(value: object) -> float:
    number = float(value)  # type: ignore[arg-type]
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{value!r} is not a price")
    return number


@dataclass(frozen=True)
class ImageRule:
    formula: str = "tiles"
    base: int = 85
    tile: int = 170
    patch: int = 32
    cap: int = 1536
    multiplier: float = 1.0

    def tokens(self, width: int, height: int, detail: str) -> int:
        if self.formula == "patches":
            return patch_tokens(width, height, self.patch, self.cap, self.multiplier)
        return image_tokens(width, height, detail, self.base, self.tile)


@dataclass(frozen=True)
class ModelPrice:
    input: float
    output: float
    image: ImageRule = field(default_factory=ImageRule)


@dataclass(frozen=True)
class PriceTable:
    date: str
    batch_discount: float
    expected_output: dict[str, int]
    models: dict[str, ModelPrice]

    @classmethod
    def load(cls, path: Path | None = None) -> PriceTable:
        """The table in `path` (default configs/prices.yaml), or PriceError naming the file and what is wrong."""
        path = Path(path) if path is not None else resource_dir("configs") / "prices.yaml"
        try:
            data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise PriceError(f"{path}: cannot read the price table ({exc.strerror})") from None
        except UnicodeDecodeError as exc:
            raise PriceError(f"{path}: not UTF-8 text (byte {exc.start + 1})") from None
        except yaml.YAMLError as exc:
            raise PriceError(f"{path}: not valid YAML ({yaml_problem(exc)})") from None
        try:
            models = {str(name): ModelPrice(input=_price(m["input"]), output=_price(m["output"]),
                                            image=ImageRule(**m.get("image", {})))
                      for name, m in data["models"].items()}
            return cls(date=str(data["date"]), batch_discount=_price(data["batch_discount"]),
                       expected_output={str(k): int(v) for k, v in data["expected_output_tokens"].items()},
                       models=models)
        except KeyError as exc:
            problem = f"no {exc.args[0]!r} entry"
        except (TypeError, ValueError, AttributeError) as exc:
            problem = str(exc)
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
