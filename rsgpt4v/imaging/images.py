"""Pixels: opening images within limits, cropping windows, resizing, encoding."""

from __future__ import annotations

import base64
import ctypes
import io
import math
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image, ImageChops
from zlib_ng import zlib_ng

from rsgpt4v.core.issue_codes import IssueCode


class ImageError(Exception):
    """An image that cannot be used: missing, unreadable, truncated or too large; `code` is what the
    run report counts it as."""

    def __init__(self, code: IssueCode, message: str) -> None:
        super().__init__(message)
        self.code = code

    def __reduce__(self) -> tuple[type[ImageError], tuple[IssueCode, str]]:
        # Raised in a worker process of the image side, it crosses back whole.
        return ImageError, (self.code, str(self))


def open_image(path: Path, max_pixels: int) -> Image.Image:
    """The image as the trainer sees it: fully decoded as RGB, stretched to 8 bits per band when it
    has more (see `decode`); ImageError saying why not."""
    return decode(path, max_pixels)[0]


def decode(path: Path, max_pixels: int) -> tuple[Image.Image, str | None]:
    """The image fully decoded as RGB, and the kind of image it was stretched from (None for 8-bit
    imagery, passed through as it is); ImageError saying why it cannot be used.

    Imagery of more than 8 bits per sample (16-bit PNG and TIFF, 32-bit integer or float TIFF, as
    satellite products ship) is scaled to 8 bits per band by a percentile stretch: the 2nd
    percentile becomes 0 and the 98th 255, values beyond are clipped, as remote-sensing viewers
    (QGIS's cumulative count cut) show them; a plain conversion would saturate them to black and
    white or keep only the high byte. This is the one place that decides it, for windows and whole
    images alike; the build says so once per source (`stretch_warning`).
    """
    with _opened(path, max_pixels) as im:
        kind = _kind(im)
        if kind is None:
            im.load()
            return (im if im.mode == "RGB" else im.convert("RGB")), None
        bands = _wide_bands(im, path)
        if bands is None:
            im.load()
            bands = [im]
        stretched = [_stretch(band) for band in bands[:3]]
        return Image.merge("RGB", stretched if len(stretched) == 3 else stretched[:1] * 3), kind


def stretch_kind(path: Path, max_pixels: int) -> str | None:
    """What `decode` would say it stretched the image from, from the header alone (no pixels decoded)."""
    with _opened(path, max_pixels) as im:
        return _kind(im)


def _kind(im: Image.Image) -> str | None:
    """The kind of a lazily opened image of more than 8 bits per band (its mode, or "3 x 16-bit" for
    interleaved 16-bit colour), None for 8-bit imagery."""
    if im.mode in _HIGH_DEPTH:
        return im.mode
    rawmode = _wide_rawmode(im)
    return None if rawmode is None else f"{_WIDE_RAW[rawmode][1]} x 16-bit"


def image_size(path: Path, max_pixels: int) -> tuple[int, int]:
    """Width and height from the image's header alone (no pixels decoded), within the same limits as
    `decode`; ImageError saying why not. A damaged body is found only when the image is decoded."""
    with _opened(path, max_pixels) as im:
        return im.size


@contextmanager
def _opened(path: Path, max_pixels: int) -> Iterator[Image.Image]:
    """The image opened lazily within `max_pixels`; every way it can fail as an ImageError."""
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                yield im
    except FileNotFoundError:
        raise ImageError(IssueCode.IMAGE_MISSING, "image file is missing") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(IssueCode.IMAGE_TOO_LARGE,
                         f"image has more than image.max_pixels={max_pixels} pixels") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(IssueCode.IMAGE_UNREADABLE, f"image cannot be decoded ({exc})") from None


def stretch_warning(kind: str) -> str:
    """What a build says, once per source, about the images `decode` stretched."""
    return (f"{kind} images are scaled to 8 bits by a 2-98 % percentile stretch per band, whole or tiled "
            "(said once for all such images of the source)")


_HIGH_DEPTH = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_STRETCH_PERCENTILES = (0.02, 0.98)
# Interleaved 16-bit colour that Pillow would read as 8-bit colour by dropping the low byte:
# read instead as one 16-bit band `bands` times as wide, and de-interleaved.
_WIDE_RAW = {"RGB;16L": ("I;16", 3), "RGB;16B": ("I;16B", 3), "RGBA;16L": ("I;16", 4), "RGBA;16B": ("I;16B", 4),
             "RGB;16N": ("I;16N", 3), "RGBA;16N": ("I;16N", 4)}


def _wide_rawmode(im: Image.Image) -> str | None:
    """The raw mode of interleaved 16-bit colour (which Pillow would read as 8-bit colour), or None."""
    if im.mode not in ("RGB", "RGBA") or not im.tile:
        return None
    kinds = {(t.codec_name, t.args[0] if t.args else None) for t in im.tile}
    if len(kinds) != 1:
        return None
    codec, rawmode = next(iter(kinds))
    if rawmode not in _WIDE_RAW:
        return None
    if codec != "raw":
        raise ImageError(IssueCode.IMAGE_UNREADABLE, f"compressed 16-bit colour ({rawmode}) cannot be read at full "
                                                     "depth; save it uncompressed or as 8-bit")
    return rawmode


def _wide_bands(im: Image.Image, path: Path) -> list[Image.Image] | None:
    """The 16-bit bands of uncompressed interleaved 16-bit colour (TIFF), or None for anything else."""
    rawmode = _wide_rawmode(im)
    if rawmode is None:
        return None
    band_raw, n = _WIDE_RAW[rawmode]
    wide = Image.new("I", (im.width * n, im.height))
    with open(path, "rb") as f:
        for tile in im.tile:
            x0, y0, x1, y1 = tile.extents
            f.seek(tile.offset)
            size = ((x1 - x0) * n, y1 - y0)
            data = f.read(size[0] * size[1] * 2)
            wide.paste(Image.frombytes("I;16", size, data, "raw", band_raw).convert("I"), (x0 * n, y0))
    # Band c of pixel x sits at column x * n + c: an affine map picks it (nearest neighbour, pixel centres).
    return [wide.transform(im.size, Image.Transform.AFFINE, (n, 0, c + 0.5 - n / 2, 0, 1, 0),
                           resample=Image.Resampling.NEAREST) for c in range(n)]


def _stretch(band: Image.Image) -> Image.Image:
    """A band of more than 8 bits as 8 bits: its 2nd percentile to 0, its 98th to 255, clipped beyond."""
    band = band.convert("F")
    lo, hi = band.getextrema()
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ImageError(IssueCode.IMAGE_UNREADABLE,
                         "float image with NaN or infinite values (no-data?) cannot be scaled to 8 bits")
    low, high = (_percentile(band, q, lo, hi) for q in _STRETCH_PERCENTILES)
    if high <= low:  # (nearly) one value throughout: place it within the band's full range
        return Image.new("L", band.size, 0 if hi <= lo else round(255 * (low - lo) / (hi - lo)))
    scale = 255.0 / (high - low)
    return band.point(lambda v: v * scale - low * scale).convert("L")


def _percentile(band: Image.Image, q: float, lo: float, hi: float) -> float:
    """The value below which a fraction `q` of the pixels lie, to 1/256^3 of the range (histograms
    refined three times, so a few hot pixels do not squash every other value into one bin)."""
    target = q * band.width * band.height
    below = 0
    for _ in range(3):
        width = (hi - lo) / 256
        if width <= 0:
            break
        hist = band.histogram(extrema=(lo, hi))
        index = 0
        for index, count in enumerate(hist):
            if below + count >= target:
                break
            below += count
        lo, hi = lo + index * width, lo + (index + 1) * width
    return lo


_M_MMAP_THRESHOLD = -3  # glibc mallopt parameter


def return_freed_images_to_the_os() -> None:
    """Make large image buffers come from (and go back to) the OS directly.

    glibc raises its mmap threshold each time a large block is freed, after which buffers of
    decoded images are carved from the heap of the thread that decoded them and stay there when
    freed: a build over many 12000 x 12000 images then grows by most of an image per image. A fixed
    threshold keeps peak memory at one image's worth. Elsewhere than glibc this does nothing.
    """
    try:
        process = ctypes.CDLL(None)  # the running program's symbols, the C library's among them
    except OSError:
        return
    if hasattr(process, "mallopt"):
        process.mallopt(_M_MMAP_THRESHOLD, 4 * 1024 * 1024)


def fit_size(size: tuple[int, int], max_side: int) -> tuple[tuple[int, int], float]:
    """The size an image of `size` is downscaled to so its longer side is at most `max_side`, and the scale."""
    scale = min(1.0, max_side / max(size))
    if scale == 1.0:
        return size, 1.0
    return (max(1, round(size[0] * scale)), max(1, round(size[1] * scale))), scale


def fit(im: Image.Image, max_side: int) -> tuple[Image.Image, float]:
    """Downscale so the longer side is at most `max_side`; returns the image and the scale used."""
    size, scale = fit_size(im.size, max_side)
    if scale == 1.0:
        return im, 1.0
    return im.resize(size, Image.Resampling.LANCZOS), scale


# White pixels between the two windows of a side-by-side image.
SIDE_BY_SIDE_GAP = 16


def side_by_side(left: Image.Image, right: Image.Image, gap: int = SIDE_BY_SIDE_GAP) -> Image.Image:
    """`left` and `right` in one image, `gap` white pixels apart (for a server that takes one image per
    request: the clean window beside the marked one)."""
    canvas = Image.new("RGB", (left.width + gap + right.width, max(left.height, right.height)), (255, 255, 255))
    canvas.paste(left.convert("RGB"), (0, 0))
    canvas.paste(right.convert("RGB"), (left.width + gap, 0))
    return canvas


def png_header(width: int, height: int) -> bytes:
    """A PNG of that size with no pixels in it: all an estimate needs of an image (its size) without
    decoding or encoding one. No viewer shows it; readers of headers (token counting) read its size."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return _PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"") + _chunk(b"IEND", b"")


def encode(im: Image.Image, fmt: str, quality: int = 90) -> bytes:
    """PNG or JPEG bytes; deterministic for the same pixels and settings."""
    if fmt not in ("jpeg", "jpg"):
        return png(im)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality, optimize=True)
    return buf.getvalue()


# zlib level 1 with the run-length strategy over Sub-filtered rows: what OpenCV's PNG writer (the DOTA
# devkit's) does by default. On aerial photographs it is as small as Pillow's level 6 within 5 % and
# five times as fast (docs/imaging.md); lossless either way. zlib-ng deflates the same stream in 60 %
# of the system zlib's time, which puts the whole image side ahead of the devkit's on the same cores.
_PNG_LEVEL = 1
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png(im: Image.Image) -> bytes:
    """A lossless 8-bit RGB PNG of `im`: each row Sub-filtered (every byte less the one three to its
    left, modulo 256, by Pillow's subtract_modulo against the image moved one pixel right), then
    deflated (zlib-ng) in one IDAT chunk at `_PNG_LEVEL` with the run-length strategy."""
    rgb = im if im.mode == "RGB" else im.convert("RGB")
    w, h = rgb.size
    left = Image.new("RGB", (w, h))
    left.paste(rgb.crop((0, 0, w - 1, h)), (1, 0))
    raw = ImageChops.subtract_modulo(rgb, left).tobytes()
    stride = 3 * w
    z = zlib_ng.compressobj(_PNG_LEVEL, zlib_ng.DEFLATED, 15, 9, zlib_ng.Z_RLE)
    idat = b"".join([*(z.compress(b"\x01" + raw[i:i + stride]) for i in range(0, len(raw), stride)), z.flush()])
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)  # 8 bits, truecolour, deflate, filters, no interlace
    return _PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib_ng.crc32(kind + data))


def data_url(data: bytes, fmt: str) -> str:
    mime = "image/jpeg" if fmt in ("jpeg", "jpg") else "image/png"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
