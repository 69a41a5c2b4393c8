"""Turning scenes into records: template tasks from annotations and tasks from the model's answers."""

from __future__ import annotations

import random
from collections.abc import Callable

from rsgpt4v.core.schema import Obj, Record, RecordBox, Scene
from rsgpt4v.language.words import readable

# One task of one window: its name, and what builds its records (called once, by the build, which
# drops that task's records alone when the builder fails).
TaskBuild = tuple[str, Callable[[], list[Record]]]


def listed(record: Record | None) -> list[Record]:
    """A task's one record, or none, as the list every task builder returns."""
    return [] if record is None else [record]


def record_rng(seed: int, record_id: str) -> random.Random:
    """The generator for one record's wording: depends on the seed and the record, not on run order."""
    return random.Random(f"{seed}|{record_id}")


def window_box(scene: Scene, obj: Obj) -> RecordBox:
    """An object's box, polygon, category and difficulty in the frame of the scene's window image,
    coordinates rounded to 0.1 px; the polygon keeps an oriented source's angle for GeoChat."""
    x0, y0, _, _ = scene.window
    b = obj.box
    return RecordBox(box=(round(b[0] - x0, 1), round(b[1] - y0, 1), round(b[2] - x0, 1), round(b[3] - y0, 1)),
                     polygon=tuple((round(x - x0, 1), round(y - y0, 1)) for x, y in obj.polygon),
                     label=readable(obj.category), difficult=obj.difficult)
