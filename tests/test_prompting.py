"""The prompter's messages, checks and dense-window handling; the mock's grounded answers; rendering."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from rsgpt4v.core.config import ConfigError, load_config
from rsgpt4v.core.responses import DialogueResponse, GlobalResponse, LocalResponse
from rsgpt4v.core.schema import Obj, Problem, Record, Sample, Scene, Turn
from rsgpt4v.imaging.geometry import bounding_box
from rsgpt4v.imaging.images import data_url, encode
from rsgpt4v.llm.engine import check_completion
from rsgpt4v.llm.mock import completion_for
from rsgpt4v.prompting.local_plan import plan_local
from rsgpt4v.prompting.marks import marks_of
from rsgpt4v.prompting.stages import SentImage, StageRequests
from rsgpt4v.prompting.templates import PromptError, PromptSet
from rsgpt4v.records.writer import render

IMAGE = SentImage(url=data_url(encode(Image.new("RGB", (512, 512)), "png"), "png"), width=512, height=512, scale=0.5)


def _obj(cat: str, x: float, y: float, w: float = 40, h: float = 20, truncated: bool = False) -> Obj:
    poly = ((x, y), (x + w, y), (x + w, y + h), (x, y + h))
    return Obj(category=cat, polygon=poly, box=bounding_box(poly), truncated=truncated)


def _scene(objs: list[Obj], gsd: float | None = 0.5) -> Scene:
    sample = Sample(source="dota", split="train", image_id="P1", image_path=Path("/x.png"), rel_image="x.png",
                    objects=tuple(objs), gsd=gsd)
    return Scene(sample=sample, window=(1000, 2000, 2024, 3024), objects=tuple(objs))


@pytest.fixture(scope="module")
def prompter() -> StageRequests:
    return StageRequests(PromptSet.load(), load_config(), "gpt-test")


def _user_text(request) -> str:
    return request.messages[1]["content"][0]["text"]


def test_local_request_lists_objects_in_window_coordinates(prompter: StageRequests) -> None:
    scene = _scene([_obj("plane", 1100, 2100, 100, 60), _obj("ship", 2000, 2900, 24, 124, truncated=True)])
    marks = marks_of(scene.objects)
    request = prompter.local_request(scene, IMAGE, IMAGE, marks, [], None, 1)
    text = _user_text(request)
    lines = [json.loads(line.rstrip(",")) for line in text.splitlines() if line.startswith('{"id"')]
    assert lines[0] == {"id": 1, "category": "plane", "box": [0.098, 0.098, 0.195, 0.156], "size_px": [50, 30],
                        "size_m": [50.0, 30.0], "truncated": False}
    assert lines[1]["id"] == 2 and lines[1]["truncated"] is True
    assert "Ground sample distance: 1.00 m per pixel." in text   # 0.5 m source pixels, sent at half size
    assert request.messages[0]["role"] == "system" and "Worked example" in request.messages[0]["content"]
    assert request.messages[1]["content"][1:] == [{"type": "image_url",
                                                  "image_url": {"url": IMAGE.url, "detail": "high"}}] * 2
    assert text.startswith("Two images of the same window follow: first as it is, then with the listed objects")
    assert request.body()["max_completion_tokens"] == 3000


def test_retry_message_names_the_problem(prompter: StageRequests) -> None:
    scene = _scene([_obj("plane", 1100, 2100)])
    request = prompter.local_request(scene, IMAGE, IMAGE, marks_of(scene.objects), [], "ids 1 were listed but not described", 2)
    assert "ids 1 were listed but not described" in request.messages[-1]["content"]
    assert "attempt 2 of 3" in request.messages[-1]["content"]


def test_without_gsd_no_metres_are_given(prompter: StageRequests) -> None:
    scene = _scene([_obj("plane", 1100, 2100)], gsd=None)
    text = _user_text(prompter.local_request(scene, IMAGE, IMAGE, marks_of(scene.objects), [], None, 1))
    assert "size_m" not in text and "Ground sample distance: unknown." in text


def test_dense_window_is_capped_and_rare_categories_kept() -> None:
    objs = [_obj("small-vehicle", 1000 + 10 * i, 2000, 8, 4) for i in range(300)] + [_obj("helicopter", 1500, 2500)]
    marks = marks_of(_scene(objs).objects)
    plan = plan_local(marks, load_config())
    listed = [m for chunk in plan.chunks for m in chunk]
    assert len(listed) == 40 and len(plan.omitted) == 261
    assert any(m.obj.category == "helicopter" for m in listed)
    assert [len(c) for c in plan.chunks] == [14, 13, 13]   # (3000 - 100) // 200 objects fit one answer
    chunked = plan_local(marks, load_config(overrides={"local": {"overflow": "chunk"}}))
    assert sum(map(len, chunked.chunks)) == 301 and chunked.omitted == [] and max(map(len, chunked.chunks)) <= 14


def test_objects_of_other_requests_are_named_by_counts(prompter: StageRequests) -> None:
    objs = [_obj("small-vehicle", 1000 + 10 * i, 2000, 8, 4) for i in range(50)]
    scene = _scene(objs)
    marks = marks_of(scene.objects)
    text = _user_text(prompter.local_request(scene, IMAGE, IMAGE, marks[:14], marks[14:], None, 1))
    assert "Also in the image but not listed here: 36 small vehicles." in text
    assert "Objects in the window: 50. Listed and marked below: 14." in text


def test_counts_are_withheld_where_labels_are_not_exhaustive() -> None:
    scene = _scene([_obj("vehicle", 1100, 2100), _obj("vehicle", 1300, 2100)])
    grounding = StageRequests(PromptSet.load(), load_config(), "gpt-test", exhaustive_labels=False)
    text = _user_text(grounding.global_request(scene, IMAGE, {}, None, 1))
    assert "only some objects in this image are annotated" in text and "- 2 vehicle" not in text
    detection = StageRequests(PromptSet.load(), load_config(), "gpt-test")
    assert "- 2 vehicle" in _user_text(detection.global_request(scene, IMAGE, {}, None, 1))


def test_local_check_names_missing_and_invented_ids(prompter: StageRequests) -> None:
    scene = _scene([_obj("plane", 1100, 2100), _obj("plane", 1300, 2100)])
    note = {"colour": "white", "shape": "x", "orientation": "x", "state": "x", "description": "A plane.",
            "relations": [], "referring_expression": "the plane", "distinctive": True}
    resp = LocalResponse.model_validate({"objects": [{"id": 1, **note}, {"id": 7, **note}]})
    assert prompter.check_local(marks_of(scene.objects))(resp) == Problem(
        "ids", "ids 2 were listed but not described; ids 7 were not listed")


def test_dialogue_check_enforces_turns_and_distinct_questions(prompter: StageRequests) -> None:
    two = DialogueResponse.model_validate({"turns": [{"question": "a?", "answer": "b"}] * 2})
    assert prompter.check_dialogue(two).kind == "turns" and "2 turns" in prompter.check_dialogue(two).detail
    dup = DialogueResponse.model_validate({"turns": [{"question": "Why?", "answer": "b"}] * 3})
    assert prompter.check_dialogue(dup) == Problem("duplicate_question", "the same question is asked twice")


def test_mock_answers_are_grounded_in_the_request(prompter: StageRequests) -> None:
    scene = _scene([_obj("plane", 1100, 2100), _obj("ship", 1500, 2500), _obj("ship", 1700, 2500)])
    marks = marks_of(scene.objects)
    local = check_completion(completion_for(prompter.local_request(scene, IMAGE, IMAGE, marks, [], None, 1).body()),
                             LocalResponse)
    assert [(o.id, "plane" in o.description or "ship" in o.description) for o in local.objects] == [
        (1, True), (2, True), (3, True)]
    assert [o.distinctive for o in local.objects] == [True, False, False]
    notes = {o.id: o for o in local.objects}
    glob = check_completion(completion_for(prompter.global_request(scene, IMAGE, notes, None, 1).body()),
                            GlobalResponse)
    assert "2 ships" in glob.caption and "1 plane" in glob.caption
    dialogue = check_completion(
        completion_for(prompter.dialogue_request(scene, IMAGE, notes, glob, None, 1).body()), DialogueResponse)
    assert prompter.check_dialogue(dialogue) is None


def test_render_places_image_token_once_and_boxes_in_format() -> None:
    record = Record(id="r", image="i.png", task="grounding", source="dota", split="train",
                    turns=[Turn(question="Where is the plane?", answer="<b0>"),
                           Turn(question="And <b0> again?", answer="Yes, <b1>.")],
                    boxes={"b0": (10.0, 20.0, 110.0, 70.0), "b1": (0.0, 0.0, 200.0, 100.0)})
    line = render(record, "geochat", 200, 100, "image")
    assert [c["from"] for c in line["conversations"]] == ["human", "gpt", "human", "gpt"]
    assert line["conversations"][0]["value"] == "<image>\nWhere is the plane?"
    assert line["conversations"][1]["value"] == "<p>object</p> {<5><20><55><70>|<0>}"
    assert line["conversations"][2]["value"] == "And {<5><20><55><70>|<0>} again?"
    assert line["conversations"][3]["value"] == "Yes, <p>object</p> {<0><0><100><100>|<0>}."
    assert line["meta"]["boxes"] == [[10.0, 20.0, 110.0, 70.0], [10.0, 20.0, 110.0, 70.0], [0.0, 0.0, 200.0, 100.0]]


def test_config_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("tiling:\n  window: 10\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:2: tiling.window"):
        load_config(bad)
    bad.write_text("tiling: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    good = tmp_path / "good.yaml"
    good.write_text("local: {max_objects: 5}\n")
    cfg = load_config(good)
    assert cfg.local.max_objects == 5 and cfg.local.overflow == "summarise"


def test_prompt_using_an_unknown_variable_is_a_clear_error(tmp_path: Path) -> None:
    prompts = PromptSet.load()
    for f in prompts.folder.glob("*.yaml"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "global.yaml").write_text("system: s\nuser: 'count: $counts'\nretry: r\n")
    edited = PromptSet.load(tmp_path)
    assert edited.shas["global"] != prompts.shas["global"]
    (tmp_path / "global.yaml").write_text("system: s\nuser: 'count: $nonsense'\nretry: r\n")
    # Found when the prompts are loaded, before any request is paid for.
    with pytest.raises(PromptError, match=r"global.yaml: user uses \$nonsense"):
        PromptSet.load(tmp_path)


def test_a_repair_rounds_attempts_are_counted_on_from_the_last(prompter: StageRequests) -> None:
    scene = _scene([_obj("plane", 1100, 2100)])
    request = prompter.local_request(scene, IMAGE, IMAGE, marks_of(scene.objects), [], "the answer is empty", 4)
    assert "attempt 4 of 6" in request.messages[-1]["content"]
