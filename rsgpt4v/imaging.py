"""Pixels: opening images within limits, cropping windows, resizing, encoding, token estimates."""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import io
import math
import warnings
from pathlib import Path

from PIL import Image


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


_M_MMAP_THRESHOLD = -3  # glibc mallopt parameter


def return_freed_images_to_the_os() -> None:
    """Make large image buffers come from (and go back to) the OS directly.

    glibc raises its mmap threshold each time a large block is freed, after which buffers of
    decoded images are carved from the heap of the thread that decoded them and stay there when
    freed: a build over many 12000 x 12000 images then grows by most of an image per image. A fixed
    threshold keeps peak memory at one image's worth. Elsewhere than glibc this does nothing.
    """
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "mallopt"):
            libc.mallopt(_M_MMAP_THRESHOLD, 4 * 1024 * 1024)
    except OSError:
        pass


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
