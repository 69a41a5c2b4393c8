"""Set-of-Mark overlays: numbered marks on the objects a local request describes, placed to be legible.

A label must be read as belonging to its own object: it sits where its centre is nearer its own
object's outline than any other marked object's outline, covers no other marked object, and
overlaps no other label; where it can, its centre is also nearer its own object's box than any
other's (the measure a reader of a long diagonal pier and its neighbours would use). Candidates are
tried in order of preference (inside a large object, then touching a side, a corner or, for a
turned object, the middle of its outline, then further out with a leader line back to the object);
the most crowded objects are placed first, while they still have room. Neighbouring marks get
different colours.

Everything here works in the pixels of the image the model is sent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

from rsgpt4v.core.schema import Box, Obj, Point, Scene
from rsgpt4v.imaging.geometry import bounding_box

# Distinct, saturated colours that stay visible on both vegetation and concrete.
PALETTE = [(255, 48, 48), (0, 200, 255), (255, 214, 0), (255, 0, 220), (0, 255, 96),
           (255, 128, 0), (160, 110, 255), (255, 255, 255)]

# A label may cover at most this fraction of another marked object's box.
MAX_COVER = 0.10
# Directions tried around an object: (dx, dy) unit steps, sides before corners.
_DIRECTIONS = [(0, -1), (0, 1), (1, 0), (-1, 0), (1, -1), (-1, -1), (1, 1), (-1, 1)]
_LEADER_STEPS = (0.0, 1.0, 2.0, 3.5, 5.0)


@dataclass(frozen=True)
class Mark:
    """An object of a scene and the number drawn on it (1-based, in the scene's object order)."""

    id: int
    obj: Obj


@dataclass(frozen=True)
class PlacedLabel:
    """Where one mark's label went, in sent-image pixels; `anchor` is the leader line's object end."""

    id: int
    box: Box
    colour: tuple[int, int, int]
    anchor: Point | None


def marks_of(objects: Sequence[Obj]) -> list[Mark]:
    return [Mark(i, obj) for i, obj in enumerate(objects, start=1)]


def label_font_size(width: int, height: int) -> int:
    """Label text height grows with the image so marks stay readable at any window size."""
    return max(12, min(28, round(max(width, height) / 60)))


def _centroid(poly: Sequence[Point]) -> Point:
    return sum(p[0] for p in poly) / len(poly), sum(p[1] for p in poly) / len(poly)


def _centre(b: Box) -> Point:
    return (b[0] + b[2]) / 2, (b[1] + b[3]) / 2


def _point_box_distance(x: float, y: float, b: Box) -> float:
    dx = max(b[0] - x, 0.0, x - b[2])
    dy = max(b[1] - y, 0.0, y - b[3])
    return math.hypot(dx, dy)


def _point_polygon_distance(x: float, y: float, poly: Sequence[Point]) -> float:
    """0 inside the polygon, else the distance to its nearest edge."""
    inside = False
    best = math.inf
    n = len(poly)
    for i in range(n):
        (ax, ay), (bx, by) = poly[i], poly[(i + 1) % n]
        if (ay > y) != (by > y) and x < (bx - ax) * (y - ay) / (by - ay) + ax:
            inside = not inside
        dx, dy = bx - ax, by - ay
        t = 0.0 if dx == dy == 0 else max(0.0, min(1.0, ((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy)))
        best = min(best, math.hypot(x - ax - t * dx, y - ay - t * dy))
    return 0.0 if inside else best


def _overlap(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def _area(b: Box) -> float:
    return max(b[2] - b[0], 1e-6) * max(b[3] - b[1], 1e-6)


def label_is_legible(label: Box, own: Box, others: Sequence[Box]) -> tuple[bool, bool]:
    """(nearest: the label's centre is nearer its own box than any other, covers: it covers more than
    MAX_COVER of another box): the two measures the marks are held to."""
    cx, cy = _centre(label)
    mine = _point_box_distance(cx, cy, own)
    nearest = all(mine < _point_box_distance(cx, cy, b) for b in others)
    covers = any(_overlap(label, b) > MAX_COVER * _area(b) for b in others)
    return nearest, covers


@dataclass(frozen=True)
class _Near:
    boxes: list[Box]
    polygons: list[Sequence[Point]]
    context: list[Box]


class _Placer:
    def __init__(self, polygons: dict[int, Sequence[Point]], boxes: dict[int, Box], size: tuple[int, int],
                 label_sizes: dict[int, tuple[float, float]], context: Sequence[Box]) -> None:
        self.polygons = polygons
        self.boxes = boxes
        self.width, self.height = size
        self.label_sizes = label_sizes
        self.context = list(context)
        self.placed: dict[int, Box] = {}
        self.gap = 2.0

    def _inside(self, b: Box) -> bool:
        return b[0] >= 0 and b[1] >= 0 and b[2] <= self.width and b[3] <= self.height

    def _candidates(self, mid: int) -> list[tuple[Box, bool]]:
        """(label box, needs a leader line) in order of preference."""
        b = self.boxes[mid]
        w, h = self.label_sizes[mid]
        cx, cy = _centre(b)
        out: list[tuple[Box, bool]] = []
        if b[2] - b[0] >= 2.5 * w and b[3] - b[1] >= 2.5 * h:
            out.append(((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), False))
        poly = self.polygons[mid]
        px, py = _centroid(poly)
        # Points on a turned object's outline (corners, middles of its sides), to step out from.
        rim = [*poly, *(((a[0] + b2[0]) / 2, (a[1] + b2[1]) / 2) for a, b2 in zip(poly, [*poly[1:], poly[0]]))]
        for step in _LEADER_STEPS:
            reach = step * max(w, h)
            for dx, dy in _DIRECTIONS:
                x = {0: cx - w / 2, 1: b[2] + self.gap + reach, -1: b[0] - self.gap - reach - w}[dx]
                y = {0: cy - h / 2, 1: b[3] + self.gap + reach, -1: b[1] - self.gap - reach - h}[dy]
                out.append(((x, y, x + w, y + h), step > 0))
            for rx, ry in rim:
                vx, vy = rx - px, ry - py
                norm = math.hypot(vx, vy) or 1.0
                push = self.gap + reach + math.hypot(w, h) / 2
                lx, ly = rx + vx / norm * push, ry + vy / norm * push
                out.append(((lx - w / 2, ly - h / 2, lx + w / 2, ly + h / 2), step > 0))
        return out

    def _cost(self, mid: int, label: Box, order: int, near: _Near) -> float | None:
        """None when the label breaks a rule; else lower is better."""
        if not self._inside(label):
            return None
        box_nearest, covers = label_is_legible(label, self.boxes[mid], near.boxes)
        if covers or any(_overlap(label, p) > 0 for p in self.placed.values()):
            return None
        cx, cy = _centre(label)
        mine = _point_polygon_distance(cx, cy, self.polygons[mid])
        if any(_point_polygon_distance(cx, cy, p) <= mine for p in near.polygons):
            return None
        hidden = sum(_overlap(label, c) / _area(c) for c in near.context)
        return order + 4.0 * hidden + (0.0 if box_nearest else 1000.0)

    def _near(self, mid: int) -> _Near:
        """The other objects that can matter to a label of `mid`: those within reach of any candidate.
        A candidate's centre is within `reach` of the object's box, so no object farther than twice
        that (plus the box's own size) can be nearer to it."""
        b = self.boxes[mid]
        w, h = self.label_sizes[mid]
        reach = self.gap + _LEADER_STEPS[-1] * max(w, h) + math.hypot(w, h)
        margin = 2 * reach + math.hypot(b[2] - b[0], b[3] - b[1])
        area = (b[0] - margin, b[1] - margin, b[2] + margin, b[3] + margin)
        ids = [i for i, o in self.boxes.items() if i != mid and _overlap(area, o) > 0]
        return _Near([self.boxes[i] for i in ids], [self.polygons[i] for i in ids],
                     [c for c in self.context if _overlap(area, c) > 0])

    def place(self, mid: int) -> tuple[Box, bool]:
        best: tuple[float, Box, bool] | None = None
        near = self._near(mid)
        for order, (label, leader) in enumerate(self._candidates(mid)):
            cost = self._cost(mid, label, order, near)
            if cost is not None and (best is None or cost < best[0]):
                best = (cost, label, leader)
            if best is not None and best[0] <= order + 1:
                break  # every later candidate costs at least its own order, more than this one
        if best is None:
            # Nowhere fits every rule: the label goes on the object itself, clamped into the image,
            # which keeps it nearest its own object even if it overlaps a neighbour.
            w, h = self.label_sizes[mid]
            cx, cy = _centroid(self.polygons[mid])
            x = min(max(cx - w / 2, 0.0), self.width - w)
            y = min(max(cy - h / 2, 0.0), self.height - h)
            best = (0.0, (x, y, x + w, y + h), False)
        self.placed[mid] = best[1]
        return best[1], best[2]


def _crowding(boxes: dict[int, Box], mid: int, radius: float) -> int:
    cx, cy = _centre(boxes[mid])
    return sum(1 for i, o in boxes.items() if i != mid and _point_box_distance(cx, cy, o) < radius)


def _colours(labels: dict[int, Box]) -> dict[int, tuple[int, int, int]]:
    """Greedy colouring: a mark avoids the colours of the marks whose labels are nearest its own."""
    chosen: dict[int, int] = {}
    for mid in sorted(labels):
        here = _centre(labels[mid])
        near = sorted((math.dist(here, _centre(labels[o])), o) for o in chosen)[: len(PALETTE) - 1]
        used = {chosen[o] for _, o in near}
        chosen[mid] = next((c for c in range(len(PALETTE)) if c not in used), mid % len(PALETTE))
    return {mid: PALETTE[c] for mid, c in chosen.items()}


def place_labels(marks: Sequence[tuple[int, Sequence[Point]]], size: tuple[int, int],
                 context: Sequence[Sequence[Point]] = ()) -> list[PlacedLabel]:
    """Label boxes for `marks` (id, polygon in image pixels) on an image of `size`; `context` are the
    outlines of unmarked objects, which labels avoid where they can."""
    font = ImageFont.load_default(size=label_font_size(*size))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    boxes: dict[int, Box] = {}
    label_sizes: dict[int, tuple[float, float]] = {}
    for mid, poly in marks:
        boxes[mid] = bounding_box(poly)
        left, top, right, bottom = probe.textbbox((0, 0), str(mid), font=font)
        label_sizes[mid] = (right - left + 4.0, bottom - top + 4.0)
    placer = _Placer(dict(marks), boxes, size, label_sizes, [bounding_box(c) for c in context])
    radius = 3 * max((h for _, h in label_sizes.values()), default=12.0)
    order = sorted(boxes, key=lambda m: (-_crowding(boxes, m, radius), m))
    placed: dict[int, tuple[Box, bool]] = {mid: placer.place(mid) for mid in order}
    colours = _colours({mid: lb for mid, (lb, _) in placed.items()})
    result = []
    for mid in sorted(placed):
        label, leader = placed[mid]
        anchor = None
        if leader:
            b = boxes[mid]
            cx, cy = _centre(label)
            anchor = (min(max(cx, b[0]), b[2]), min(max(cy, b[1]), b[3]))
        result.append(PlacedLabel(mid, label, colours[mid], anchor))
    return result


def draw_marks(im: Image.Image, marks: Sequence[tuple[int, Sequence[Point]]],
               context: Sequence[Sequence[Point]] = ()) -> tuple[Image.Image, list[PlacedLabel]]:
    """The image with each polygon outlined and labelled with its id; and where the labels went."""
    out = im.copy()
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default(size=label_font_size(*im.size))
    width = max(1, round(max(im.size) / 500))
    labels = place_labels(marks, im.size, context)
    polygons = dict(marks)
    for label in labels:
        draw.polygon([tuple(p) for p in polygons[label.id]], outline=label.colour, width=width)
    for label in labels:
        x0, y0, x1, y1 = label.box
        if label.anchor is not None:
            draw.line([_centre(label.box), label.anchor], fill=label.colour, width=width)
        draw.rectangle((x0, y0, x1, y1), fill=(0, 0, 0))
        text = str(label.id)
        left, top, _, _ = draw.textbbox((0, 0), text, font=font)
        draw.text((x0 + 2 - left, y0 + 2 - top), text, fill=label.colour, font=font)
    return out, labels


def mark_chunk(scene: Scene, clean: Image.Image, scale: float,
               chunk: Sequence[Mark]) -> tuple[Image.Image, list[PlacedLabel], dict[int, list[Point]]]:
    """The window image `clean` (source pixels times `scale`) with the marks of one local request; the
    labels placed, and each marked polygon in the image's pixels. The scene's other objects, and its
    cut-off context, are what labels try not to hide."""
    x0, y0, _, _ = scene.window

    def sent(points: Sequence[Point]) -> list[Point]:
        return [((x - x0) * scale, (y - y0) * scale) for x, y in points]

    listed = {m.id for m in chunk}
    context = [sent(o.polygon) for o in scene.context]
    context += [sent(m.obj.polygon) for m in marks_of(scene.objects) if m.id not in listed]
    polygons = {m.id: sent(m.obj.polygon) for m in chunk}
    marked, labels = draw_marks(clean, list(polygons.items()), context)
    return marked, labels, polygons
