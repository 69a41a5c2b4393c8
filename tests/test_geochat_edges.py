"""GeoChat boxes near a window's edge: written unclamped, they decode onto their objects.

GeoChat writes an oriented object as its unrotated rectangle on a 0..100 grid and an angle; for a
long object turned near an edge that rectangle reaches past the frame. GeoChat's demo reads the
values with `-?\\d+` and scales them by the side as they are, so a value of 104 or -3 is what puts the
decoded object back where it is. Checked on every object of the real P0706 (a marina, four 1024 px
windows), in both box spaces.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from PIL import Image

from rsgpt4v.core.config import load_config
from rsgpt4v.core.schema import Sample
from rsgpt4v.imaging.geometry import oriented_rect, rect_corners
from rsgpt4v.imaging.tiling import clip_to_image, make_scenes
from rsgpt4v.records.boxtext import parse_shape, render_box
from rsgpt4v.sources.dota import DOTA
from rsgpt4v.tasks import window_box


def _geochat_demo_rect(text: str, side: tuple[int, int], offset: tuple[int, int]) -> tuple[float, ...]:
    """GeoChat's demo: integers with `-?\\d+`, angle last, each value / 100 * the side it measures."""
    x1, y1, x2, y2, theta = (int(v) for v in re.findall(r"-?\d+", text))
    px = [x1 / 100 * side[0] - offset[0], y1 / 100 * side[1] - offset[1],
          x2 / 100 * side[0] - offset[0], y2 / 100 * side[1] - offset[1]]
    return ((px[0] + px[2]) / 2, (px[1] + px[3]) / 2, px[2] - px[0], px[3] - px[1], float(theta))


@pytest.mark.parametrize("space", ["image", "square"])
def test_geochat_boxes_decode_within_one_percent_near_edges(real_dir: Path, space: str) -> None:
    source = DOTA(real_dir / "dota_v1.0_tiled")
    sample = next(s for s in source if isinstance(s, Sample) and s.image_id == "P0706")
    with Image.open(sample.image_path) as im:
        width, height = im.size
    objects, _ = clip_to_image(sample, width, height)
    scenes = make_scenes(sample, objects, width, height, load_config().tiling)
    checked = past_the_edge = 0
    worst = 0.0
    for scene in scenes:
        w, h = scene.width, scene.height
        side = (max(w, h),) * 2 if space == "square" else (w, h)
        offset = ((side[0] - w) // 2, (side[1] - h) // 2)
        for obj in scene.objects:
            box = window_box(scene, obj)
            text = render_box(box.box, "geochat", w, h, space, polygon=box.polygon)
            values = [int(v) for v in re.findall(r"-?\d+", text)[:4]]
            past_the_edge += any(v < 0 or v > 100 for v in values)
            decoded = rect_corners(_geochat_demo_rect(text, side, offset))
            truth = rect_corners(oriented_rect(box.polygon))
            # the same rectangle: every corner of the object's rectangle has a decoded corner close by
            error = max(min(math.dist(t, d) for d in decoded) for t in truth)
            worst = max(worst, error / max(w, h))
            assert error <= 0.01 * max(w, h), (scene.key, text, box.polygon)
            # our own parser reads it the same way
            assert parse_shape(text, "geochat", w, h, space).rect == pytest.approx(
                _geochat_demo_rect(text, side, offset))
            checked += 1
    assert checked > 300 and past_the_edge > 0   # the edge cases are there, and pass
    assert worst < 0.01
