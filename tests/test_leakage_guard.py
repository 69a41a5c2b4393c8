"""Issue 19: the leakage guard hashes what the trainer will see. 16-bit and float imagery get the
build's bit-depth stretch (no longer all one hash), flat and low-contrast images are told apart by
their pixels (their perceptual hash says too little), colours count, the configured pixel limit is
the one the guard opens images with, and an image the guard cannot read is named, never clustered."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from rsgpt4v.builder.identity import Fingerprint, ImageRef, fingerprint
from rsgpt4v.builder.sample_plan import SamplePlan
from rsgpt4v.cli import app
from rsgpt4v.core.issue_codes import IssueCode
from rsgpt4v.imaging.images import ImageError, open_image
from scripts.native_tree import texture, write_tree

LIMIT = 400_000_000


def sixteen_bit(seed: int, size: int = 128, low: int = 1000) -> Image.Image:
    """A 16-bit picture whose values (low .. low + 1020) a plain 8-bit conversion saturates to white."""
    grey = texture(seed, size).convert("L").convert("I")
    return grey.point(lambda v: v * 4 + low).convert("I;16")


def planned(tmp_path: Path, paths: list[Path], splits: list[tuple[str, str]]) -> SamplePlan:
    """A plan of these images, fingerprinted as a recipe does, listed; the caller closes it."""
    plan = SamplePlan(tmp_path / "identity.sqlite", LIMIT)
    for path, (source, split) in zip(paths, splits):
        try:
            fp: Fingerprint | ImageError = plan.prints.get(path)
        except ImageError as exc:
            fp = exc
        plan.add(ImageRef(source, split, path.name, path.name), fp, 0.5)
    plan.listed()
    return plan


def clusters_of(tmp_path: Path, paths: list[Path], splits: list[tuple[str, str]]) -> list[set[str]]:
    plan = planned(tmp_path, paths, splits)
    found = [{r.image_id for r in c.members} for c in plan.clusters(8)]
    plan.close()
    return found


ACROSS = [("ucm", "train"), ("ucm", "test"), ("aid", "train"), ("aid", "test")]


def test_different_16_bit_pictures_are_not_one_cluster(tmp_path: Path) -> None:
    paths = []
    for i in range(4):
        paths.append(tmp_path / f"{i}.png")
        sixteen_bit(i).save(paths[-1])
    assert Image.open(paths[0]).mode == "I;16"
    prints = [fingerprint(p, LIMIT) for p in paths]
    assert all(fp.perceptual for fp in prints)  # stretched, they carry full contrast
    assert len({(fp.dhash, fp.ahash) for fp in prints}) == 4
    assert clusters_of(tmp_path, paths, ACROSS) == []


def test_the_hash_is_of_the_pixels_the_build_writes(tmp_path: Path) -> None:
    sixteen_bit(3).save(tmp_path / "raw16.tif")
    open_image(tmp_path / "raw16.tif", LIMIT).save(tmp_path / "written.png")  # what the build writes for it
    assert fingerprint(tmp_path / "raw16.tif", LIMIT).digest == fingerprint(tmp_path / "written.png", LIMIT).digest
    found = clusters_of(tmp_path, [tmp_path / "raw16.tif", tmp_path / "written.png"], ACROSS[:2])
    assert found == [{"raw16.tif", "written.png"}]


@pytest.mark.parametrize("make", [
    pytest.param(lambda i: Image.new("RGB", (96, 96), (40 * i, 255 - 40 * i, 90)), id="flat colours"),
    pytest.param(lambda i: Image.new("L", (96, 96), 30 + 50 * i), id="flat greys"),
    pytest.param(lambda i: Image.new("RGB", (96, 96), (128, 128, 128 + i)), id="flat, one level apart"),
])
def test_flat_images_of_different_values_are_not_the_same_picture(tmp_path: Path, make) -> None:
    paths = []
    for i in range(4):
        paths.append(tmp_path / f"{i}.tif")
        make(i).save(paths[-1])
    prints = [fingerprint(p, LIMIT) for p in paths]
    assert not any(fp.perceptual for fp in prints)  # too little information: matched by digest only
    assert clusters_of(tmp_path, paths, ACROSS) == []


def test_low_contrast_pictures_are_not_the_same_picture(tmp_path: Path) -> None:
    paths = []
    for i in range(4):
        rng = random.Random(i)
        im = Image.new("L", (128, 128))
        im.putdata([127 + rng.randrange(3) for _ in range(128 * 128)])  # noise of a grey level or two
        paths.append(tmp_path / f"noise{i}.png")
        im.save(paths[-1])
        faint = texture(100 + i).convert("L").point(lambda v: 126 + v // 64)  # a real picture, four levels deep
        paths.append(tmp_path / f"faint{i}.png")
        faint.save(paths[-1])
    assert clusters_of(tmp_path, paths, ACROSS * 2) == []


def test_same_structure_in_other_colours_is_another_picture(tmp_path: Path) -> None:
    ramp = Image.linear_gradient("L").rotate(90).resize((96, 96))
    zero = Image.new("L", (96, 96), 0)
    Image.merge("RGB", (ramp, zero, zero)).save(tmp_path / "red.png")
    Image.merge("RGB", (zero, zero, ramp)).save(tmp_path / "blue.png")
    red, blue = fingerprint(tmp_path / "red.png", LIMIT), fingerprint(tmp_path / "blue.png", LIMIT)
    assert red.perceptual and (red.dhash, red.ahash) == (blue.dhash, blue.ahash)
    assert clusters_of(tmp_path, [tmp_path / "red.png", tmp_path / "blue.png"], ACROSS[:2]) == []


def test_near_copies_are_still_found(tmp_path: Path) -> None:
    base = texture(7, 128)
    base.save(tmp_path / "a.png")
    base.resize((96, 96)).save(tmp_path / "b.jpg", quality=70)
    base.crop((2, 2, 126, 126)).save(tmp_path / "c.png")
    found = clusters_of(tmp_path, [tmp_path / n for n in ("a.png", "b.jpg", "c.png")], ACROSS[:3])
    assert found == [{"a.png", "b.jpg", "c.png"}]


def test_images_the_guard_cannot_read_are_named_and_never_clustered(tmp_path: Path) -> None:
    good = texture(1, 64)
    good.save(tmp_path / "ok.png")
    data = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "cut2.png").write_bytes(data[: len(data) // 2])
    paths = [tmp_path / "ok.png", tmp_path / "cut.png", tmp_path / "cut2.png", tmp_path / "gone.png"]
    plan = planned(tmp_path, paths, ACROSS)
    assert plan.clusters(8) == []  # two unreadable images are not "the same picture"
    assert plan.unreadable(("ucm", "test", "cut.png")).code == IssueCode.IMAGE_UNREADABLE
    assert plan.unreadable(("aid", "test", "gone.png")).code == IssueCode.IMAGE_MISSING
    assert plan.unreadable(("ucm", "train", "ok.png")) is None
    assert plan.counts() == (4, 1)
    plan.close()


def test_a_lower_pixel_limit_refuses_a_fingerprint_read_before(tmp_path: Path) -> None:
    texture(2, 128).save(tmp_path / "a.png")
    first = SamplePlan(tmp_path / "identity.sqlite", LIMIT)
    first.prints.get(tmp_path / "a.png")
    first.close()
    plan = SamplePlan(tmp_path / "identity.sqlite", 10_000)
    with pytest.raises(ImageError) as caught:
        plan.prints.get(tmp_path / "a.png")
    assert caught.value.code == IssueCode.IMAGE_TOO_LARGE
    plan.close()


# ---- through a recipe build --------------------------------------------------------------------------

@pytest.fixture
def two_sources(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    write_tree(data, per_source=5, plant=False)
    return data


def _recipe(tmp_path: Path, leakage: str = "fail") -> Path:
    path = tmp_path / "mix.yaml"
    path.write_text(f"leakage: {leakage}\nsources:\n  - {{source: ucm-captions, root: ucm-captions, stages: []}}\n"
                    "  - {source: sydney-captions, root: sydney-captions, stages: []}\n", encoding="utf-8")
    return path


def _build(tmp_path: Path, data: Path, *args: str) -> tuple[int, str, dict]:
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["build", "--recipe", str(_recipe(tmp_path)), "--data", str(data), "--dry-run",
                                      "--no-progress", "--out", str(out), *args], catch_exceptions=False)
    manifest = json.loads((out / "manifest.json").read_text()) if (out / "manifest.json").is_file() else {}
    return result.exit_code, result.output, manifest


def test_16_bit_sources_build_under_leakage_fail(tmp_path: Path, two_sources: Path) -> None:
    for i in range(5):
        sixteen_bit(i).save(two_sources / "ucm-captions" / "imgs" / f"{i + 1}.tif")
        sixteen_bit(50 + i).save(two_sources / "sydney-captions" / "images" / f"scene_{i + 1}.tif")
    code, output, manifest = _build(tmp_path, two_sources)
    assert code == 0, output
    assert manifest["leakage"]["clusters"] == 0 and manifest["leakage"]["images"] == 10
    assert manifest["sources"]["ucm-captions"]["samples"] == 5


def test_the_configured_pixel_limit_is_the_guards(tmp_path: Path, two_sources: Path, monkeypatch) -> None:
    # Pillow's own limit (a process-wide setting) is far below these images: the guard must not use it.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    code, output, manifest = _build(tmp_path, two_sources)
    assert code == 0, output
    assert manifest["leakage"]["images"] == 10 and manifest["issues"]["skipped"] == 0
    config = tmp_path / "small.yaml"
    config.write_text("image: {max_pixels: 1000}\n")
    code, output, manifest = _build(tmp_path, two_sources, "--config", str(config))
    assert code == 0, output
    assert manifest["leakage"]["images"] == 0 and manifest["leakage"]["unreadable_images"] == 10
    listed = manifest["issues"]["list"]
    assert len(listed) == 10 and {i["code"] for i in listed} == {"image_too_large"}
    assert {(i["source"], i["file"]) for i in listed} >= {("ucm-captions", "imgs/1.tif"),
                                                          ("sydney-captions", "images/scene_1.tif")}
    assert manifest["counts"]["records"] == 0


def test_an_unreadable_image_is_named_once_and_the_mix_goes_on(tmp_path: Path, two_sources: Path) -> None:
    image = two_sources / "ucm-captions" / "imgs" / "2.tif"
    image.write_bytes(image.read_bytes()[:300])
    code, output, manifest = _build(tmp_path, two_sources)
    assert code == 0, output
    listed = [i for i in manifest["issues"]["list"] if i["file"] == "imgs/2.tif"]
    assert len(listed) == 1 and listed[0]["code"] == "image_unreadable" and listed[0]["source"] == "ucm-captions"
    assert manifest["leakage"]["unreadable_images"] == 1 and manifest["sources"]["ucm-captions"]["samples"] == 4
