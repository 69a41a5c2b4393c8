"""Template tasks straight from the annotations, no model involved: detection and counting.

Wording comes from the instruction pools in prompts/instructions.yaml, drawn with a per-record
seeded generator so large datasets do not repeat one sentence.
"""

from __future__ import annotations

from collections.abc import Sequence

from rsgpt4v.language import plural, readable
from rsgpt4v.prompting.templates import PromptSet
from rsgpt4v.schema import Obj, Record, Scene, Turn
from rsgpt4v.tasks import record_rng, window_box

_MAX_COUNTING_TURNS = 4


def _noun(category: str, n: int) -> str:
    name = readable(category)
    return name if n == 1 else plural(name)


def _reading_order(objs: list[Obj]) -> list[Obj]:
    """Rows from top to bottom, left to right within a row; a row is as tall as a typical object."""
    heights = sorted(o.box[3] - o.box[1] for o in objs)
    band = max(heights[len(heights) // 2], 1.0)
    return sorted(objs, key=lambda o: (int(((o.box[1] + o.box[3]) / 2) // band), o.box[0], o.box[1]))


def detection_record(scene: Scene, prompts: PromptSet, seed: int, max_boxes: int,
                     base: dict) -> Record | None:
    """One turn per category present: its boxes in reading order, capped, then 'and N more'."""
    if not scene.objects:
        return None
    rid = f"{scene.key}/detection"
    rng = record_rng(seed, rid)
    turns: list[Turn] = []
    boxes: dict[str, tuple[float, float, float, float]] = {}
    for category, n in scene.counts().items():
        objs = _reading_order([o for o in scene.objects if o.category == category])
        names = []
        for obj in objs[:max_boxes]:
            name = f"b{len(boxes)}"
            boxes[name] = window_box(scene, obj)
            names.append(f"<{name}>")
        question = prompts.instruction("detection", rng, category=plural(readable(category)))
        values = {"count": n, "category": _noun(category, n), "boxes": ", ".join(names)}
        if n > max_boxes:
            answer = prompts.instruction("detection_answer_more", rng, more=n - max_boxes, **values)
        else:
            answer = prompts.instruction("detection_answer", rng, **values)
        turns.append(Turn(question=question, answer=answer))
    return Record(id=rid, task="detection", turns=turns, boxes=boxes, **base)


def counting_record(scene: Scene, prompts: PromptSet, seed: int, vocabulary: Sequence[str],
                    base: dict) -> Record | None:
    """Counts of the most frequent categories present, and one category absent from the image (answer zero)."""
    rid = f"{scene.key}/counting"
    rng = record_rng(seed, rid)
    counts = scene.counts()
    asked = list(counts.items())[:_MAX_COUNTING_TURNS - 1]
    # A category absent from the window may still show in part across its edge: only one absent
    # from the whole annotated image is a safe "none".
    absent = sorted(set(vocabulary) - {o.category for o in scene.sample.objects})
    if absent:
        asked.append((rng.choice(absent), 0))
    if not asked:
        return None
    rng.shuffle(asked)
    turns = []
    for category, n in asked:
        question = prompts.instruction("counting", rng, category=plural(readable(category)))
        if n == 0:
            answer = prompts.instruction("counting_zero_answer", rng, category=plural(readable(category)))
        else:
            answer = prompts.instruction("counting_answer", rng, count=n, category=_noun(category, n))
        turns.append(Turn(question=question, answer=answer))
    return Record(id=rid, task="counting", turns=turns, **base)
