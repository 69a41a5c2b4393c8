"""The image side: windows cut and written by the worker pool, lossless and deterministic, and left
as they are on a rerun unless their source changed."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path

from conftest import dry_run
from PIL import Image

from rsgpt4v.imaging.images import png, png_header
from rsgpt4v.sources import sample_root


def _noise(size: tuple[int, int], seed: int) -> Image.Image:
    rng = random.Random(seed)
    return Image.frombytes("RGB", size, bytes(rng.randrange(256) for _ in range(size[0] * size[1] * 3)))


def test_the_png_writer_is_lossless_and_readable() -> None:
    for size in ((1, 1), (3, 7), (130, 90)):
        im = _noise(size, seed=size[0])
        with Image.open(io.BytesIO(png(im))) as back:
            assert back.format == "PNG" and back.mode == "RGB" and back.size == size
            assert back.tobytes() == im.tobytes()
    assert png(_noise((40, 30), 1)) == png(_noise((40, 30), 1))


def test_an_estimate_placeholder_has_a_size_and_no_pixels() -> None:
    data = png_header(1024, 768)
    assert len(data) < 100
    with Image.open(io.BytesIO(data)) as im:
        assert im.size == (1024, 768)


def _dota(root: Path, side: int = 1500) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "labelTxt").mkdir()
    _noise((side, side), 7).save(root / "images" / "P1.png")
    # One object poking 2 px over the first window's right edge, one in the last window.
    (root / "labelTxt" / "P1.txt").write_text("900 100 1026 100 1026 160 900 160 ship 0\n"
                                              "1300 1300 1400 1300 1400 1380 1300 1380 plane 0\n")
    return root


def test_a_rerun_encodes_nothing_and_a_changed_source_is_written_again(tmp_path: Path) -> None:
    root = _dota(tmp_path / "DOTA")
    config = tmp_path / "t.yaml"
    config.write_text("stages: []\n")
    out = tmp_path / "out"
    args = ("--config", str(config), "--workers", "2")
    _, first, manifest = dry_run("dota", root, out, *args)
    assert manifest["counts"]["images_encoded"] == manifest["counts"]["windows"] >= 2
    files = {p: p.read_bytes() for p in (out / "images").rglob("*.png")}
    window = next(p for p in files if p.name == "P1__0_0_1024_1024.png")
    with Image.open(window) as im, Image.open(root / "images" / "P1.png") as src:
        assert im.tobytes() == src.crop((0, 0, 1024, 1024)).tobytes()
    _, again, manifest = dry_run("dota", root, out, *args)
    assert manifest["counts"]["images_encoded"] == 0
    assert again == first and {p: p.read_bytes() for p in files} == files
    keys = json.loads((out / ".rsgpt4v" / "images.json").read_text())
    assert sorted(keys) == sorted(p.relative_to(out).as_posix() for p in files)
    _noise((1500, 1500), 8).save(root / "images" / "P1.png")
    _, _, manifest = dry_run("dota", root, out, *args)
    assert manifest["counts"]["images_encoded"] == manifest["counts"]["windows"]
    assert window.read_bytes() != files[window]


def test_a_tight_pixel_budget_cuts_an_image_in_parts_and_changes_nothing(tmp_path: Path) -> None:
    """With room for about three windows, each of the sample's 1024 px windows is its own job (the
    image decoded again for each) and waits for the scenes before it: the same records."""
    root = sample_root("dota")
    _, wide, _ = dry_run("dota", root, tmp_path / "wide")
    config = tmp_path / "tight.yaml"
    config.write_text("engine:\n  max_pixels_in_flight: 3000000\n")
    _, tight, manifest = dry_run("dota", root, tmp_path / "tight", "--config", str(config))
    assert tight == wide and manifest["counts"]["windows"] == 7
