from __future__ import annotations

import pytest

from rsgpt4v.boxtext import FLAVOURS, parse_box, render_box
from rsgpt4v.geometry import bounding_box, clip_polygon, polygon_area


def test_area_and_bounding_box_of_dota_quad() -> None:
    quad = [(674, 375), (683, 375), (684, 394), (675, 395)]
    assert polygon_area(quad) == pytest.approx(176.0)
    assert bounding_box(quad) == (674, 375, 684, 395)


def test_clip_keeps_the_part_inside() -> None:
    square = [(-10.0, 0.0), (10.0, 0.0), (10.0, 10.0), (-10.0, 10.0)]
    clipped = clip_polygon(square, (0.0, 0.0, 100.0, 100.0))
    assert polygon_area(clipped) == pytest.approx(100.0)
    assert bounding_box(clipped) == (0.0, 0.0, 10.0, 10.0)


def test_clip_outside_is_empty() -> None:
    assert clip_polygon([(200.0, 200.0), (210.0, 200.0), (210.0, 210.0)], (0.0, 0.0, 100.0, 100.0)) == []


def test_box_formats_render_as_their_families_expect() -> None:
    box = (100.0, 50.0, 300.0, 150.0)
    assert render_box(box, "llava", 400, 200) == "[0.25, 0.25, 0.75, 0.75]"
    assert render_box(box, "geochat", 400, 200) == "{<25><25><75><75>|<0>}"
    assert render_box(box, "qwen2vl", 400, 200) == "<|box_start|>(250,250),(750,750)<|box_end|>"
    assert render_box(box, "qwen", 400, 200) == render_box(box, "qwen2vl", 400, 200)
    assert render_box(box, "qwen25vl", 400, 200) == "[100, 50, 300, 150]"
    assert render_box(box, "pixel", 400, 200) == "[100, 50, 300, 150]"


@pytest.mark.parametrize("fmt", sorted(FLAVOURS))
@pytest.mark.parametrize("space", ["image", "square"])
def test_round_trip_within_half_a_grid_step(fmt: str, space: str) -> None:
    box = (123.4, 56.7, 389.0, 190.2)
    back = parse_box(render_box(box, fmt, 400, 200, space), fmt, 400, 200, space)
    f = FLAVOURS[fmt]
    sx, sy = f.step(f.frame(400, 200, space))
    for got, want, step in zip(back, box, (sx, sy, sx, sy)):
        assert abs(got - want) <= step / 2 + 1e-9


def test_unknown_box_format_names_the_choices() -> None:
    with pytest.raises(ValueError, match="llava"):
        render_box((0, 0, 1, 1), "yolo", 10, 10)
