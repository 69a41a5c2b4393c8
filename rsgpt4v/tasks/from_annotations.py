"""Template tasks straight from the annotations, no model involved: captions, VQA, grounding,
classification, detection, counting and presence.

Wording comes from the instruction pools in prompts/instructions.yaml, drawn with a per-record
seeded generator so large datasets do not repeat one sentence. Categories are named by their
display names (rsgpt4v.language.naming), the words the model stages use too. Detection, counting and
presence answers state the dataset's labels as they are, and say so in `meta.answers_from`.
"""

from __future__ import annotations

from collections.abc import Sequence

from rsgpt4v.core.config import BuildConfig, TasksConfig
from rsgpt4v.core.schema import Obj, Record, Scene, Turn
from rsgpt4v.language.naming import display
from rsgpt4v.language.words import readable
from rsgpt4v.prompting.templates import PromptSet
from rsgpt4v.tasks import TaskBuild, listed, record_rng, window_box

_MAX_COUNTING_TURNS = 4
_FROM_LABELS = {"answers_from": "labels"}


def _noun(scene: Scene, category: str, n: int) -> str:
    name = display(category, scene.sample.source)
    return name.singular if n == 1 else name.plural


def _plural(scene: Scene, category: str) -> str:
    return display(category, scene.sample.source).plural


def _from_labels(base: dict) -> dict:
    """`base` with the note that the record's answers are the dataset's labels."""
    return {**base, "meta": {**base.get("meta", {}), **_FROM_LABELS}}


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
        question = prompts.instruction("detection", rng, category=_plural(scene, category))
        values = {"count": n, "category": _noun(scene, category, n), "boxes": ", ".join(names)}
        if n > max_boxes:
            answer = prompts.instruction("detection_answer_more", rng, more=n - max_boxes, **values)
        else:
            answer = prompts.instruction("detection_answer", rng, **values)
        turns.append(Turn(question=question, answer=answer))
    return Record(id=rid, task="detection", turns=turns, boxes=boxes, **_from_labels(base))


def absent_categories(scene: Scene, vocabulary: Sequence[str], exempt: Sequence[str]) -> list[str]:
    """Categories of the source's own vocabulary that are safe to call absent: none in the whole
    annotated image (one absent from the window may show in part across its edge), and not a
    site-scale category (`airport`, `harbor`), which names the scene type rather than an object."""
    return sorted(set(vocabulary) - {o.category for o in scene.sample.objects} - set(exempt))


def counting_record(scene: Scene, prompts: PromptSet, seed: int, vocabulary: Sequence[str], exempt: Sequence[str],
                    base: dict) -> Record | None:
    """Counts of the most frequent categories present, and one category absent from the image (answer zero)."""
    rid = f"{scene.key}/counting"
    rng = record_rng(seed, rid)
    counts = scene.counts()
    asked = list(counts.items())[:_MAX_COUNTING_TURNS - 1]
    absent = absent_categories(scene, vocabulary, exempt)
    if absent:
        asked.append((rng.choice(absent), 0))
    if not asked:
        return None
    rng.shuffle(asked)
    turns = []
    for category, n in asked:
        question = prompts.instruction("counting", rng, category=_plural(scene, category))
        if n == 0:
            answer = prompts.instruction("counting_zero_answer", rng, category=_plural(scene, category))
        else:
            answer = prompts.instruction("counting_answer", rng, count=n, category=_noun(scene, category, n))
        turns.append(Turn(question=question, answer=answer))
    return Record(id=rid, task="counting", turns=turns, **_from_labels(base))


def _short(question: str, answer: str, tasks: TasksConfig) -> str:
    """LLaVA-1.5's trick: a short answer gets its question suffixed, so the model learns when to be brief."""
    if tasks.short_answer_suffix and len(answer.split()) <= tasks.short_answer_words:
        return f"{question.rstrip()}\n{tasks.short_answer_suffix}"
    return question


def caption_records(scene: Scene, prompts: PromptSet, seed: int, tasks: TasksConfig, base: dict) -> list[Record]:
    """Ground-truth captions: one record per distinct caption, or one drawn per image."""
    captions = list(scene.sample.captions)
    if not captions:
        return []
    if tasks.caption_mode == "per_image":
        rid = f"{scene.key}/caption"
        rng = record_rng(seed, rid)
        turn = Turn(question=prompts.instruction("caption", rng), answer=rng.choice(captions))
        return [Record(id=rid, task="caption", turns=[turn], **base)]
    records = []
    for i, caption in enumerate(captions):
        rid = f"{scene.key}/caption/{i}"
        turn = Turn(question=prompts.instruction("caption", record_rng(seed, rid)), answer=caption)
        records.append(Record(id=rid, task="caption", turns=[turn], **base))
    return records


def vqa_records(scene: Scene, tasks: TasksConfig, base: dict) -> list[Record]:
    """The image's questions, in dataset order, grouped into conversations of up to K turns."""
    qa = list(scene.sample.qa)
    records = []
    for n, start in enumerate(range(0, len(qa), tasks.vqa_max_turns)):
        turns = [Turn(question=_short(q.question, q.answer, tasks), answer=q.answer)
                 for q in qa[start:start + tasks.vqa_max_turns]]
        records.append(Record(id=f"{scene.key}/vqa/{n}", task="vqa", turns=turns, **base))
    return records


def referring_records(scene: Scene, prompts: PromptSet, seed: int, max_turns: int, base: dict) -> list[Record]:
    """Ground-truth referring expressions -> boxes, in conversations of up to `max_turns`."""
    objs = [o for o in scene.objects if o.description]
    records = []
    for n, start in enumerate(range(0, len(objs), max_turns)):
        rid = f"{scene.key}/grounding/{n}"
        rng = record_rng(seed, rid)
        turns, boxes = [], {}
        for obj in objs[start:start + max_turns]:
            name = f"b{len(boxes)}"
            boxes[name] = window_box(scene, obj)
            turns.append(Turn(question=prompts.instruction("grounding", rng, expression=obj.description),
                              answer=f"<{name}>"))
        records.append(Record(id=rid, task="grounding", turns=turns, boxes=boxes, **base))
    return records


def classification_record(scene: Scene, prompts: PromptSet, seed: int, tasks: TasksConfig,
                          vocabulary: Sequence[str], base: dict) -> Record | None:
    """The scene class, as an open question or as multiple choice among `classification_choices`."""
    label = scene.sample.scene_class
    if label is None:
        return None
    rid = f"{scene.key}/classification"
    rng = record_rng(seed, rid)
    others = sorted({readable(v) for v in vocabulary} - {label})
    if tasks.classification_choices > 1 and others:
        options = rng.sample(others, min(len(others), tasks.classification_choices - 1)) + [label]
        rng.shuffle(options)
        letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
        choices = "\n".join(f"{letters[i]}. {o}" for i, o in enumerate(options))
        turn = Turn(question=prompts.instruction("classification_choice", rng, choices=choices),
                    answer=letters[options.index(label)])
    else:
        turn = Turn(question=_short(prompts.instruction("classification", rng), label, tasks), answer=label)
    return Record(id=rid, task="classification", turns=[turn], **base)


def presence_record(scene: Scene, prompts: PromptSet, seed: int, tasks: TasksConfig, vocabulary: Sequence[str],
                    exempt: Sequence[str], base: dict) -> Record | None:
    """As many Yes (categories present) as No (categories absent from the whole annotated image),
    so a model cannot learn to answer one of them blindly."""
    rid = f"{scene.key}/presence"
    rng = record_rng(seed, rid)
    present = list(scene.counts())
    absent = absent_categories(scene, vocabulary, exempt)
    pairs = min(len(present), len(absent), tasks.presence_negatives)
    if pairs == 0:
        return None
    asked = [(c, "Yes") for c in present[:pairs]] + [(c, "No") for c in rng.sample(absent, pairs)]
    rng.shuffle(asked)
    turns = [Turn(question=_short(prompts.instruction("presence", rng, category=_plural(scene, c)), a, tasks),
                  answer=a) for c, a in asked]
    return Record(id=rid, task="presence", turns=turns, **_from_labels(base))


def annotation_tasks(scene: Scene, prompts: PromptSet, cfg: BuildConfig, label_tasks: frozenset[str],
                     vocabulary: Sequence[str], base: dict) -> list[TaskBuild]:
    """Every template task the scene's annotations support, each a builder of its records, so the
    build runs (and, when one fails, drops) one task at a time; of detection, counting and
    presence, those in `label_tasks` (they need exhaustive labels: a grounding dataset labels just
    the objects its expressions refer to). `tasks.exclude_difficult` leaves objects marked difficult
    out of every template record.
    """
    if not scene.sample.annotated:
        return []
    seed, tasks = cfg.seed, cfg.tasks
    if tasks.exclude_difficult:
        scene = scene.model_copy(update={"objects": tuple(o for o in scene.objects if not o.difficult)})
    builds: list[TaskBuild] = [
        ("caption", lambda: caption_records(scene, prompts, seed, tasks, base)),
        ("vqa", lambda: vqa_records(scene, tasks, base)),
        ("referring", lambda: referring_records(scene, prompts, seed, cfg.output.max_region_turns, base)),
        ("classification", lambda: listed(classification_record(scene, prompts, seed, tasks, vocabulary, base)))]
    if "detection" in label_tasks:
        builds.append(("detection", lambda: listed(detection_record(scene, prompts, seed,
                                                                    cfg.output.max_detection_boxes, base))))
    if "counting" in label_tasks:
        builds.append(("counting", lambda: listed(counting_record(scene, prompts, seed, vocabulary,
                                                                  cfg.qc.absence_exempt, base))))
    if "presence" in label_tasks:
        builds.append(("presence", lambda: listed(presence_record(scene, prompts, seed, tasks, vocabulary,
                                                                  cfg.qc.absence_exempt, base))))
    return builds

