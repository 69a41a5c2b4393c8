"""Cutting a sample into scenes: windows over large images and the objects each window keeps.

Follows the DOTA devkit's ImgSplit: fixed-size windows with overlap, the last window in each row
and column pushed back to end at the image edge, and an object kept in a window when at least
`min_visible` of its area lies inside. What "inside" means, and how a kept object is clipped to its
window, is `rsgpt4v.imaging.window`'s rule.
An object with between `context_visible` and `min_visible` of its area inside (the devkit keeps it
as difficult=2) is the window's context: the model is told the fragment is there, nothing counts it.
"""

from __future__ import annotations

from collections.abc import Iterable

from rsgpt4v.core.config import TilingConfig
from rsgpt4v.core.issue_codes import IssueCode
from rsgpt4v.core.schema import Issue, Obj, Sample, Scene
from rsgpt4v.imaging.window import FULLY_INSIDE, clip_object


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


def clip_to_image(sample: Sample, width: int, height: int) -> tuple[list[Obj], list[Issue]]:
    """Objects clipped to the image; those wholly outside are dropped with a reason."""
    kept: list[Obj] = []
    issues: list[Issue] = []
    label_file = str(sample.provenance.get("label_file") or sample.rel_image)
    clipped_count = 0
    for obj in sample.objects:
        inside, fraction = clip_object(obj, (0.0, 0.0, float(width), float(height)))
        if inside is None:
            issues.append(Issue(kind="skip", code=IssueCode.BOX_OUTSIDE_IMAGE, file=label_file, line=obj.line,
                                reason=f"{obj.category} lies outside the {width}x{height} image; dropped"))
            continue
        clipped_count += fraction < FULLY_INSIDE
        kept.append(inside if inside is obj else inside.model_copy(update={"truncated": obj.truncated}))
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
            kept, fraction = clip_object(obj, rect)
            if kept is not None and fraction >= cfg.min_visible:
                inside.append(kept)
            elif kept is not None and fraction >= cfg.context_visible:
                context.append(kept)
        if cfg.skip_empty and sample.objects and not inside:
            continue
        scenes.append(Scene(sample=sample, window=win, objects=tuple(inside), context=tuple(context)))
    return scenes
