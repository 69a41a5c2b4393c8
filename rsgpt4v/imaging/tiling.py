"""Cutting a sample into scenes: windows over large images and the objects each window keeps.

Follows the DOTA devkit's ImgSplit: fixed-size windows with overlap, the last window in each row
and column pushed back to end at the image edge, and an object kept in a window when at least
`min_visible` of its area lies inside (it is then clipped to the window and marked truncated).
An object with between `context_visible` and `min_visible` of its area inside (the devkit keeps it
as difficult=2) is the window's context: the model is told the fragment is there, nothing counts it.
"""

from __future__ import annotations

from collections.abc import Iterable

from rsgpt4v.core.config import TilingConfig
from rsgpt4v.core.issue_codes import IssueCode
from rsgpt4v.core.schema import Box, Issue, Obj, Sample, Scene
from rsgpt4v.imaging.geometry import bounding_box, clip_polygon, polygon_area

# An object is "truncated" only when a visible part of it is cut off, not by rounding noise.
_FULLY_INSIDE = 0.999


def window_starts(length: int, window: int, overlap: int) -> list[int]:
    """Start offsets along one axis; one window when the image is no larger than it."""
    if length <= window:
        return [0]
    stride = max(window - overlap, 1)
    starts = list(range(0, length - window, stride))
    starts.append(length - window)
    return sorted(set(starts))


def windows(width: int, height: int, cfg: TilingConfig) -> list[tuple[int, int, int, int]]:
    """Windows in row-major order, each x0, y0, x1, y1 within the image."""
    return [
        (x, y, min(x + cfg.window, width), min(y + cfg.window, height))
        for y in window_starts(height, cfg.window, cfg.overlap)
        for x in window_starts(width, cfg.window, cfg.overlap)
    ]


def _clip(obj: Obj, rect: Box) -> tuple[Obj | None, float]:
    """The object clipped to `rect`, and the fraction of its area that was inside."""
    area = polygon_area(obj.polygon)
    clipped = clip_polygon(obj.polygon, rect)
    inside = polygon_area(clipped)
    if area <= 0 or inside <= 0:
        return None, 0.0
    fraction = min(inside / area, 1.0)
    if fraction >= _FULLY_INSIDE:
        return obj, fraction
    kept = obj.model_copy(update={"polygon": tuple(clipped), "box": bounding_box(clipped), "truncated": True})
    return kept, fraction


def clip_to_image(sample: Sample, width: int, height: int) -> tuple[list[Obj], list[Issue]]:
    """Objects clipped to the image; those wholly outside are dropped with a reason."""
    kept: list[Obj] = []
    issues: list[Issue] = []
    label_file = str(sample.provenance.get("label_file") or sample.rel_image)
    clipped_count = 0
    for obj in sample.objects:
        inside, fraction = _clip(obj, (0.0, 0.0, float(width), float(height)))
        if inside is None:
            issues.append(Issue(kind="skip", code=IssueCode.BOX_OUTSIDE_IMAGE, file=label_file, line=obj.line,
                                reason=f"{obj.category} lies outside the {width}x{height} image; dropped"))
            continue
        clipped_count += fraction < _FULLY_INSIDE
        kept.append(inside.model_copy(update={"truncated": obj.truncated}))
    if clipped_count:
        issues.append(Issue(kind="warning", code=IssueCode.BOX_CLIPPED, file=label_file,
                            reason=f"{clipped_count} object(s) extend past the {width}x{height} image; clipped"))
    return kept, issues


def make_scenes(sample: Sample, objects: Iterable[Obj], width: int, height: int,
                cfg: TilingConfig) -> list[Scene]:
    """One scene per window; empty windows are left out when `cfg.skip_empty` and the sample has objects."""
    objects = list(objects)
    scenes = []
    for win in windows(width, height, cfg):
        rect = (float(win[0]), float(win[1]), float(win[2]), float(win[3]))
        inside, context = [], []
        for obj in objects:
            kept, fraction = _clip(obj, rect)
            if kept is not None and fraction >= cfg.min_visible:
                inside.append(kept)
            elif kept is not None and fraction >= cfg.context_visible:
                context.append(kept)
        if cfg.skip_empty and sample.objects and not inside:
            continue
        scenes.append(Scene(sample=sample, window=win, objects=tuple(inside), context=tuple(context)))
    return scenes
