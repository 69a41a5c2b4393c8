"""Plane geometry on pixel coordinates: polygons, horizontal and oriented boxes, clipping.

The box text codecs live in `rsgpt4v.records.boxtext`; this module holds the shapes they encode.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rsgpt4v.core.schema import Box, Point

# An oriented rectangle: centre x, centre y, width, height (pixels) and an angle in degrees.
Rect = tuple[float, float, float, float, float]


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


def convex_hull(points: Sequence[Point]) -> list[Point]:
    """Andrew's monotone chain, counter-clockwise in a y-up frame, without repeated points."""
    pts = sorted(set((float(x), float(y)) for x, y in points))
    if len(pts) <= 2:
        return pts

    def cross(o: Point, a: Point, b: Point) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[Point] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list[Point] = []
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return lower[:-1] + upper[:-1]


def oriented_rect(poly: Sequence[Point]) -> Rect:
    """The smallest-area rectangle around a polygon, in GeoChat's convention.

    GeoChat writes an oriented box as the unrotated rectangle `cx -/+ w/2, cy -/+ h/2` and an angle
    θ that its demo turns into corners with OpenCV's `getRotationMatrix2D(centre, θ)`: the rectangle's
    x axis becomes (cos θ, -sin θ) in image pixels (positive θ is counter-clockwise on screen). θ is
    kept in [0, 90) by swapping width and height, so it is never negative (TEOChat's GeoChat parser
    reads `<\\d+>` only); an axis-aligned rectangle gets θ = 0 and its own width and height.
    """
    hull = convex_hull(poly)
    if len(hull) < 3:
        x1, y1, x2, y2 = bounding_box(poly)
        return ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, 0.0)
    best: tuple[float, float, Rect] | None = None
    for i, a in enumerate(hull):
        b = hull[(i + 1) % len(hull)]
        theta = math.degrees(math.atan2(-(b[1] - a[1]), b[0] - a[0])) % 90.0
        if theta > 90.0 - 1e-9:
            theta = 0.0
        rect = _rect_at(hull, theta)
        key = (round(rect[2] * rect[3], 6), theta)  # area first; the smaller angle breaks ties
        if best is None or key < best[:2]:
            best = (*key, rect)
    assert best is not None
    return best[2]


def _rect_at(points: Sequence[Point], theta: float) -> Rect:
    """The rectangle around `points` whose x axis is at `theta` degrees (GeoChat's convention)."""
    c, s = math.cos(math.radians(theta)), math.sin(math.radians(theta))
    # u = (c, -s) is the rectangle's x axis, v = (s, c) its y axis, both in image pixels.
    us = [x * c - y * s for x, y in points]
    vs = [x * s + y * c for x, y in points]
    u0, u1, v0, v1 = min(us), max(us), min(vs), max(vs)
    um, vm = (u0 + u1) / 2, (v0 + v1) / 2
    return (um * c + vm * s, -um * s + vm * c, u1 - u0, v1 - v0, theta)


def rect_corners(rect: Rect) -> list[Point]:
    """The four corners of an oriented rectangle, in GeoChat's convention (see `oriented_rect`)."""
    cx, cy, w, h, theta = rect
    c, s = math.cos(math.radians(theta)), math.sin(math.radians(theta))
    corners = []
    for dx, dy in ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)):
        corners.append((cx + dx * c + dy * s, cy - dx * s + dy * c))
    return corners
