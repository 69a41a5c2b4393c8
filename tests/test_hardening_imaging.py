"""Issue 11: 16-bit and float imagery is scaled to 8 bits by a percentile stretch, with one warning."""

from __future__ import annotations

import array
import struct
from pathlib import Path

import pytest
from conftest import dry_run
from PIL import Image

from rsgpt4v.imaging import images as imaging
from rsgpt4v.imaging.images import open_image


def rgb16_tiff(path: Path, pixels: list[tuple[int, int, int]], width: int) -> Path:
    """An uncompressed little-endian TIFF of 16 bits per sample, 3 samples per pixel, one strip."""
    height = len(pixels) // width
    data = array.array("H", [v for p in pixels for v in p]).tobytes()
    tags = [(256, 3, 1, width), (257, 3, 1, height), (258, 3, 3, None), (259, 3, 1, 1), (262, 3, 1, 2),
            (273, 4, 1, 8), (277, 3, 1, 3), (278, 3, 1, height), (279, 4, 1, len(data)), (284, 3, 1, 1)]
    ifd_at = 8 + len(data)
    bits_at = ifd_at + 2 + 12 * len(tags) + 4
    ifd = struct.pack("<H", len(tags))
    for tag, kind, count, value in tags:
        if value is None:
            ifd += struct.pack("<HHII", tag, kind, count, bits_at)
        elif kind == 3:
            ifd += struct.pack("<HHIHH", tag, kind, count, value, 0)
        else:
            ifd += struct.pack("<HHII", tag, kind, count, value)
    path.write_bytes(b"II*\x00" + struct.pack("<I", ifd_at) + data + ifd + struct.pack("<I", 0)
                     + struct.pack("<HHH", 16, 16, 16))
    return path


def test_16_bit_png_gradient_is_stretched_not_saturated(tmp_path: Path) -> None:
    gradient = Image.new("I;16", (200, 2))
    for x in range(200):
        for y in range(2):
            gradient.putpixel((x, y), 3000 + 20 * x)      # 3000..6980: all "white" when clipped to 8 bits
    gradient.save(tmp_path / "g.png")
    im = open_image(tmp_path / "g.png", 10**8)
    row = [im.getpixel((x, 0))[0] for x in range(200)]
    assert row == sorted(row)
    assert row[0] == 0 and row[-1] == 255
    assert 120 <= row[100] <= 135
    assert len(set(row)) > 150


def test_16_bit_rgb_tiff_keeps_its_low_bytes_and_each_band(tmp_path: Path) -> None:
    # Values under 256 have a zero high byte: read 8 bits at a time the image is black.
    pixels = [(x, 2 * x, 255 - x) for x in range(256)]
    path = rgb16_tiff(tmp_path / "rgb16.tif", pixels, width=64)
    im = open_image(path, 10**8)
    assert im.size == (64, 4)
    red = [im.getpixel((x, y))[0] for y in range(4) for x in range(64)]
    blue = [im.getpixel((x, y))[2] for y in range(4) for x in range(64)]
    assert red == sorted(red) and red[0] == 0 and red[-1] == 255
    assert blue == sorted(blue, reverse=True) and blue[0] == 255 and blue[-1] == 0


def test_float_tiff_is_stretched(tmp_path: Path) -> None:
    reflectance = Image.new("F", (100, 1))
    for x in range(100):
        reflectance.putpixel((x, 0), x / 400.0)      # 0..0.25: black under a plain conversion
    reflectance.save(tmp_path / "r.tif")
    im = open_image(tmp_path / "r.tif", 10**8)
    values = [im.getpixel((x, 0))[0] for x in range(100)]
    assert values == sorted(values) and values[1] == 0 and values[-2] == 255 and 120 <= values[50] <= 135


def test_nan_float_image_is_refused_in_words(tmp_path: Path) -> None:
    band = Image.new("F", (4, 4), float("nan"))
    band.save(tmp_path / "n.tif")
    with pytest.raises(imaging.ImageError, match="NaN"):
        open_image(tmp_path / "n.tif", 10**8)


def _gradient16(path: Path, side: int = 300) -> Path:
    """A 16-bit gradient whose values (3000..6000) all read as white when cut to 8 bits."""
    gradient = Image.new("I;16", (side, side))
    gradient.putdata([3000 + (10 * x) % 3000 for _ in range(side) for x in range(side)])
    gradient.save(path)
    return path


def test_a_16_bit_image_that_needs_no_tiling_is_written_stretched_with_one_warning(tmp_path: Path) -> None:
    """Whole images are stretched as windows are (they used to be copied as they were: all white to a
    trainer's convert("RGB")), and the manifest says so once for the source."""
    root = tmp_path / "DOTA"
    (root / "images").mkdir(parents=True)
    (root / "labelTxt").mkdir()
    for name in ("P1", "P2"):
        _gradient16(root / "images" / f"{name}.png")
        (root / "labelTxt" / f"{name}.txt").write_text("10 10 60 10 60 40 10 40 plane 0\n")
    _, records, manifest = dry_run("dota", root, tmp_path / "out", "--config", str(_template_only(tmp_path)))
    image = tmp_path / "out" / records[0]["image"]
    assert image.name == "P1__0_0_300_300.png"
    with Image.open(image) as written:
        assert written.mode == "RGB" and written.size == (300, 300)
        row = [written.getpixel((x, 0))[0] for x in range(300)]
    assert row[0] == 0 and max(row) == 255 and len(set(row)) > 200
    stretched = [i for i in manifest["issues"]["list"] if i["code"] == "image_stretched"]
    assert len(stretched) == 1 and stretched[0]["kind"] == "warning" and stretched[0]["file"] == "images/P1.png"
    assert "I;16 images are scaled to 8 bits by a 2-98 % percentile stretch" in stretched[0]["reason"]


def _template_only(tmp_path: Path) -> Path:
    config = tmp_path / "template.yaml"
    config.write_text("stages: []\n")
    return config


def test_8_bit_images_are_unchanged(tmp_path: Path) -> None:
    Image.new("RGB", (4, 4), (10, 20, 30)).save(tmp_path / "a.png")
    assert open_image(tmp_path / "a.png", 10**8).getpixel((0, 0)) == (10, 20, 30)
