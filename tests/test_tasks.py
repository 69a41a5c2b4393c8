"""Template tasks from annotations: captions, VQA, grounding, classification, presence."""

from __future__ import annotations

from pathlib import Path

import pytest

from rsgpt4v.core.config import load_config
from rsgpt4v.core.schema import QA, Obj, Sample, Scene
from rsgpt4v.imaging.geometry import bounding_box
from rsgpt4v.prompting.templates import PromptSet
from rsgpt4v.records.writer import render
from rsgpt4v.tasks.from_annotations import annotation_tasks

BASE = {"image": "images/x.png", "source": "s", "split": "train", "meta": {}}


def _scene(**sample_fields) -> Scene:
    objects = sample_fields.pop("objects", ())
    sample = Sample(source="s", split="train", image_id="img1", image_path=Path("/x.png"), rel_image="x.png",
                    objects=objects, **sample_fields)
    return Scene(sample=sample, window=(0, 0, 200, 100), objects=objects)


def _records(scene: Scene, kind: str, vocabulary=(), **cfg_overrides):
    """Template records of a scene from a source of `kind`: only detection sources' labels make
    detection, counting and presence records."""
    cfg = load_config(overrides=cfg_overrides)
    label_tasks = frozenset({"detection", "counting", "presence"}) if kind == "detection" else frozenset()
    builds = annotation_tasks(scene, PromptSet.load(), cfg, label_tasks, vocabulary, BASE)
    return [r for _, build in builds for r in build()]


def _box_obj(cat: str, x0: float, y0: float, x1: float, y1: float, description: str | None = None) -> Obj:
    poly = ((x0, y0), (x1, y0), (x1, y1), (x0, y1))
    return Obj(category=cat, polygon=poly, box=bounding_box(poly), description=description)


def test_one_caption_record_per_distinct_caption() -> None:
    scene = _scene(captions=("many planes are parked near a terminal.", "an airport with a runway."))
    records = _records(scene, "caption")
    assert [r.id for r in records] == ["s/train/img1/0_0_200_100/caption/0", "s/train/img1/0_0_200_100/caption/1"]
    assert [r.turns[0].answer for r in records] == list(scene.sample.captions)
    assert all(r.turns[0].question in PromptSet.load().instructions["caption"] for r in records)


def test_per_image_caption_mode_draws_one() -> None:
    scene = _scene(captions=("a.", "b.", "c."))
    records = _records(scene, "caption", tasks={"caption_mode": "per_image"})
    assert len(records) == 1 and records[0].turns[0].answer in scene.sample.captions


def test_vqa_groups_questions_and_suffixes_short_answers() -> None:
    qa = tuple(QA(question=f"Is there a road number {i}?", answer="yes" if i % 2 else "a large river crosses it")
               for i in range(7))
    records = _records(_scene(qa=qa), "vqa")
    assert [len(r.turns) for r in records] == [5, 2]
    assert records[0].turns[1].question == "Is there a road number 1?\nAnswer the question using a single word or phrase."
    assert records[0].turns[0].question == "Is there a road number 0?"
    assert [r.task for r in records] == ["vqa", "vqa"]


def test_referring_expressions_become_grounding_turns_with_boxes() -> None:
    objs = (_box_obj("vehicle", 10, 20, 50, 40, "the vehicle on the left"),
            _box_obj("windmill", 120, 10, 150, 90, "the tall windmill"))
    [record] = _records(_scene(objects=objs), "grounding")
    line = render(record, "llava", 200, 100, "image")
    assert "the vehicle on the left" in line["conversations"][0]["value"]
    assert line["conversations"][1]["value"] == "[0.05, 0.20, 0.25, 0.40]"
    assert line["conversations"][3]["value"] == "[0.60, 0.10, 0.75, 0.90]"


def test_grounding_sources_get_no_detection_or_counting() -> None:
    objs = (_box_obj("vehicle", 10, 20, 50, 40, "the vehicle"),)
    tasks = {r.task for r in _records(_scene(objects=objs), "grounding", vocabulary=("vehicle", "ship"))}
    assert tasks == {"grounding"}


def test_classification_open_and_multiple_choice() -> None:
    scene = _scene(scene_class="baseball diamond")
    [open_q] = _records(scene, "classification", vocabulary=("baseball_diamond", "beach", "airport"))
    assert open_q.turns[0].answer == "baseball diamond"
    assert open_q.turns[0].question.endswith("Answer the question using a single word or phrase.")
    [mc] = _records(scene, "classification", vocabulary=("baseball_diamond", "beach", "airport", "forest", "lake"),
                    tasks={"classification_choices": 4})
    question, answer = mc.turns[0].question, mc.turns[0].answer
    options = [line for line in question.splitlines() if line[:3] in ("A. ", "B. ", "C. ", "D. ")]
    assert len(options) == 4
    assert f"{answer}. baseball diamond" in options


def test_presence_answers_yes_for_present_and_no_for_absent_as_often() -> None:
    objs = (_box_obj("plane", 10, 10, 40, 40), _box_obj("ship", 100, 10, 140, 40))
    vocabulary = ("plane", "ship", "bridge", "harbor", "airport", "helicopter")
    records = {r.task: r for r in _records(_scene(objects=objs), "detection", vocabulary=vocabulary)}
    presence = records["presence"]
    answers = {next(w for w in ("bridges", "planes", "ships", "helicopters") if w in t.question): t.answer
               for t in presence.turns}
    # Site-scale categories (harbour, airport) are never asked as absent: they name scene types.
    assert answers == {"planes": "Yes", "ships": "Yes", "bridges": "No", "helicopters": "No"}
    assert presence.meta["answers_from"] == "labels"


def test_unannotated_images_get_no_template_records() -> None:
    assert _records(_scene(annotated=False), "detection", vocabulary=("plane",)) == []


@pytest.mark.parametrize("seed", [0, 1])
def test_wording_depends_on_seed_and_record_not_on_order(seed: int) -> None:
    scene = _scene(captions=tuple(f"caption {i}." for i in range(10)))
    first = [r.turns[0].question for r in _records(scene, "caption", seed=seed)]
    again = [r.turns[0].question for r in _records(scene, "caption", seed=seed)]
    assert first == again
    assert len(set(first)) > 1
