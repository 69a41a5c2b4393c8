"""Plane geometry on pixel coordinates: polygons, horizontal boxes, clipping, and box text codecs.

A box codec turns a pixel box, in the frame of the image a record points at, into the text a model
family expects, and back. Every codec is listed in `BOX_FORMATS`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rsgpt4v.schema import Box, Point


def polygon_area(poly: Sequence[Point]) -> float:
    """Unsigned area by the shoelace formula."""
    n = len(poly)
    if n < 3:
        return 0.0
    acc = 0.0
    for i in range(n):
        x1, y1 = poly[i]
        x2, y2 = poly[(i + 1) % n]
        acc += x1 * y2 - x2 * y1
    return abs(acc) / 2.0


def bounding_box(poly: Sequence[Point]) -> Box:
    xs = [p[0] for p in poly]
    ys = [p[1] for p in poly]
    return (min(xs), min(ys), max(xs), max(ys))


def clip_polygon(poly: Sequence[Point], rect: Box) -> list[Point]:
    """Sutherland-Hodgman clipping of a polygon against an axis-aligned rectangle."""
    x0, y0, x1, y1 = rect
    edges = (
        (lambda p: p[0] >= x0, lambda a, b: _cross_x(a, b, x0)),
        (lambda p: p[0] <= x1, lambda a, b: _cross_x(a, b, x1)),
        (lambda p: p[1] >= y0, lambda a, b: _cross_y(a, b, y0)),
        (lambda p: p[1] <= y1, lambda a, b: _cross_y(a, b, y1)),
    )
    out = list(poly)
    for inside, cross in edges:
        if not out:
            break
        src, out = out, []
        prev = src[-1]
        for cur in src:
            if inside(cur):
                if not inside(prev):
                    out.append(cross(prev, cur))
                out.append(cur)
            elif inside(prev):
                out.append(cross(prev, cur))
            prev = cur
    return out


def _cross_x(a: Point, b: Point, x: float) -> Point:
    t = (x - a[0]) / (b[0] - a[0])
    return (x, a[1] + t * (b[1] - a[1]))


def _cross_y(a: Point, b: Point, y: float) -> Point:
    t = (y - a[1]) / (b[1] - a[1])
    return (a[0] + t * (b[0] - a[0]), y)


def _fmt_unit(v: float) -> str:
    return f"{min(max(v, 0.0), 1.0):.2f}"


def _render_llava(box: Box, w: int, h: int) -> str:
    x1, y1, x2, y2 = box
    return f"[{_fmt_unit(x1 / w)}, {_fmt_unit(y1 / h)}, {_fmt_unit(x2 / w)}, {_fmt_unit(y2 / h)}]"


def _grid(v: float, extent: int, steps: int) -> int:
    return min(max(round(v / extent * steps), 0), steps)


def _render_geochat(box: Box, w: int, h: int) -> str:
    x1, y1, x2, y2 = box
    g = [_grid(x1, w, 100), _grid(y1, h, 100), _grid(x2, w, 100), _grid(y2, h, 100)]
    return "{" + "".join(f"<{v}>" for v in g) + "|0}"


def _render_qwen(box: Box, w: int, h: int) -> str:
    x1, y1, x2, y2 = box
    return f"({_grid(x1, w, 1000)},{_grid(y1, h, 1000)}),({_grid(x2, w, 1000)},{_grid(y2, h, 1000)})"


def _render_pixel(box: Box, w: int, h: int) -> str:
    return "[" + ", ".join(str(round(v)) for v in box) + "]"


BOX_FORMATS = {
    "llava": _render_llava,
    "geochat": _render_geochat,
    "qwen": _render_qwen,
    "pixel": _render_pixel,
}

_NUM = r"-?\d+(?:\.\d+)?"
BOX_PATTERNS = {
    "llava": re.compile(rf"\[({_NUM}), ({_NUM}), ({_NUM}), ({_NUM})\]"),
    "geochat": re.compile(rf"\{{<({_NUM})><({_NUM})><({_NUM})><({_NUM})>\|{_NUM}\}}"),
    "qwen": re.compile(rf"\(({_NUM}),({_NUM})\),\(({_NUM}),({_NUM})\)"),
    "pixel": re.compile(rf"\[({_NUM}), ({_NUM}), ({_NUM}), ({_NUM})\]"),
}
_SCALE = {"llava": 1.0, "geochat": 100.0, "qwen": 1000.0}


def render_box(box: Box, fmt: str, width: int, height: int) -> str:
    """Box text in format `fmt` for a pixel box in an image of `width` x `height`."""
    try:
        return BOX_FORMATS[fmt](box, width, height)
    except KeyError:
        raise ValueError(f"unknown box format {fmt!r}; choose from {', '.join(BOX_FORMATS)}") from None


def parse_box(text: str, fmt: str, width: int, height: int) -> Box:
    """Inverse of `render_box`, back to pixels (to within the format's grid step)."""
    m = BOX_PATTERNS[fmt].fullmatch(text.strip())
    if m is None:
        raise ValueError(f"not a {fmt} box: {text!r}")
    x1, y1, x2, y2 = (float(v) for v in m.groups())
    if fmt == "pixel":
        return (x1, y1, x2, y2)
    s = _SCALE[fmt]
    return (x1 / s * width, y1 / s * height, x2 / s * width, y2 / s * height)
