"""QC on the real P1888 window (a bus depot: 50 labelled buses, 14 labelled cars): the shared
qc-cases get their verdicts through the checks a build uses, and so do other sentences of the
same kinds written here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from rsgpt4v.core.config import load_config
from rsgpt4v.core.responses import DialogueResponse, GlobalResponse, LocalResponse
from rsgpt4v.core.schema import Sample, Scene
from rsgpt4v.imaging.tiling import clip_to_image, make_scenes
from rsgpt4v.quality.qc import QualityChecker
from rsgpt4v.sources.dota import DOTA, VOCABULARIES

CAPTION = "A bus depot with long rows of parked school buses and a small car park on the right."
DESCRIPTION = (
    "This top-down view shows a large paved depot. Rows of yellow-roofed school buses are parked side by "
    "side across the middle of the lot, with their fronts pointing south, and a few buses stand apart from "
    "the rows. A smaller car park with cars in neat rows lies on the right, beside a low building with a "
    "grey roof. Dense trees and scrub line the western and southern edges, and a pond and bare ground lie "
    "further west. Grass islands with lamp posts separate the parking lanes.")
DIALOGUE = [
    ("What is this paved area used for?",
     "It is a depot where buses are parked overnight or between runs. Long rows of buses of the same size "
     "fill the lot, and a few cars stand in a separate car park on the right."),
    ("Why are the buses parked in tight rows with their fronts pointing the same way?",
     "Parking them nose to tail in rows fits many vehicles on the lot, and pointing them the same way lets "
     "each one pull out forward onto the lanes between the rows."),
    ("How do drivers likely reach the buses?",
     "They probably park their cars in the small car park on the right and walk across the lot; the "
     "building beside the car park suggests an office or a workshop."),
    ("What would happen if a bus in the middle of a row broke down?",
     "It would block the buses behind it, so staff would likely tow it out through the open lane in front "
     "of the row, which is wide enough for that."),
    ("Where could more buses be parked if the fleet grew?",
     "The open paved area at the top of the lot, near the building, has room for another row or two."),
]


@pytest.fixture
def p1888(real_dir: Path) -> Scene:
    source = DOTA(real_dir / "dota_v1.0")
    sample = next(s for s in source if isinstance(s, Sample) and s.image_id == "P1888")
    with Image.open(sample.image_path) as im:
        width, height = im.size
    objects, _ = clip_to_image(sample, width, height)
    return make_scenes(sample, objects, width, height, load_config().tiling)[0]


@pytest.fixture(scope="module")
def qc() -> QualityChecker:
    return QualityChecker(load_config().qc, lambda: VOCABULARIES["2.0"], exhaustive_labels=True)


def _notes(scene: Scene) -> list[dict]:
    return [{"id": i, "colour": "white", "shape": "long rectangle", "orientation": "aligned north-south",
             "state": "parked", "description": f"A white {'bus' if o.category == 'large-vehicle' else 'car'} "
                                               "parked on the paved lot with its front pointing south.",
             "relations": [], "referring_expression": "a white vehicle on the paved lot", "distinctive": False}
            for i, o in enumerate(scene.objects, start=1)]


def verdict(qc: QualityChecker, scene: Scene, case: dict) -> str:
    """The case's text put where it belongs, through the check the build runs for that stage."""
    if case["stage"] == "global":
        resp = GlobalResponse(caption=CAPTION, description=DESCRIPTION + " " + case["description_add"])
        problem = qc.scene_text(scene)(resp)
    elif case["stage"] == "dialogue":
        turns = [{"question": q, "answer": a} for q, a in DIALOGUE]
        turn = turns[case["turn"] - 1]
        turn.update({k: case[k] for k in ("question", "answer") if k in case})
        problem = qc.dialogue(scene)(DialogueResponse.model_validate({"turns": turns}))
    else:
        notes = _notes(scene)
        note = notes[case["obj"] - 1]
        note.update({k: case[k] for k in ("description", "referring_expression") if k in case})
        problem = qc.local(scene)(LocalResponse.model_validate({"objects": notes}))
    return "accept" if problem is None else "reject"


def _cases(real_dir: Path) -> list[dict]:
    path = real_dir.parent.parent / "qc-cases" / "p1888.jsonl"
    if not path.is_file():
        pytest.skip(f"no qc cases at {path}")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_the_base_texts_are_accepted(qc: QualityChecker, p1888: Scene) -> None:
    assert qc.scene_text(p1888)(GlobalResponse(caption=CAPTION, description=DESCRIPTION)) is None
    turns = DialogueResponse.model_validate({"turns": [{"question": q, "answer": a} for q, a in DIALOGUE]})
    assert qc.dialogue(p1888)(turns) is None
    assert qc.local(p1888)(LocalResponse.model_validate({"objects": _notes(p1888)})) is None


def test_every_shared_case_gets_its_verdict(qc: QualityChecker, p1888: Scene, real_dir: Path) -> None:
    cases = _cases(real_dir)
    assert len(cases) >= 31
    wrong = [(c["id"], c["want"]) for c in cases if verdict(qc, p1888, c) != c["want"]]
    assert wrong == []


# Other sentences of the same kinds (true: 50 buses, 14 cars, all cars in the car park on the
# right, 17 buses in the middle row, 2 buses alone at the western edge).
OWN = [
    ("global", "accept", "Seventeen buses stand side by side in the middle row."),
    ("global", "accept", "The top row holds several groups of buses, and 2 of them are yellow."),
    ("global", "accept", "Fourteen cars fill the car park on the right."),
    ("global", "accept", "The car park on the right holds 14 cars in three short rows."),
    ("global", "accept", "Roughly fifty buses are parked in the lot."),
    ("global", "accept", "At least 40 buses are parked in the rows."),
    ("global", "accept", "The lot holds fifty buses in total."),
    ("global", "accept", "Two lanes separate the three rows of buses."),
    ("global", "accept", "Each bus is roughly 12 metres long."),
    ("global", "accept", "A two-storey building stands at the top of the image."),
    ("global", "accept", "One of the buses in the top row has a yellow roof."),
    ("global", "accept", "Buses in the bottom row are parked nose to tail along a bus lane."),
    ("global", "accept", "Three car parks and a bus yard fill the scene."),
    ("global", "accept", "The colour of the building's roof cannot be made out."),
    ("global", "accept", "All buses point south, and the cars face east."),
    ("global", "accept", "Twenty-four-hour lighting posts stand on the grass islands."),
    ("global", "accept", "Only two buses are parked outside the rows."),
    ("global", "accept", "Each of the three rows holds between 10 and 20 buses."),
    ("global", "accept", "A pair of buses stands apart at the western edge."),
    ("global", "accept", "The lot holds about fifty buses and over a dozen cars."),
    ("global", "accept", "No planes or ships are in view."),
    ("global", "accept", "The grass islands are outlined by low kerbs and planted with trees."),
    ("global", "accept", "The buses are sorted according to size, the longest in the middle row."),
    ("global", "accept", "A lone bus is parked at the western edge, and another one stands further south."),
    ("global", "accept", "Forty buses are parked in the rows, and ten more stand near the fence."),
    ("global", "accept", "Twelve cars stand in the car park, and two more are parked by the road."),
    ("global", "accept", "Forty-eight buses fill the rows, and another two stand alone."),
    ("global", "accept", "The lot holds 50 buses, 17 of them in the middle row."),
    ("global", "reject", "Forty buses are parked in the rows, and twenty more stand near the fence."),
    ("global", "reject", "The lot holds 45 buses, 17 of them in the middle row."),
    ("global", "reject", "The top row holds 23 buses."),
    ("global", "reject", "Three lone buses stand at the western edge."),
    ("global", "reject", "Outlined in yellow, one bus stands out from the rest."),
    ("global", "reject", "Nearly a hundred buses fill the lot."),
    ("global", "reject", "The depot holds sixty-odd buses."),
    ("global", "reject", "The image shows between 30 and 40 buses."),
    ("global", "reject", "There's no way to know what the building is."),
    ("global", "reject", "There are 52 buses in the depot."),
    ("global", "reject", "Thirty-five buses are parked across the lot."),
    ("global", "reject", "The depot holds twenty four buses."),
    ("global", "reject", "Over 60 buses fill the depot."),
    ("global", "reject", "Fewer than 30 buses are parked here."),
    ("global", "reject", "Dozens of cars are parked on the right."),
    ("global", "reject", "Sixteen cars are parked in the lot."),
    ("global", "reject", "In total, the image shows 49 buses and 14 cars."),
    ("global", "reject", "Ten cars stand in the car park on the right."),
    ("global", "reject", "The middle row alone holds 70 buses."),
    ("global", "reject", "Four buses stand isolated near the western edge."),
    ("global", "reject", "A plane is parked near the building."),
    ("global", "reject", "Two ships are moored in the pond at the left."),
    ("global", "reject", "A swimming pool lies beside the building."),
    ("global", "reject", "Sorry, the vehicles are too small to identify."),
    ("global", "reject", "I can\u2019t tell what the building is used for."),
    ("global", "reject", "Unfortunately the image is too blurry to count the cars."),
    ("global", "reject", "What the building holds cannot be determined from above."),
    ("global", "reject", "As listed, the buses fill three rows."),
    ("global", "reject", "The marks show where each bus stands."),
    ("global", "reject", "Each bus carries a label with its id."),
    ("global", "reject", "The counted large-vehicle objects fill the rows."),
    ("global", "reject", "The storage-tanks are absent, but 14 small vehicles stand on the right."),
    ("global", "reject", "The buses belong to the Jefferson County school board."),
    ("global", "reject", "The photo was taken in winter, as the trees are bare."),
    ("global", "reject", "Long shadows suggest the image was taken in the late afternoon."),
    ("global", "reject", "The image dates from 2019."),
    ("global", "reject", "The scene holds small_vehicles in a car park."),
    ("global", "reject", "Largevehicles fill the rows."),
    ("global", "reject", "Each numbered bus faces south."),
    ("global", "reject", "The counts provided match the rows."),
    ("global", "reject", "It is hard to tell what the building is for."),
    ("global", "reject", "The depot is owned by the city."),
    ("global", "accept", "Small vehicles line the right edge of the car park."),
    ("global", "reject", "From the object list, most of the vehicles are buses."),
    ("global", "reject", "The data shows that buses fill most of the lot."),
    ("global", "reject", "In the provided information, every bus points south."),
    ("global", "reject", "The category counts match what is visible in the rows."),
    ("global", "reject", "Judging by the labels, the cars stand on the right."),
    ("global", "accept", "The cars in the small lot are sorted by size, according to their length."),
    ("global", "accept", "From the top of the image, a road leads down to the lot."),
    ("dialogue_question", "reject", "Based on the list, how many buses are parked here?"),
    ("dialogue_question", "reject", "Why are 45 buses parked in this lot?"),
    ("dialogue_question", "reject", "Why would the Greyhound company park here?"),
    ("dialogue_question", "accept", "Why do the two buses at the western edge stand apart from the rows?"),
    ("dialogue_answer", "reject", "Because the 40 buses need space to turn."),
    ("dialogue_answer", "accept", "Because the 50 buses need room to turn, the lanes between rows are wide."),
    ("object_description", "reject", "A bus highlighted by the red outline in the middle row."),
    ("object_description", "reject", "A school bus, number 12, parked in the top row."),
    ("object_description", "reject", "The bus with id 7 is parked in the middle row."),
    ("object_description", "reject", "Object 14 is a bus parked at the edge of the lot."),
    ("object_description", "reject", "A bus with the green mark, parked in the top row."),
    ("object_description", "reject", "Bus parked in the middle row."),
    ("object_description", "accept", "A white school bus with a yellow roof, parked in the middle row facing south."),
    ("referring_expression", "reject", "the second bus listed"),
    ("referring_expression", "reject", "the third car"),
    ("referring_expression", "reject", "bus #31"),
    ("referring_expression", "reject", "the bus 31"),
    ("referring_expression", "accept", "the second bus from the left in the middle row"),
    ("referring_expression", "accept", "the lone bus at the bottom left of the lot"),
]


@pytest.mark.parametrize("kind, want, text", OWN)
def test_other_sentences_of_the_same_kinds(qc: QualityChecker, p1888: Scene, kind: str, want: str, text: str) -> None:
    if kind == "global":
        case = {"stage": "global", "description_add": text}
    elif kind.startswith("dialogue"):
        case = {"stage": "dialogue", "turn": 3, kind.split("_")[1]: text}
    else:
        case = {"stage": "local", "obj": 5, kind.replace("object_", ""): text}
    assert verdict(qc, p1888, case) == want


DIALOGUE_CASES = [
    ("accept", DIALOGUE),
    ("reject", [("How many buses are there?", "There are 50 buses."), *DIALOGUE[1:]]),    # restates a count
    ("reject", [DIALOGUE[0], ("Are there any cars?", "Yes, there are cars."), *DIALOGUE[2:]]),
    ("reject", [("Why are so many buses parked at this depot?", DIALOGUE[0][1]), *DIALOGUE[1:]]),   # gives it away
    ("reject", [("How are the buses arranged?", DIALOGUE[0][1]), *DIALOGUE[1:]]),
    ("accept", [("What is going on in this scene?", DIALOGUE[0][1]), *DIALOGUE[1:]]),
    ("accept", [*DIALOGUE[:4], ("What colour are most of the roofs?", "Most are white, and a few are yellow.")]),
    # A first question may name what it asks about; it may not hold its own answer.
    ("accept", [("Why are the buses parked in three long rows?",
                 "Rows fit the most vehicles on the lot, and the lanes between them let each one pull out forward."),
                *DIALOGUE[1:]]),
    ("accept", [("Is there a pattern to how the buses are parked?",
                 "Yes: they stand nose to tail in three long rows, all facing south."), *DIALOGUE[1:]]),
    ("reject", [("Is this a bus depot?", "Yes, long rows of buses fill the paved lot."), *DIALOGUE[1:]]),
    ("reject", [("Are there buses in this lot?", "Yes, long rows of them fill the paved lot."), *DIALOGUE[1:]]),
    ("reject", [("What kind of site holds all these buses?", DIALOGUE[0][1]), *DIALOGUE[1:]]),
    ("reject", [DIALOGUE[0],
                *[(f"What colour is the roof of building {n}?", "It is grey, like the other roofs in the lot.")
                  for n in ("one", "two", "three", "four")]]),                                  # no reasoning
]


@pytest.mark.parametrize("want, turns", DIALOGUE_CASES)
def test_dialogue_reasoning_rule(qc: QualityChecker, p1888: Scene, want: str, turns: list) -> None:
    resp = DialogueResponse.model_validate({"turns": [{"question": q, "answer": a} for q, a in turns]})
    assert ("accept" if qc.dialogue(p1888)(resp) is None else "reject") == want


def test_the_retry_reason_names_the_rule_not_the_total(qc: QualityChecker, p1888: Scene) -> None:
    problem = qc.scene_text(p1888)(GlobalResponse(caption=CAPTION, description=DESCRIPTION
                                                  + " In all, 48 buses are parked here."))
    assert problem.kind == "qc_count"
    assert "48 buses" in problem.detail and "State a total only as labelled" in problem.detail
    assert "50" not in problem.detail and "fifty" not in problem.detail


def test_rejections_are_counted_by_kind_with_an_example(p1888: Scene) -> None:
    qc = QualityChecker(load_config().qc, lambda: VOCABULARIES["2.0"], exhaustive_labels=True)
    for add in ("Forty buses are parked in the rows.", "According to the notes, every bus points south.",
                "In all, 48 buses are parked here."):
        qc.scene_text(p1888)(GlobalResponse(caption=CAPTION, description=DESCRIPTION + " " + add))
    report = qc.report()
    assert report["qc_count"]["count"] == 2 and report["qc_meta_talk"]["count"] == 1
    assert report["qc_count"]["example"].endswith("Forty buses are parked in the rows.")   # sorted: first text
