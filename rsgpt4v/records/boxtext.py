"""Box text: how each model family writes a box, in which frame, and the way back to pixels.

A *flavour* writes one box as the family's trainers and parsers read it, and an answer's boxes of
one category the way the family names them:

- `llava`     `[0.12, 0.34, 0.56, 0.78]` (0-1, two decimals); several: `[..], [..]`.
- `geochat`   `{<12><34><56><78>|<θ>}` (0-100, θ in degrees; values past 0..100 are written as they
              are, see `_render_geochat`); an answer's:
              `<p>plane</p> {..}<delim>{..}`, as GeoChat's demo (`extract_substrings`) reads them.
- `qwen2vl`   `<|box_start|>(123,456),(789,999)<|box_end|>` (bins of [0, 1000)); an answer's:
              `<|object_ref_start|>plane<|object_ref_end|>` followed by its boxes.
- `qwen25vl`  `[12, 34, 56, 78]` (pixels); an answer's: `{"bbox_2d": [..], "label": "plane"}, ...`.
- `pixel`     `[12, 34, 56, 78]` (pixels); several: `[..], [..]`.

`qwen` is accepted as another name for `qwen2vl`. Boxes in a question (a region to describe) are
written bare, never with their category, which would give the answer away.

A grounded description (`MENTION_TASKS`) ties phrases of its text to boxes; each *mention* is
written as the family writes a phrase with its boxes: GeoChat `<p>phrase</p> {..}<delim>{..}` (the
`[grounding]` task), Qwen2-VL `<|object_ref_start|>phrase<|object_ref_end|><|box_start|>..`, and
the phrase then its boxes for the others (`phrase [..], [..]`; pixels for qwen25vl). The box
labels of such a record are its phrases.

A *frame* is what normalised numbers are fractions of. `image`: the image the record points at.
`square`: the square LLaVA-1.5 and GeoChat train on with `image_aspect_ratio pad` (LLaVA's
`expand2square` pastes the image at `((side - w) // 2, (side - h) // 2)` on a `side = max(w, h)`
square of the background colour). Only `llava` and `geochat` are padded by their trainers; Qwen2-VL
resizes without padding, and pixel flavours count pixels of the image, so those always use `image`.

GeoChat's oriented boxes follow its demo: the unrotated rectangle's corners, then θ, which OpenCV's
`getRotationMatrix2D(centre, θ)` turns about the centre in pixels (see `geometry.oriented_rect`);
horizontal boxes have θ = 0.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from rsgpt4v.core.schema import Box, RecordBox
from rsgpt4v.imaging.geometry import Rect, bounding_box, oriented_rect, rect_corners
from rsgpt4v.imaging.window import OutsideWindow, on_window

SPACES = ("square", "image")
ALIASES = {"qwen": "qwen2vl"}
# GeoChat's task tokens, put before a question whose answer or question holds boxes.
TASK_TOKENS = {"grounding": "[refer]", "detection": "[refer]", "region_description": "[identify]",
               "grounded_description": "[grounding]"}
# Tasks whose answers tie phrases to boxes (see the module docstring).
MENTION_TASKS = frozenset({"grounded_description"})
PLACEHOLDER_RUN = re.compile(r"<b\d+>(?:, <b\d+>)*")
_PLACEHOLDER = re.compile(r"<(b\d+)>")


class RenderError(ValueError):
    """A box that cannot be written in the chosen flavour; the message says why."""


@dataclass(frozen=True)
class Frame:
    """The canvas normalised coordinates are fractions of, for an image of `width` x `height`."""

    width: int
    height: int
    space: str = "image"

    @property
    def side(self) -> tuple[int, int]:
        if self.space == "square":
            s = max(self.width, self.height)
            return s, s
        return self.width, self.height

    @property
    def offset(self) -> tuple[int, int]:
        """Where the image's top-left corner lies on the canvas (LLaVA's integer division)."""
        if self.space == "square":
            sx, sy = self.side
            return (sx - self.width) // 2, (sy - self.height) // 2
        return 0, 0

    def to_unit(self, x: float, y: float) -> tuple[float, float]:
        (sx, sy), (ox, oy) = self.side, self.offset
        return (x + ox) / sx, (y + oy) / sy

    def to_pixel(self, u: float, v: float) -> tuple[float, float]:
        (sx, sy), (ox, oy) = self.side, self.offset
        return u * sx - ox, v * sy - oy


@dataclass(frozen=True)
class Shape:
    """What a box string stands for in image pixels: its horizontal box and, for GeoChat, its rectangle."""

    box: Box
    rect: Rect | None = None


_NUM = r"-?\d+(?:\.\d+)?"


@dataclass(frozen=True)
class Flavour:
    """One model family's box text; `render` writes one box, `parse` reads one match of `pattern`."""

    name: str
    pattern: re.Pattern[str]
    run: re.Pattern[str]  # a run of boxes with their separators and labels, as `render_run` writes it
    render: Callable[[RecordBox, Frame], str]
    parse: Callable[[re.Match[str], Frame], Shape]
    group: Callable[[str, list[str]], str]
    mention: Callable[[str, list[str]], str]  # a phrase with its boxes, in a grounded description
    phrase_first: bool  # a mention's phrase stands before its boxes, outside `run`
    padded: bool  # written in the frame of `box_space` (else always in the image's)
    limit: float | None  # the value a coordinate takes at the far side of the frame; None: pixels
    overhang: bool = False  # a box may reach past 0..limit (GeoChat's unrotated rectangle): only its centre may not

    def frame(self, width: int, height: int, space: str) -> Frame:
        return Frame(width, height, space if self.padded else "image")


def _check(item: RecordBox, frame: Frame) -> Box:
    """The box on its image by `rsgpt4v.imaging.window`'s rule (float noise at an edge put on it);
    RenderError for one that is not."""
    try:
        return on_window(item.box, frame.width, frame.height)
    except OutsideWindow as exc:
        raise RenderError(str(exc)) from None


def _unit_box(item: RecordBox, frame: Frame) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = _check(item, frame)
    u1, v1 = frame.to_unit(x1, y1)
    u2, v2 = frame.to_unit(x2, y2)
    return u1, v1, u2, v2


def _clamp(v: float, hi: float) -> float:
    return min(max(v, 0.0), hi)


# ---- llava and pixel -------------------------------------------------------------------------

def _render_llava(item: RecordBox, frame: Frame) -> str:
    return "[" + ", ".join(f"{_clamp(v, 1.0):.2f}" for v in _unit_box(item, frame)) + "]"


def _parse_unit(m: re.Match[str], frame: Frame, scale: float) -> Shape:
    u1, v1, u2, v2 = (float(g) / scale for g in m.groups()[:4])
    x1, y1 = frame.to_pixel(u1, v1)
    x2, y2 = frame.to_pixel(u2, v2)
    return Shape((x1, y1, x2, y2))


def _render_pixel(item: RecordBox, frame: Frame) -> str:
    return "[" + ", ".join(str(round(v)) for v in _check(item, frame)) + "]"


def _parse_pixel(m: re.Match[str], frame: Frame) -> Shape:
    x1, y1, x2, y2 = (float(g) for g in m.groups()[:4])
    return Shape((x1, y1, x2, y2))


def _comma_group(label: str, cores: list[str]) -> str:
    return ", ".join(cores)


def _phrase_first(phrase: str, cores: list[str]) -> str:
    return f"{phrase} " + ", ".join(cores)


# ---- geochat ---------------------------------------------------------------------------------

def _geochat_rect(item: RecordBox, frame: Frame) -> Rect:
    """The box's rectangle with a whole-degree angle in [0, 90)."""
    x1, y1, x2, y2 = _check(item, frame)
    if item.polygon:
        cx, cy, w, h, theta = oriented_rect(item.polygon)
    else:
        cx, cy, w, h, theta = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, 0.0
    theta = float(round(theta))
    if theta >= 90:
        theta, w, h = theta - 90, h, w
    return cx, cy, w, h, theta


def _render_geochat(item: RecordBox, frame: Frame) -> str:
    cx, cy, w, h, theta = _geochat_rect(item, frame)
    u1, v1 = frame.to_unit(cx - w / 2, cy - h / 2)
    u2, v2 = frame.to_unit(cx + w / 2, cy + h / 2)
    # Whole numbers on GeoChat's 0..100 grid, not clamped: the unrotated rectangle of a long object
    # turned near an edge reaches past it, and GeoChat's parser (`-?\d+`, scaled by the side) reads
    # such values as they are; clamping would move the decoded object tens of pixels.
    grid = [round(v * 100) for v in (u1, v1, u2, v2)]
    return "{" + "".join(f"<{g}>" for g in grid) + f"|<{int(theta)}>}}"


def _parse_geochat(m: re.Match[str], frame: Frame) -> Shape:
    u1, v1, u2, v2 = (float(g) / 100 for g in m.groups()[:4])
    theta = float(m.group(5))
    x1, y1 = frame.to_pixel(u1, v1)
    x2, y2 = frame.to_pixel(u2, v2)
    rect = ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, theta)
    return Shape(bounding_box(rect_corners(rect)), rect)


def _geochat_group(label: str, cores: list[str]) -> str:
    return f"<p>{label}</p> " + "<delim>".join(cores)


# ---- qwen2vl and qwen25vl --------------------------------------------------------------------

def _thousandths(v: float) -> int:
    # [0, 1000): 1000 bins; a box reaching the far edge is in bin 999.
    return min(max(math.floor(v * 1000), 0), 999)


def _render_qwen2vl(item: RecordBox, frame: Frame) -> str:
    q = [_thousandths(v) for v in _unit_box(item, frame)]
    return f"<|box_start|>({q[0]},{q[1]}),({q[2]},{q[3]})<|box_end|>"


def _parse_qwen2vl(m: re.Match[str], frame: Frame) -> Shape:
    # A bin stands for its centre, so decoding is off by at most half a bin.
    u1, v1, u2, v2 = ((float(g) + 0.5) / 1000 for g in m.groups()[:4])
    x1, y1 = frame.to_pixel(u1, v1)
    x2, y2 = frame.to_pixel(u2, v2)
    return Shape((x1, y1, x2, y2))


def _qwen2vl_group(label: str, cores: list[str]) -> str:
    return f"<|object_ref_start|>{label}<|object_ref_end|>" + "".join(cores)


def _qwen25vl_group(label: str, cores: list[str]) -> str:
    name = json.dumps(label, ensure_ascii=False)
    return ", ".join(f'{{"bbox_2d": {core}, "label": {name}}}' for core in cores)


# ---- the table -------------------------------------------------------------------------------

def _flavours() -> dict[str, Flavour]:
    unit_box = rf"\[({_NUM}), ({_NUM}), ({_NUM}), ({_NUM})\]"
    pixel_box = r"\[(\d+), (\d+), (\d+), (\d+)\]"
    geo = r"\{<(-?\d+)><(-?\d+)><(-?\d+)><(-?\d+)>\|<(-?\d+)>\}"
    geo_plain = r"\{<-?\d+><-?\d+><-?\d+><-?\d+>\|<-?\d+>\}"
    geo_group = rf"(?:<p>[^<>]*</p> )?{geo_plain}(?:<delim>{geo_plain})*"
    qwen = r"<\|box_start\|>\((\d+),(\d+)\),\((\d+),(\d+)\)<\|box_end\|>"
    qwen_plain = r"<\|box_start\|>\(\d+,\d+\),\(\d+,\d+\)<\|box_end\|>"
    qwen_group = rf"(?:<\|object_ref_start\|>[^<>]*<\|object_ref_end\|>)?(?:{qwen_plain})+"
    pixel_plain = r"\[\d+, \d+, \d+, \d+\]"
    json_box = rf'(?:\{{"bbox_2d": {pixel_plain}, "label": "(?:[^"\\]|\\.)*"\}}|{pixel_plain})'
    unit_plain = rf"\[{_NUM}, {_NUM}, {_NUM}, {_NUM}\]"

    def runs(one: str) -> re.Pattern[str]:
        return re.compile(rf"{one}(?:, {one})*")

    return {
        "llava": Flavour("llava", re.compile(unit_box), runs(unit_plain), _render_llava,
                         lambda m, f: _parse_unit(m, f, 1.0), _comma_group, _phrase_first, True, True, 1.0),
        "geochat": Flavour("geochat", re.compile(geo), runs(geo_group), _render_geochat, _parse_geochat,
                           _geochat_group, _geochat_group, False, True, 100.0, overhang=True),
        "qwen2vl": Flavour("qwen2vl", re.compile(qwen), runs(qwen_group), _render_qwen2vl, _parse_qwen2vl,
                           _qwen2vl_group, _qwen2vl_group, False, False, 999.0),
        # A grounded description's boxes in pixels after their phrase; a run is one mention's boxes.
        "qwen25vl": Flavour("qwen25vl", re.compile(pixel_box), runs(json_box), _render_pixel, _parse_pixel,
                            _qwen25vl_group, _phrase_first, True, False, None),
        "pixel": Flavour("pixel", re.compile(pixel_box), runs(pixel_plain), _render_pixel, _parse_pixel,
                         _comma_group, _phrase_first, True, False, None),
    }


FLAVOURS = _flavours()
BOX_PATTERNS = {name: f.pattern for name, f in FLAVOURS.items()}


def flavour(name: str) -> Flavour:
    """The flavour called `name` (or one of its other names); ValueError naming the valid ones."""
    try:
        return FLAVOURS[ALIASES.get(name, name)]
    except (KeyError, TypeError):
        raise ValueError(f"unknown box format {name!r}; choose from {', '.join([*FLAVOURS, *ALIASES])}") from None


def check_space(space: str) -> str:
    if space not in SPACES:
        raise ValueError(f"unknown box space {space!r}; choose from {', '.join(SPACES)}")
    return space


def render_box(box: Box, fmt: str, width: int, height: int, space: str = "image",
               polygon: Sequence[tuple[float, float]] | None = None) -> str:
    """One box, given in pixels of a `width` x `height` image, as `fmt` writes it in `space`."""
    f = flavour(fmt)
    item = RecordBox(box=box, polygon=tuple(polygon) if polygon else None)
    return f.render(item, f.frame(width, height, check_space(space)))


def parse_shape(text: str, fmt: str, width: int, height: int, space: str = "image") -> Shape:
    """Inverse of `render_box`: the box string back in pixels of the image (to within a grid step)."""
    f = flavour(fmt)
    m = f.pattern.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"not a {f.name} box: {text!r}")
    return f.parse(m, f.frame(width, height, check_space(space)))


def parse_box(text: str, fmt: str, width: int, height: int, space: str = "image") -> Box:
    """The horizontal pixel box a box string stands for (a rotated GeoChat box: the box around it)."""
    return parse_shape(text, fmt, width, height, space).box


def render_run(items: Sequence[RecordBox], f: Flavour, frame: Frame, answer: bool, mention: bool = False) -> str:
    """A run of boxes: bare in a question; in an answer, grouped by category as the family writes it,
    or (`mention`) as the family writes a phrase with its boxes, the phrase being the boxes' label."""
    cores = [f.render(item, frame) for item in items]
    if not answer:
        return ", ".join(cores)
    groups: list[tuple[str, list[str]]] = []
    for item, core in zip(items, cores):
        if groups and groups[-1][0] == item.label:
            groups[-1][1].append(core)
        else:
            groups.append((item.label, [core]))
    write = f.mention if mention else f.group
    return ", ".join(write(label, members) for label, members in groups)


def fill(text: str, boxes: Mapping[str, RecordBox], f: Flavour, frame: Frame, answer: bool,
         used: list[RecordBox], mention: bool = False) -> str:
    """`text` with each run of `<bN>` placeholders written as boxes (`mention`: with their phrase, see
    `render_run`); the boxes are appended to `used`."""
    def one(m: re.Match[str]) -> str:
        items = [boxes[name] for name in _PLACEHOLDER.findall(m.group(0))]
        used.extend(items)
        return render_run(items, f, frame, answer, mention)
    return PLACEHOLDER_RUN.sub(one, text)


def to_placeholders(text: str, f: Flavour, start: int, phrases: Sequence[str] | None = None) -> tuple[str, int]:
    """`text` with each run of `f` boxes replaced by placeholders `<b{start}>, ...`; and the next index.

    With `phrases` (a grounded description's box labels, by box index), the phrase a phrase-first
    flavour writes before a run is taken into its placeholders too; ValueError when it is not there."""
    count = start
    parts: list[str] = []
    at = 0
    for m in f.run.finditer(text):
        n = len(f.pattern.findall(m.group(0)))
        head = text[at:m.start()]
        if phrases is not None and f.phrase_first:
            phrase = phrases[count] if count < len(phrases) else ""
            if not head.endswith(f"{phrase} "):
                raise ValueError(f"box {count + 1} is not written after its phrase {phrase!r}")
            head = head[:len(head) - len(phrase) - 1]
        parts += [head, ", ".join(f"<b{i}>" for i in range(count, count + n))]
        count += n
        at = m.end()
    parts.append(text[at:])
    return "".join(parts), count
