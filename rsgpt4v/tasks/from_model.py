"""Records made from the model's answers: caption, detailed description, region description,
grounding and multi-turn reasoning."""

from __future__ import annotations

from dataclasses import dataclass, field

from rsgpt4v.prompting.models import DialogueResponse, GlobalResponse, ObjectNote
from rsgpt4v.prompting.stages import marks_of
from rsgpt4v.prompting.templates import PromptSet
from rsgpt4v.schema import Record, Scene, Turn
from rsgpt4v.tasks import record_rng, window_box


@dataclass
class SceneAnswers:
    """What the three stages returned for one scene; a stage that failed leaves its slot empty."""

    notes: dict[int, ObjectNote] = field(default_factory=dict)
    scene_text: GlobalResponse | None = None
    dialogue: DialogueResponse | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)
    deferred: bool = False


def _single_turn(scene: Scene, task: str, pool: str, answer: str, prompts: PromptSet, seed: int,
                 base: dict) -> Record:
    rid = f"{scene.key}/{task}"
    question = prompts.instruction(pool, record_rng(seed, rid))
    return Record(id=rid, task=task, turns=[Turn(question=question, answer=answer)], **base)


def _described(scene: Scene, notes: dict[int, ObjectNote], max_turns: int, distinctive_only: bool):
    """Described objects, whole ones and larger ones first, at most `max_turns`."""
    counts = scene.counts()
    picked = []
    for mark in marks_of(scene):
        note = notes.get(mark.id)
        if note is None:
            continue
        # A referring expression is only a grounding target when it points at exactly one object:
        # the model says so, or the object is the only one of its category in the window.
        if distinctive_only and not (note.distinctive or counts[mark.obj.category] == 1):
            continue
        picked.append((mark, note))
    picked.sort(key=lambda mn: (mn[0].obj.truncated, -(mn[0].obj.box[2] - mn[0].obj.box[0])
                                * (mn[0].obj.box[3] - mn[0].obj.box[1]), mn[0].id))
    return sorted(picked[:max_turns], key=lambda mn: mn[0].id)


def model_records(scene: Scene, answers: SceneAnswers, prompts: PromptSet, seed: int, max_region_turns: int,
                  base: dict) -> list[Record]:
    """Records from the stages' answers. Where the dataset has ground truth for a task (captions,
    referring expressions), that ground truth makes the task's records, not the model."""
    has_captions = bool(scene.sample.captions)
    has_expressions = any(o.description for o in scene.objects)
    records: list[Record] = []
    if answers.scene_text is not None:
        if not has_captions:
            records.append(_single_turn(scene, "caption", "caption", answers.scene_text.caption, prompts, seed,
                                        base))
        records.append(_single_turn(scene, "detailed_description", "detailed_description",
                                    answers.scene_text.description, prompts, seed, base))
    for task, distinctive_only in (("region_description", False), ("grounding", True)):
        if task == "grounding" and has_expressions:
            continue
        chosen = _described(scene, answers.notes, max_region_turns, distinctive_only)
        if not chosen:
            continue
        rid = f"{scene.key}/{task}"
        rng = record_rng(seed, rid)
        turns, boxes = [], {}
        for mark, note in chosen:
            name = f"b{len(boxes)}"
            boxes[name] = window_box(scene, mark.obj)
            if task == "region_description":
                turns.append(Turn(question=prompts.instruction("region_description", rng, box=f"<{name}>"),
                                  answer=note.description))
            else:
                turns.append(Turn(question=prompts.instruction("grounding", rng, expression=note.referring_expression),
                                  answer=f"<{name}>"))
        records.append(Record(id=rid, task=task, turns=turns, boxes=boxes, **base))
    if answers.dialogue is not None:
        turns = [Turn(question=t.question, answer=t.answer) for t in answers.dialogue.turns]
        records.append(Record(id=f"{scene.key}/multi_turn_reasoning", task="multi_turn_reasoning", turns=turns,
                              **base))
    return records
