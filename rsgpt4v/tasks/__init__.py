"""Turning scenes into records: template tasks from annotations and tasks from the model's answers."""

from __future__ import annotations

import random

from rsgpt4v.schema import Box, Obj, Scene


def record_rng(seed: int, record_id: str) -> random.Random:
    """The generator for one record's wording: depends on the seed and the record, not on run order."""
    return random.Random(f"{seed}|{record_id}")


def window_box(scene: Scene, obj: Obj) -> Box:
    """An object's box in the frame of the scene's window image, rounded to 0.1 px."""
    x0, y0, _, _ = scene.window
    b = obj.box
    return (round(b[0] - x0, 1), round(b[1] - y0, 1), round(b[2] - x0, 1), round(b[3] - y0, 1))
