"""Pixels: opening images within limits, cropping windows, resizing, marking, encoding, token estimates."""

from __future__ import annotations

import base64
import io
import math
import warnings
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from rsgpt4v.schema import Point

# Distinct, saturated colours that stay visible on both vegetation and concrete.
_MARK_COLOURS = [(255, 48, 48), (0, 200, 255), (255, 214, 0), (255, 0, 220), (0, 255, 96),
                 (255, 128, 0), (140, 90, 255), (255, 255, 255)]


class ImageError(Exception):
    """An image that cannot be used: missing, unreadable, truncated or too large."""


def open_image(path: Path, max_pixels: int) -> Image.Image:
    """The image fully decoded as RGB, or ImageError saying why not."""
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.load()
                return im.convert("RGB")
    except FileNotFoundError:
        raise ImageError("image file is missing") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"image has more than image.max_pixels={max_pixels} pixels") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"image cannot be decoded ({exc})") from None


def fit(im: Image.Image, max_side: int) -> tuple[Image.Image, float]:
    """Downscale so the longer side is at most `max_side`; returns the image and the scale used."""
    scale = min(1.0, max_side / max(im.size))
    if scale == 1.0:
        return im, 1.0
    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    return im.resize(size, Image.Resampling.LANCZOS), scale


def encode(im: Image.Image, fmt: str, quality: int = 90) -> bytes:
    """PNG or JPEG bytes; deterministic for the same pixels and settings."""
    buf = io.BytesIO()
    if fmt in ("jpeg", "jpg"):
        im.save(buf, format="JPEG", quality=quality, optimize=True)
    else:
        im.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def data_url(data: bytes, fmt: str) -> str:
    mime = "image/jpeg" if fmt in ("jpeg", "jpg") else "image/png"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def draw_marks(im: Image.Image, marks: Sequence[tuple[int, Sequence[Point]]]) -> Image.Image:
    """Set-of-Mark overlay: each polygon outlined and labelled with its id number."""
    out = im.copy()
    draw = ImageDraw.Draw(out)
    label_size = max(12, round(max(im.size) / 55))
    font = ImageFont.load_default(size=label_size)
    width = max(1, round(max(im.size) / 500))
    for mark_id, poly in marks:
        colour = _MARK_COLOURS[mark_id % len(_MARK_COLOURS)]
        draw.polygon([tuple(p) for p in poly], outline=colour, width=width)
        text = str(mark_id)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tw, th = right - left, bottom - top
        xs, ys = [p[0] for p in poly], [p[1] for p in poly]
        if max(xs) - min(xs) > 2 * tw and max(ys) - min(ys) > 2 * th:
            x, y = sum(xs) / len(xs) - tw / 2, sum(ys) / len(ys) - th / 2
        else:
            # A label on a small object would hide it from the model: put it beside the object.
            x, y = max(xs) + 2, min(ys) - th - 2
        x = min(max(x, 0), im.width - tw - 2)
        y = min(max(y, 0), im.height - th - 2)
        draw.rectangle((x - 1, y - 1, x + tw + 1, y + th + 1), fill=(0, 0, 0))
        draw.text((x - left, y - top), text, fill=colour, font=font)
    return out


def image_tokens(width: int, height: int, detail: str, base: int = 85, tile: int = 170) -> int:
    """Input tokens for one image under OpenAI's tile rule (GPT-4o family; `base`/`tile` vary by model)."""
    if detail == "low":
        return base
    scale = min(1.0, 2048 / max(width, height))
    w, h = width * scale, height * scale
    scale = min(1.0, 768 / min(w, h))
    w, h = w * scale, h * scale
    return base + tile * math.ceil(w / 512) * math.ceil(h / 512)


def patch_tokens(width: int, height: int, patch: int = 32, cap: int = 1536, multiplier: float = 1.0) -> int:
    """Input tokens for one image under OpenAI's patch rule (GPT-4.1-mini family)."""
    patches = math.ceil(width / patch) * math.ceil(height / patch)
    if patches > cap:
        shrink = math.sqrt(patch * patch * cap / (width * height))
        patches = min(cap, math.ceil(width * shrink / patch) * math.ceil(height * shrink / patch))
    return math.ceil(patches * multiplier)
