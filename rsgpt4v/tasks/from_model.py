"""Records made from the model's answers: caption, detailed description, grounded description,
region description, region attributes, grounding and multi-turn reasoning.

The global stage's description ties its mentions of noted objects to their ids (`[words](3, 4)`,
see `language.mentions`): the detailed description is its plain text, the grounded description the
same text with each mention's boxes, the ground-truth boxes of the objects it names.

Every field the local stage is asked for reaches a record: the description a region description,
colour, heading, state, shape and relations the region-attribute questions (only where the note says
something), the referring expression a grounding record where the scene lets the words single the
object out.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Sequence

from rsgpt4v.core.responses import ObjectNote
from rsgpt4v.core.schema import Obj, Record, RecordBox, Scene, Turn
from rsgpt4v.imaging.geometry import polygon_area
from rsgpt4v.language.mentions import Mention, placed, plain
from rsgpt4v.language.naming import display
from rsgpt4v.prompting.answers import SceneAnswers
from rsgpt4v.prompting.marks import Mark, marks_of
from rsgpt4v.prompting.stages import discernible
from rsgpt4v.prompting.templates import PromptSet
from rsgpt4v.quality.judge import DIALOGUE, GLOBAL, Unit
from rsgpt4v.tasks import TaskBuild, record_rng, window_box

# Words of a referring expression that single out an extreme object, and how the extreme is measured
# (larger is more extreme). "lowest" is the bottom-most in a north-up image.
_EXTREMES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b(left-?most|western-?most|far(thest)? left)\b"), "left"),
    (re.compile(r"\b(right-?most|eastern-?most|far(thest)? right)\b"), "right"),
    (re.compile(r"\b(top-?most|upper-?most|northern-?most|highest)\b"), "top"),
    (re.compile(r"\b(bottom-?most|lower-?most|southern-?most|lowest)\b"), "bottom"),
    (re.compile(r"\b(largest|biggest|longest)\b"), "largest"),
    (re.compile(r"\b(smallest|shortest)\b"), "smallest"),
]


def _extent(obj: Obj, direction: str) -> float:
    b = obj.box
    return {"left": -b[0], "right": b[2], "top": -b[1], "bottom": b[3],
            "largest": polygon_area(obj.polygon), "smallest": -polygon_area(obj.polygon)}[direction]


def _alone_at_extreme(obj: Obj, rivals: Sequence[Obj], direction: str) -> bool:
    """The object is clearly the most extreme of its category: ahead of the next by half its own size
    (by a fifth of its area for size words), so the words cannot fit a close rival."""
    mine = _extent(obj, direction)
    others = [_extent(o, direction) for o in rivals if o is not obj]
    if not others:
        return True
    if direction in ("largest", "smallest"):
        margin = 0.2 * abs(mine)
    else:
        margin = 0.5 * min(obj.box[2] - obj.box[0], obj.box[3] - obj.box[1])
    return mine - max(others) > margin


def singles_out(scene: Scene, mark: Mark, note: ObjectNote, max_instances: int) -> bool:
    """Whether a referring expression can stand as a grounding target: the model says it fits one
    object, and the scene agrees: few objects of its kind in the window, or the expression names an
    extreme the object alone holds."""
    if not note.distinctive or not note.referring_expression.strip():
        return False
    same = [o for o in scene.objects if o.category == mark.obj.category]
    if len(same) <= max_instances:
        return True
    text = note.referring_expression.lower()
    return any(p.search(text) and _alone_at_extreme(mark.obj, same, d) for p, d in _EXTREMES)


def _centre(scene: Scene, obj: Obj) -> tuple[float, float]:
    x0, y0, _, _ = scene.window
    return ((obj.box[0] + obj.box[2]) / 2 - x0) / scene.width, ((obj.box[1] + obj.box[3]) / 2 - y0) / scene.height


def _varied(scene: Scene, picked: Sequence[tuple[Mark, ObjectNote]], n: int) -> list[tuple[Mark, ObjectNote]]:
    """Up to `n` described objects that differ from each other: the largest whole object first, then
    each time the one most unlike those chosen (another category, another size, far away)."""
    pool = sorted(picked, key=lambda mn: (mn[0].obj.truncated, -polygon_area(mn[0].obj.polygon), mn[0].id))
    chosen: list[tuple[Mark, ObjectNote]] = []
    while pool and len(chosen) < n:
        if not chosen:
            best = pool[0]
        else:
            def unlike(mn: tuple[Mark, ObjectNote]) -> tuple[float, int]:
                obj = mn[0].obj
                area = max(polygon_area(obj.polygon), 1e-6)
                score = min(
                    (obj.category != c.obj.category) * 2.0
                    + math.dist(_centre(scene, obj), _centre(scene, c.obj))
                    + abs(math.log(area / max(polygon_area(c.obj.polygon), 1e-6))) / 2
                    for c, _ in chosen)
                return score - obj.truncated, -mn[0].id
            best = max(pool, key=unlike)
        chosen.append(best)
        pool.remove(best)
    return sorted(chosen, key=lambda mn: mn[0].id)


def _single_turn(scene: Scene, task: str, pool: str, answer: str, prompts: PromptSet, seed: int,
                 base: dict) -> Record:
    rid = f"{scene.key}/{task}"
    question = prompts.instruction(pool, record_rng(seed, rid))
    return Record(id=rid, task=task, turns=[Turn(question=question, answer=answer)], **base)


def _grounded(scene: Scene, description: str, prompts: PromptSet, seed: int, base: dict) -> Record | None:
    """The description with each mention's boxes (labelled with its words), or None without a mention.
    A mention of an id the window does not have (QC off) keeps its words only."""
    boxes: dict[str, RecordBox] = {}

    def write(mention: Mention) -> str:
        if not all(1 <= i <= len(scene.objects) for i in mention.ids):
            return mention.phrase
        names = []
        for i in mention.ids:
            name = f"b{len(boxes)}"
            boxes[name] = window_box(scene, scene.objects[i - 1]).model_copy(update={"label": mention.phrase})
            names.append(f"<{name}>")
        return ", ".join(names)

    text = placed(description, write)
    if not boxes:
        return None
    rid = f"{scene.key}/grounded_description"
    question = prompts.instruction("grounded_description", record_rng(seed, rid))
    return Record(id=rid, task="grounded_description", turns=[Turn(question=question, answer=text)], boxes=boxes,
                  **base)


def _sentence(value: str) -> str:
    v = value.strip().rstrip(".")
    return v[:1].upper() + v[1:] + "."


def _attribute_turns(scene: Scene, chosen: Sequence[tuple[Mark, ObjectNote]], notes: dict[int, ObjectNote],
                     prompts: PromptSet, rng: random.Random, limit: int) -> tuple[list[Turn], dict]:
    """Up to `limit` turns: per chosen object, a question about an attribute its note states, and
    one about a relation where the note has one."""
    marks = {m.id: m for m in marks_of(scene.objects)}
    turns: list[Turn] = []
    boxes: dict[str, tuple[float, float, float, float]] = {}

    def box_of(mark: Mark) -> str:
        name = f"b{len(boxes)}"
        boxes[name] = window_box(scene, mark.obj)
        return f"<{name}>"

    for mark, note in chosen:
        if len(turns) >= limit:
            break
        name = display(mark.obj.category, scene.sample.source).singular
        fields = [(pool, value) for pool, value in (("region_colour", note.colour), ("region_heading", note.orientation),
                                                    ("region_state", note.state), ("region_shape", note.shape))
                  if discernible(value)]
        if fields:
            pool, value = fields[rng.randrange(len(fields))]
            turns.append(Turn(question=prompts.instruction(pool, rng, name=name, box=box_of(mark)),
                              answer=_sentence(value)))
        relations = [r for r in note.relations if r.target_id in marks and r.target_id in notes]
        if relations and len(turns) < limit:
            rel = relations[0]
            other = marks[rel.target_id]
            other_name = display(other.obj.category, scene.sample.source).singular
            question = prompts.instruction("region_relation", rng, name=name, box=box_of(mark), other=other_name,
                                           other_box=box_of(other))
            turns.append(Turn(question=question, answer=f"It is {rel.relation.strip()} the {other_name}."))
    return turns, boxes


def model_tasks(scene: Scene, answers: SceneAnswers, prompts: PromptSet, seed: int, max_region_turns: int,
                grounding_max_instances: int, base: dict) -> list[TaskBuild]:
    """The tasks the stages' answers make, each a builder of its records (see `TaskBuild`). Where the
    dataset has ground truth for a task (captions, referring expressions), that ground truth makes
    the task's records, not the model. With a judge, each record's `meta.judge` holds the verdict of
    the answers it is made of."""
    has_captions = bool(scene.sample.captions)
    has_expressions = any(o.description for o in scene.objects)
    builds: list[TaskBuild] = []

    def judged(records: list[Record], units: list[Unit]) -> list[Record]:
        if answers.judge is not None:
            for record in records:
                record.meta = {**record.meta, "judge": answers.judge.record_meta(units)}
        return records

    scene_text = answers.scene_text
    if scene_text is not None:
        if not has_captions:
            builds.append(("caption", lambda: judged([_single_turn(scene, "caption", "caption", scene_text.caption,
                                                                   prompts, seed, base)], [GLOBAL])))
        builds.append(("detailed_description", lambda: judged([_single_turn(
            scene, "detailed_description", "detailed_description", plain(scene_text.description), prompts, seed,
            base)], [GLOBAL])))
        builds.append(("grounded_description", lambda: judged(
            [r for r in [_grounded(scene, scene_text.description, prompts, seed, base)] if r is not None],
            [GLOBAL])))
    described = [(m, answers.notes[m.id]) for m in marks_of(scene.objects) if m.id in answers.notes]
    if described:
        builds.append(("region_description", lambda: _region_records(scene, described, answers.notes, prompts, seed,
                                                                     max_region_turns, base, judged)))
    if described and not has_expressions:
        builds.append(("grounding", lambda: _grounding_records(scene, described, prompts, seed, max_region_turns,
                                                               grounding_max_instances, base, judged)))
    dialogue = answers.dialogue
    if dialogue is not None:
        turns = [Turn(question=t.question, answer=t.answer) for t in dialogue.turns]
        builds.append(("multi_turn_reasoning", lambda: judged([Record(
            id=f"{scene.key}/multi_turn_reasoning", task="multi_turn_reasoning", turns=turns, **base)], [DIALOGUE])))
    return builds


Judged = Callable[[list[Record], list[Unit]], list[Record]]


def _region_records(scene: Scene, described: list[tuple[Mark, ObjectNote]], notes: dict[int, ObjectNote],
                    prompts: PromptSet, seed: int, max_region_turns: int, base: dict, judged: Judged) -> list[Record]:
    """Region description and, from the same regions, region attributes."""
    regions = _varied(scene, described, max_region_turns)
    if not regions:
        return []
    rid = f"{scene.key}/region_description"
    rng = record_rng(seed, rid)
    boxes = {f"b{i}": window_box(scene, m.obj) for i, (m, _) in enumerate(regions)}
    turns = [Turn(question=prompts.instruction("region_description", rng, box=f"<b{i}>"), answer=n.description)
             for i, (_, n) in enumerate(regions)]
    records = [Record(id=rid, task="region_description", turns=turns, boxes=boxes, **base)]
    rid = f"{scene.key}/region_attributes"
    turns, boxes = _attribute_turns(scene, regions, notes, prompts, record_rng(seed, rid), max_region_turns)
    if turns:
        records.append(Record(id=rid, task="region_attributes", turns=turns, boxes=boxes, **base))
    return judged(records, [Unit("local", m.id) for m, _ in regions])


def _grounding_records(scene: Scene, described: list[tuple[Mark, ObjectNote]], prompts: PromptSet, seed: int,
                       max_region_turns: int, grounding_max_instances: int, base: dict,
                       judged: Judged) -> list[Record]:
    """Grounding from the model's referring expressions of objects they single out."""
    targets = [(m, n) for m, n in described if singles_out(scene, m, n, grounding_max_instances)]
    if not targets:
        return []
    chosen = _varied(scene, targets, max_region_turns)
    rid = f"{scene.key}/grounding"
    rng = record_rng(seed, rid)
    boxes = {f"b{i}": window_box(scene, m.obj) for i, (m, _) in enumerate(chosen)}
    turns = [Turn(question=prompts.instruction("grounding", rng, expression=n.referring_expression),
                  answer=f"<b{i}>") for i, (_, n) in enumerate(chosen)]
    return judged([Record(id=rid, task="grounding", turns=turns, boxes=boxes, **base)],
                  [Unit("local", m.id) for m, _ in chosen])
