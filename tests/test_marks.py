"""Set-of-Mark labels on the real DOTA windows: each label is read as its own object's, and hides no other."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from rsgpt4v.core.config import load_config
from rsgpt4v.core.schema import Sample, Scene
from rsgpt4v.imaging.geometry import bounding_box
from rsgpt4v.imaging.images import fit, open_image
from rsgpt4v.imaging.tiling import clip_to_image, make_scenes
from rsgpt4v.prompting.local_plan import plan_local
from rsgpt4v.prompting.marks import PALETTE, label_is_legible, mark_chunk, marks_of, place_labels
from rsgpt4v.sources.dota import DOTA


def _scenes(root: Path) -> list[tuple[Scene, Image.Image]]:
    cfg = load_config()
    out = []
    for sample in DOTA(root):
        if not isinstance(sample, Sample) or not sample.image_path.exists():
            continue
        image = open_image(sample.image_path, cfg.image.max_pixels)
        objects, _ = clip_to_image(sample, image.width, image.height)
        out += [(scene, image) for scene in make_scenes(sample, objects, image.width, image.height, cfg.tiling)]
    return out


def _measure(scenes: list[tuple[Scene, Image.Image]], cfg_overrides: dict | None = None) -> tuple[int, int, int]:
    """(labels, labels nearest their own object, labels covering > 10 % of another marked object's box)
    over every marked image the local stage would send."""
    cfg = load_config(overrides=cfg_overrides)
    labels = nearest = covering = 0
    for scene, image in scenes:
        clean, scale = fit(image.crop(scene.window), cfg.image.max_side)
        for chunk in plan_local(marks_of(scene.objects), cfg).chunks:
            marked, placed, polygons = mark_chunk(scene, clean, scale, chunk)
            assert marked.size == clean.size
            boxes = {i: bounding_box(p) for i, p in polygons.items()}
            for label in placed:
                near, covers = label_is_legible(label.box, boxes[label.id],
                                                [b for i, b in boxes.items() if i != label.id])
                labels += 1
                nearest += near
                covering += covers
    return labels, nearest, covering


@pytest.mark.parametrize("folder", ["dota_v1.0", "dota_v1.0_tiled"])
def test_labels_on_real_windows_are_nearest_their_own_object(real_dir: Path, folder: str) -> None:
    scenes = _scenes(real_dir / folder)
    assert scenes
    labels, nearest, covering = _measure(scenes)
    assert labels >= 40
    assert nearest >= 0.95 * labels
    assert covering == 0


def test_labels_stay_legible_when_every_object_of_p1888_is_marked_at_once(real_dir: Path) -> None:
    """The hardest case: 64 tightly parked buses and cars in one request (no per-request cap)."""
    scenes = _scenes(real_dir / "dota_v1.0")
    labels, nearest, covering = _measure(scenes, {"local": {"output_tokens_per_object": 1, "max_objects": 100},
                                                  "model": {"max_output_tokens": {"local": 100_000}}})
    assert labels == 64
    assert nearest >= 0.95 * labels
    assert covering <= 0.1 * labels


def _square(x: float, y: float, side: float) -> list[tuple[float, float]]:
    return [(x, y), (x + side, y), (x + side, y + side), (x, y + side)]


def test_a_row_of_small_objects_gets_labels_beside_them_in_distinct_colours() -> None:
    marks = [(i + 1, _square(100 + 14 * i, 200, 10)) for i in range(8)]
    placed = place_labels(marks, (512, 512))
    boxes = {i: bounding_box(p) for i, p in marks}
    for label in placed:
        near, covers = label_is_legible(label.box, boxes[label.id], [b for i, b in boxes.items() if i != label.id])
        assert near and not covers
    for a in placed:
        for b in placed:
            if a.id < b.id:
                assert min(a.box[2], b.box[2]) <= max(a.box[0], b.box[0]) or \
                       min(a.box[3], b.box[3]) <= max(a.box[1], b.box[1]), "labels overlap"
    neighbours = sorted(placed, key=lambda label: label.id)
    assert all(x.colour != y.colour for x, y in zip(neighbours, neighbours[1:]))
    assert {label.colour for label in placed} <= set(PALETTE)


def test_a_large_object_carries_its_label_inside() -> None:
    (label,) = place_labels([(1, _square(100, 100, 200))], (512, 512))
    assert 100 < label.box[0] and label.box[2] < 300 and label.anchor is None
