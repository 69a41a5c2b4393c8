"""The one rule for "inside a window": what tiling keeps, what the box renderers write and what
`validate` accepts all come from here.

An object kept in a window (or in its image) is clipped to it whenever any part of it lies
outside, however small, so its polygon and horizontal box lie in the window by construction; the
object as annotated stays in the source's label file, which `meta.source_image` names. A box is
inside a `width` x `height` window when x1, x2 lie in [0, width] and y1, y2 in [0, height]. Boxes
carry float noise from clipping, from the shift into the window's frame and from rounding to 0.1 px,
so a coordinate within `EDGE_SLACK` of an edge is taken to be on it and written there (`on_window`);
a box farther out can only come from a bug (or a hand-edited record) and is refused by name.
"""

from __future__ import annotations

import math

from rsgpt4v.core.schema import Box, Obj
from rsgpt4v.imaging.geometry import bounding_box, clip_polygon, polygon_area

# Pixels past an edge that still count as on it: float noise, never a visible part of an object.
EDGE_SLACK = 1.0
# An object is "truncated" only when a visible part of it is cut off, not by rounding noise.
FULLY_INSIDE = 0.999


class OutsideWindow(ValueError):
    """A box that is not inside its window (nor within `EDGE_SLACK` of it); the message says where."""


def inside(box: Box, width: float, height: float, slack: float = 0.0) -> bool:
    """Whether `box` (x1, y1, x2, y2, finite, ordered) lies in the `width` x `height` window, give or
    take `slack` pixels."""
    x1, y1, x2, y2 = box
    return -slack <= x1 and -slack <= y1 and x2 <= width + slack and y2 <= height + slack


def on_window(box: Box, width: int, height: int) -> Box:
    """`box` with coordinates within `EDGE_SLACK` of an edge put on it; OutsideWindow when it is not
    ordered and finite, or lies farther out."""
    x1, y1, x2, y2 = box
    if not all(math.isfinite(v) for v in box) or x2 < x1 or y2 < y1:
        raise OutsideWindow(f"box {list(box)} is not x1 <= x2, y1 <= y2")
    if not inside(box, width, height, EDGE_SLACK):
        raise OutsideWindow(f"box {list(box)} lies outside the {width}x{height} image")
    return (min(max(x1, 0.0), width), min(max(y1, 0.0), height),
            min(max(x2, 0.0), width), min(max(y2, 0.0), height))


def clip_object(obj: Obj, rect: Box) -> tuple[Obj | None, float]:
    """The part of `obj` inside `rect` (source pixels), and the fraction of its area that is; None
    when none of it is. An object wholly inside comes back as it is; any other is clipped, and marked
    truncated when at least `1 - FULLY_INSIDE` of it is cut off."""
    x0, y0, x1, y1 = rect
    bx0, by0, bx1, by1 = obj.box
    if bx0 >= x0 and by0 >= y0 and bx1 <= x1 and by1 <= y1:
        return obj, 1.0
    if bx1 <= x0 or bx0 >= x1 or by1 <= y0 or by0 >= y1:
        return None, 0.0
    area = polygon_area(obj.polygon)
    clipped = clip_polygon(obj.polygon, rect)
    part = polygon_area(clipped)
    if area <= 0 or part <= 0:
        return None, 0.0
    fraction = min(part / area, 1.0)
    truncated = obj.truncated or fraction < FULLY_INSIDE
    # The box of the clipped polygon, and never past the rectangle: a polygon whose box was given
    # separately (horizontal-box sources) is held to the same rule.
    cx0, cy0, cx1, cy1 = bounding_box(clipped)
    box = (max(cx0, x0), max(cy0, y0), min(cx1, x1), min(cy1, y1))
    return obj.model_copy(update={"polygon": tuple(clipped), "box": box, "truncated": truncated}), fraction
