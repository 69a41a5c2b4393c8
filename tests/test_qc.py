"""Grounding checks on model text, and their regeneration loop through a real build."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import LoopbackServer
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.core.config import load_config
from rsgpt4v.core.responses import DialogueResponse, GlobalResponse, LocalResponse
from rsgpt4v.core.schema import Obj, Sample, Scene
from rsgpt4v.imaging.geometry import bounding_box
from rsgpt4v.llm.mock import completion_for
from rsgpt4v.quality.qc import QualityChecker
from rsgpt4v.sources.dota import DOTA, VOCABULARIES


def _obj(cat: str, i: int) -> Obj:
    poly = ((10.0 * i, 0.0), (10.0 * i + 8, 0.0), (10.0 * i + 8, 8.0), (10.0 * i, 8.0))
    return Obj(category=cat, polygon=poly, box=bounding_box(poly))


def _scene(**counts: int) -> Scene:
    objs = tuple(_obj(cat.replace("_", "-"), i) for cat, n in counts.items() for i in range(n))
    sample = Sample(source="dota", split="train", image_id="P1", image_path=Path("/x.png"), rel_image="x.png",
                    objects=objs)
    return Scene(sample=sample, window=(0, 0, 1024, 1024), objects=objs)


@pytest.fixture(scope="module")
def qc() -> QualityChecker:
    return QualityChecker(load_config().qc, lambda: VOCABULARIES["2.0"], exhaustive_labels=True)


DESCRIPTION = ("This top-down view shows an apron beside a terminal building, with parked aircraft in a row "
               "and service roads between the stands; the ground around them is concrete and grass, seen "
               "from directly above in clear light.")


def _glob(caption: str, description: str = DESCRIPTION) -> GlobalResponse:
    return GlobalResponse(caption=caption, description=description)


@pytest.mark.parametrize("caption, kind", [
    ("An apron with 5 planes parked at the terminal.", "qc_count"),          # the planted wrong count
    ("An apron with three white planes and a few cars.", "qc_count"),        # number word, adjective between
    ("An apron with 4 planes and 2 cars beside them.", None),
    ("An apron where one of the planes is taxiing.", None),                   # "one of": not a total
    ("An apron with about 10 cars near 4 planes.", "qc_count"),               # a hedge keeps its meaning
    ("An apron with about 2 cars near 4 planes.", None),
    ("An apron with 4 planes and 2 more cars.", None),                        # "2 more": not a total
    ("An apron with 4 planes and a helicopter.", "qc_absent_category"),
    ("An airport apron with 4 planes.", None),                                # site-scale words are exempt
    ("I'm sorry, I can't describe this image.", "qc_refusal"),
    ("The annotations show 4 planes on an apron.", "qc_meta_talk"),
    ("Planes.", "qc_length"),
])
def test_caption_checks(qc: QualityChecker, caption: str, kind: str | None) -> None:
    scene = _scene(plane=4, small_vehicle=2)
    problem = qc.scene_text(scene)(_glob(caption))
    assert (problem.kind if problem else None) == kind


def test_count_problem_names_the_rule_not_the_total(qc: QualityChecker) -> None:
    problem = qc.scene_text(_scene(plane=4))(_glob("An apron with 5 planes parked at the terminal."))
    assert problem.detail.startswith("caption: '5 planes': the number of planes is given as a total that the "
                                     "labels do not support. State a total only as labelled;")
    assert "4" not in problem.detail and "four" not in problem.detail


def test_runaway_description_and_dialogue_answers(qc: QualityChecker) -> None:
    scene = _scene(plane=1)
    assert qc.scene_text(scene)(_glob("A plane on an apron.", "word " * 400)).kind == "qc_length"
    dialogue = DialogueResponse.model_validate({"turns": [
        {"question": "What is there?", "answer": "One plane stands on the apron."},
        {"question": "How many planes?", "answer": "There are 2 planes."}]})
    problem = qc.dialogue(scene)(dialogue)
    assert problem.kind == "qc_count" and problem.detail.startswith("answer 2:")


def test_object_notes_are_checked_like_every_model_text(qc: QualityChecker) -> None:
    note = {"colour": "white", "shape": "x", "orientation": "x", "state": "x", "relations": [],
            "referring_expression": "the plane", "distinctive": True}
    scene = _scene(plane=3)

    def notes(description: str) -> LocalResponse:
        return LocalResponse.model_validate({"objects": [{"id": 1, **note, "description": description}]})
    assert qc.local(scene)(notes("A white plane, one of 3 on the apron.")) is None
    assert qc.local(scene)(notes("Object id 1 is a plane.")).kind == "qc_meta_talk"
    assert qc.local(scene)(notes("A white plane, one of 5 on the apron.")).kind == "qc_count"
    assert qc.local(scene)(notes("A white plane next to a helicopter.")).kind == "qc_absent_category"


def test_counts_are_not_checked_where_labels_are_not_exhaustive() -> None:
    grounding = QualityChecker(load_config().qc, lambda: ("vehicle",), exhaustive_labels=False)
    assert grounding.scene_text(_scene(vehicle=1))(_glob("A road with 7 vehicles parked along it.")) is None


def test_categories_learnt_while_reading_are_checked() -> None:
    vocabulary: list[str] = []
    qc = QualityChecker(load_config().qc, lambda: vocabulary, exhaustive_labels=True)
    scene = _scene(plane=2)
    assert qc.scene_text(scene)(_glob("An apron with 3 planes.")) is None    # nothing known yet
    vocabulary.append("plane")
    assert qc.scene_text(scene)(_glob("An apron with 3 planes.")).kind == "qc_count"


def test_a_wrong_count_is_regenerated_with_the_problem_named(tmp_path: Path) -> None:
    def answer(body: dict) -> tuple[int, dict]:
        completion = completion_for(body)
        name = body["response_format"]["json_schema"]["name"]
        if name == "GlobalResponse" and len(body["messages"]) == 2:       # first attempt: plant a wrong count
            content = json.loads(completion["choices"][0]["message"]["content"])
            content["caption"] = "An aerial view with 99 planes on the apron."
            completion["choices"][0]["message"]["content"] = json.dumps(content)
        return 200, completion

    server = LoopbackServer(answer)
    try:
        out = tmp_path / "qc"
        result = CliRunner().invoke(app, ["build", "--no-progress", "--source", "dota", "--sample", "--limit", "1",
                                          "--out", str(out)],
                                    env={"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "x"})
        assert result.exit_code == 0, result.output
    finally:
        server.close()
    retries = [b for b in server.bodies if b["response_format"]["json_schema"]["name"] == "GlobalResponse"
               and len(b["messages"]) == 3]
    assert retries and all("99 planes" in b["messages"][2]["content"] for b in retries)
    assert not any("7 planes" in b["messages"][2]["content"] for b in retries)     # the total is not told
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["usage"]["by_stage"]["global"]["retry_reasons"] == {"qc_count": len(retries)}
    captions = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert not any("99 planes" in json.dumps(r) for r in captions)


@pytest.mark.parametrize("phrase, value", [
    ("forty buses", (40, 40)), ("twenty-four cars", (24, 24)), ("twenty four cars", (24, 24)),
    ("a dozen cars", (12, 12)), ("half a dozen cars", (6, 6)), ("a couple of cars", (2, 2)),
    ("dozens of cars", (24, float("inf"))), ("hundreds of cars", (200, float("inf"))), ("two hundred cars", (200, 200)),
    ("1,200 cars", (1200, 1200)), ("40-50 cars", (40, 50)), ("ninety-nine cars", (99, 99)),
    ("twenty-eleven cars", None), ("1.5 cars", None), ("3rd car", None), ("12m cars", None), ("many cars", None),
])
def test_number_phrases_are_read_in_full(phrase: str, value: tuple | None) -> None:
    from rsgpt4v.language.words import read_number
    from rsgpt4v.quality.count_claims import tokens
    found = read_number(tokens(phrase), 0)
    assert (found[:2] if found else None) == value


def test_unreadable_number_phrases_are_no_claim_and_never_crash(qc: QualityChecker) -> None:
    import random
    scene = _scene(plane=4, small_vehicle=2)
    bag = ["twenty-eleven", "1.5", "3rd", "50-60", "hundred-odd", "1,2,3", "a", "dozen", "dozens", "of", "forty-",
           "-5", "99999999999999999999", "\u00bd", "\u0663", "planes", "plane", "cars", "car", "about", "more",
           "than", "in", "all", ",", "the", "left", "alone", "row", "one", "of", "them", "twenty", "hundred", "park",
           "\u2013", "(", ")", "?", "over", "at", "least", "exactly", "side", "by"]
    rng = random.Random(7)
    kinds = set()
    for _ in range(3000):
        text = "An apron " + " ".join(rng.choice(bag) for _ in range(rng.randint(1, 12))) + "."
        problem = qc.text(scene, text, "caption")
        kinds.add(problem.kind if problem else None)
    assert kinds <= {None, "qc_count", "qc_length", "qc_absent_category", "qc_meta_talk"} and None in kinds
    for text in ("An apron with twenty-eleven planes.", "An apron with 1.5 planes.", "An apron with hundred-odd cars."):
        assert qc.text(scene, text, "caption") is None, text


@pytest.fixture(scope="module")
def airport() -> Scene:
    """The first window of the bundled P9001: 5 planes (4 in a row at the top, 1 below), 14 cars, 2 trucks."""
    from PIL import Image

    from rsgpt4v.imaging.tiling import clip_to_image, make_scenes
    source = DOTA(Path(__file__).resolve().parents[1] / "rsgpt4v/sample_data/dota")
    sample = next(s for s in source if isinstance(s, Sample) and s.image_id == "P9001")
    with Image.open(sample.image_path) as im:
        objects, _ = clip_to_image(sample, *im.size)
        return make_scenes(sample, objects, *im.size, load_config().tiling)[0]


@pytest.mark.parametrize("sentence, kind", [
    ("Two planes are parked side by side at the terminal.", None),
    ("Five planes stand on the apron.", None),
    ("Four planes are parked in a row across the upper half.", None),
    ("One plane stands apart near the bottom centre.", None),
    ("A single plane waits on the taxiway.", None),
    ("The apron holds 5 planes, 4 of them in a row.", None),
    ("About a dozen cars line the road.", None),
    ("Two cars sit beside each plane.", None),
    ("A fuel truck stands beside the southern plane.", None),
    ("No helicopters are in view.", None),
    ("Six planes are parked on the apron.", "qc_count"),
    ("Only one plane stands on the apron.", "qc_count"),
    ("A row of seven planes fills the upper half.", "qc_count"),
    ("Twenty cars are parked in total.", "qc_count"),
    ("There are three helicopters.", "qc_count"),
    ("A helicopter is parked next to the terminal.", "qc_absent_category"),
    ("Plane 3 is parked nose-in.", "qc_meta_talk"),
])
def test_sentences_on_an_airport_window(qc: QualityChecker, airport: Scene, sentence: str, kind: str | None) -> None:
    assert airport.counts() == {"small-vehicle": 14, "plane": 5, "large-vehicle": 2}
    problem = qc.text(airport, sentence, "dialogue_answer")
    assert (problem.kind if problem else None) == kind


def test_the_stage_checks_run_beside_qc_are_counted_with_an_example() -> None:
    from rsgpt4v.prompting.stages import StageRequests
    from rsgpt4v.quality.qc import both
    qc = QualityChecker(load_config().qc, lambda: VOCABULARIES["2.0"], exhaustive_labels=True)
    scene = _scene(plane=4)
    check = both(StageRequests.check_global, qc.scene_text(scene))
    assert check(_glob(" ")).kind == "empty"
    assert check(_glob("An apron with 9 planes.")).kind == "qc_count"
    assert check(_glob("An apron with 4 planes.")) is None
    assert qc.report() == {"empty": {"count": 1, "example": "the caption is empty"},
                           "qc_count": {"count": 1, "example": "An apron with 9 planes."}}


def test_objects_cut_off_by_the_window_may_be_counted(qc: QualityChecker) -> None:
    scene = _scene(plane=4)
    scene = scene.model_copy(update={"context": (_obj("plane", 50),)})
    assert qc.text(scene, "Four planes stand on the apron.", "caption") is None
    assert qc.text(scene, "Five planes stand on the apron, one cut off by the edge.", "caption") is None
    assert qc.text(scene, "Six planes stand on the apron.", "caption").kind == "qc_count"
    assert qc.text(scene, "Three planes stand on the apron.", "caption").kind == "qc_count"
