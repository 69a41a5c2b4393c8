from __future__ import annotations

import pytest

from rsgpt4v.imaging.geometry import bounding_box, clip_polygon, oriented_rect, polygon_area, rect_corners
from rsgpt4v.records.boxtext import FLAVOURS, parse_box, render_box


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
    padded = space == "square" and fmt in ("llava", "geochat")
    sx, sy = (400, 400) if padded else (400, 200)
    unit = {"llava": 0.01, "geochat": 0.01, "qwen2vl": 0.001}.get(fmt)
    steps = (sx * unit, sy * unit) if unit else (1.0, 1.0)
    for i, (got, want) in enumerate(zip(back, box)):
        assert abs(got - want) <= steps[i % 2] / 2 + 1e-9


def test_square_space_is_llavas_expand2square_canvas() -> None:
    # 400 x 200 on a 400 x 400 canvas: pasted 100 px down; x unchanged.
    assert render_box((100.0, 50.0, 300.0, 150.0), "llava", 400, 200, "square") == "[0.25, 0.38, 0.75, 0.62]"
    assert render_box((100.0, 50.0, 300.0, 150.0), "geochat", 400, 200, "square") == "{<25><38><75><62>|<0>}"
    # A portrait 201 x 400 image: (400 - 201) // 2 = 99 px to the left, as LLaVA's integer division puts it.
    assert render_box((0.0, 0.0, 201.0, 400.0), "pixel", 201, 400, "square") == "[0, 0, 201, 400]"
    assert parse_box("[0.25, 0.00, 0.75, 1.00]", "llava", 201, 400, "square") == (1.0, 0.0, 201.0, 400.0)


def test_geochat_writes_the_real_angle_of_an_oriented_polygon() -> None:
    # A 40 x 10 rectangle turned 30 degrees counter-clockwise on screen about (50, 50).
    corners = rect_corners((50.0, 50.0, 40.0, 10.0, 30.0))
    assert oriented_rect(corners) == pytest.approx((50.0, 50.0, 40.0, 10.0, 30.0))
    text = render_box(bounding_box(corners), "geochat", 100, 100, polygon=corners)
    assert text == "{<30><45><70><55>|<30>}"
    # Turned the other way: the same rectangle with width and height swapped, at 90 - 30 degrees.
    mirrored = rect_corners((50.0, 50.0, 40.0, 10.0, -30.0))
    assert render_box(bounding_box(mirrored), "geochat", 100, 100, polygon=mirrored) == "{<45><30><55><70>|<60>}"
    assert render_box((10.0, 20.0, 30.0, 60.0), "geochat", 100, 100) == "{<10><20><30><60>|<0>}"


def test_qwen2vl_never_writes_1000() -> None:
    assert render_box((0.0, 0.0, 400.0, 200.0), "qwen2vl", 400, 200) == "<|box_start|>(0,0),(999,999)<|box_end|>"


def test_unknown_box_format_names_the_choices() -> None:
    with pytest.raises(ValueError, match="llava"):
        render_box((0, 0, 1, 1), "yolo", 10, 10)
