"""The RSVQA-LR/HR adapters on synthetic split files written the way the official AutomaticDB/Splits.py writes them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import dry_run, split_out, write_image

from rsgpt4v.core.issue_codes import IssueCode
from rsgpt4v.core.schema import QA, Issue, Sample
from rsgpt4v.sources import get_source
from rsgpt4v.sources.base import SourceError
from rsgpt4v.sources.rsvqa import RSVQAHR, RSVQALR

# (image id, split) and (question id, image id, type, question, answer): ids as the database assigns them
LR_IMAGES = [(0, "train"), (1, "train"), (2, "val"), (3, "test")]
LR_QUESTIONS = [
    (0, 0, "presence", "Is there a road?", "yes"),
    (1, 0, "comp", "Is the number of water areas smaller than the number of buildings?", "no"),
    (2, 0, "rural_urban", "Is it a rural or an urban area", "rural"),
    (3, 1, "count", "How many buildings are there?", "0"),
    (4, 1, "presence", "Is there a water area in the image?", "yes"),
    (5, 2, "count", "How many residential buildings are there?", "between 11 and 100"),
    (6, 3, "presence", "Is there a farmland?", "no"),
    (7, 3, "comp", "Are there more roads than buildings?", "yes"),
]


def _padded(entries: list[dict], ids_of_active: list[list[int]]) -> list[dict]:
    """Splits.py get_questions/get_answers: placeholders fill the gaps BEFORE each active run, none after."""
    out: list[dict] = []
    last = 0
    by_id = {e["id"]: e for e in entries}
    for ids in ids_of_active:
        while last < ids[0]:
            out.append({"id": last, "active": False})
            last += 1
        out.extend(by_id[i] for i in ids)
        last = ids[-1] + 1
    return out


def write_split_files(root: Path, prefix: str, images: list[tuple[int, str]],
                      questions: list[tuple[int, int, str, str, str]], sensor: str = "Sentinel-2") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    q_of = {img: [q[0] for q in questions if q[1] == img] for img, _ in images}
    for split in dict.fromkeys(s for _, s in images):
        image_rows, q_runs, a_runs = [], [], []
        for img, img_split in images:
            if img_split != split:
                image_rows.append({"id": img, "active": False})
                continue
            image_rows.append({"id": img, "date_added": 1555415296.4, "original_name": f"tile_{img}-0.tif",
                               "sensor": sensor, "people_id": 0, "type": "Visible",
                               "questions_ids": q_of[img], "active": True})
            if q_of[img]:
                q_runs.append(q_of[img])
                a_runs.append(q_of[img])  # one answer per question, same id
        q_rows = [{"id": qid, "date_added": 1555415300.1, "img_id": img, "people_id": 0, "type": kind,
                   "question": text, "answers_ids": [qid], "active": True}
                  for qid, img, kind, text, _ in questions]
        a_rows = [{"id": qid, "date_added": 1555415300.2, "question_id": qid, "people_id": 0, "answer": answer,
                   "active": True} for qid, _, _, _, answer in questions]
        for kind, rows in (("images", image_rows), ("questions", _padded(q_rows, q_runs)),
                           ("answers", _padded(a_rows, a_runs))):
            (root / f"{prefix}_split_{split}_{kind}.json").write_text(json.dumps({kind: rows}))
    return root


def make_lr(root: Path) -> Path:
    write_split_files(root, "LR", LR_IMAGES, LR_QUESTIONS)
    for img, _ in LR_IMAGES:
        write_image(root / "Images_LR" / f"{img}.tif")
    return root


def load(root: Path, split: str, kind: str, prefix: str = "LR") -> list[dict]:
    return json.loads((root / f"{prefix}_split_{split}_{kind}.json").read_text())[kind]


def save(root: Path, split: str, kind: str, rows: list[dict], prefix: str = "LR") -> None:
    (root / f"{prefix}_split_{split}_{kind}.json").write_text(json.dumps({kind: rows}))


# ---- the native layout -----------------------------------------------------------------------

def test_lr_samples_questions_and_inactive_rows(tmp_path: Path) -> None:
    root = make_lr(tmp_path / "RSVQA_LR")
    items = list(RSVQALR(root))
    samples, issues = split_out(items)
    assert [(s.split, s.image_id, len(s.qa)) for s in samples] == [
        ("train", "0", 3), ("train", "1", 2), ("val", "2", 1), ("test", "3", 2)]
    # every split file lists all 4 images; val/test question and answer files are padded before their run
    assert [(i.kind, i.file, i.reason) for i in issues] == [
        ("warning", "LR_split_train_images.json", "2 inactive images dropped"),
        ("warning", "LR_split_val_images.json", "3 inactive images dropped"),
        ("warning", "LR_split_val_questions.json", "5 inactive questions dropped"),
        ("warning", "LR_split_val_answers.json", "5 inactive answers dropped"),
        ("warning", "LR_split_test_images.json", "3 inactive images dropped"),
        ("warning", "LR_split_test_questions.json", "6 inactive questions dropped"),
        ("warning", "LR_split_test_answers.json", "6 inactive answers dropped"),
    ]
    first = samples[0]
    assert first.qa == (
        QA(question="Is there a road?", answer="yes", kind="presence"),
        QA(question="Is the number of water areas smaller than the number of buildings?", answer="no", kind="comp"),
        QA(question="Is it a rural or an urban area", answer="rural", kind="rural_urban"),
    )
    assert first.source == "rsvqa-lr" and first.gsd == 10.0 and first.annotated
    assert first.image_path == (root / "Images_LR" / "0.tif").resolve()
    assert first.rel_image == "Images_LR/0.tif"
    assert first.provenance == {"images_file": "LR_split_train_images.json",
                                "questions_file": "LR_split_train_questions.json", "id": 0,
                                "original_name": "tile_0-0.tif", "sensor": "Sentinel-2"}
    assert samples[2].qa == (QA(question="How many residential buildings are there?", answer="between 11 and 100",
                                kind="count"),)


def test_iteration_is_repeatable_and_split_argument(tmp_path: Path) -> None:
    root = make_lr(tmp_path / "lr")
    ds = RSVQALR(root)
    assert list(ds) == list(ds)
    assert [s.image_id for s in RSVQALR(root, split="val") if isinstance(s, Sample)] == ["2"]
    with pytest.raises(SourceError, match=r"no split 'test_phili' .*found: train, val, test"):
        RSVQALR(root, split="test_phili")


def test_hr_prefix_data_folder_area_answers_and_test_phili(tmp_path: Path) -> None:
    root = tmp_path / "RSVQA_HR"
    write_split_files(root, "USGS", [(0, "test_phili"), (1, "train"), (2, "test"), (3, "val")], [
        (0, 0, "area", "What is the area covered by residential buildings?", "1234m2"),
        (1, 1, "presence", "Is there a residential building?", "yes"),
        (2, 1, "area", "What is the area covered by small parkings?", "0m2"),
        (3, 2, "count", "How many roads are there?", "4"),
        (4, 3, "comp", "Are there less buildings than roads?", "no"),
    ], sensor="USGS")
    for img in range(4):
        write_image(root / "Data" / f"{img}.tif")
    samples, _ = split_out(list(RSVQAHR(root)))
    assert [(s.split, s.image_id) for s in samples] == [
        ("train", "1"), ("val", "3"), ("test", "2"), ("test_phili", "0")]
    assert samples[0].qa[1] == QA(question="What is the area covered by small parkings?", answer="0m2", kind="area")
    assert samples[-1].qa == (QA(question="What is the area covered by residential buildings?", answer="1234m2",
                                 kind="area"),)
    assert {s.gsd for s in samples} == {0.15} and {s.source for s in samples} == {"rsvqa-hr"}
    assert samples[0].rel_image == "Data/1.tif" and samples[0].provenance["sensor"] == "USGS"
    # the LR adapter does not read HR files
    with pytest.raises(SourceError, match=r"does not look like RSVQA-LR: expected LR_split_"):
        RSVQALR(root)


def test_rows_are_indexed_by_id_not_position(tmp_path: Path) -> None:
    root = make_lr(tmp_path / "lr")
    for kind in ("images", "questions", "answers"):
        save(root, "train", kind, list(reversed(load(root, "train", kind))))
    samples, _ = split_out(list(RSVQALR(root, split="train")))
    # images in (reversed) file order, questions in (reversed) question-file order
    assert [s.image_id for s in samples] == ["1", "0"]
    assert [q.answer for q in samples[1].qa] == ["rural", "no", "yes"]


def test_image_folder_probing_and_other_suffix(tmp_path: Path) -> None:
    root = tmp_path / "lr"
    write_split_files(root, "LR", [(0, "train")], [(0, 0, "presence", "Is there a road?", "yes")])
    write_image(root / "Images" / "0.png")
    (sample,) = [i for i in RSVQALR(root) if isinstance(i, Sample)]
    assert sample.rel_image == "Images/0.png"


def test_numeric_answers_become_text_and_images_without_questions_are_kept(tmp_path: Path) -> None:
    root = tmp_path / "lr"
    write_split_files(root, "LR", [(0, "train"), (1, "train")], [(0, 0, "count", "How many roads are there?", "x")])
    answers = load(root, "train", "answers")
    answers[0]["answer"] = 12
    save(root, "train", "answers", answers)
    for img in (0, 1):
        write_image(root / "Images_LR" / f"{img}.tif")
    first, second = list(RSVQALR(root))
    assert first.qa == (QA(question="How many roads are there?", answer="12", kind="count"),)
    assert second.image_id == "1" and second.qa == ()


# ---- bad input -------------------------------------------------------------------------------

def test_bad_rows_become_issues(tmp_path: Path) -> None:
    root = tmp_path / "lr"
    write_split_files(root, "LR", [(0, "train"), (1, "train"), (2, "train")], [
        (0, 0, "presence", "Is there a road?", "yes"),
        (1, 0, "count", "How many buildings are there?", "3"),
        (2, 1, "presence", "Is there a farmland?", "no"),
        (3, 1, "comp", "Are there more roads than buildings?", "yes"),
        (4, 2, "presence", "Is there a water area?", "no"),
    ])
    images = load(root, "train", "images")
    images.append("junk")                                                   # images[3]
    images.append({"id": "4", "active": True})                              # images[4] id not int
    images.append({**images[1], "original_name": "dup.tif"})                # images[5] duplicate id 1
    save(root, "train", "images", images)
    questions = load(root, "train", "questions")
    questions[1]["question"] = "  "                                         # no text
    questions[2]["img_id"] = 9                                              # no such image
    questions[3]["answers_ids"] = []                                        # no answer
    questions[4]["answers_ids"] = [44]                                      # answer id missing
    questions.append({**questions[0], "question": "duplicate"})             # questions[5] duplicate id 0
    questions.append({"id": 6, "img_id": 0, "type": "presence", "question": "Is there a bridge?",
                      "answers_ids": [6], "active": True})                  # answer has no text
    questions.append({"id": 7, "img_id": [0], "question": "q?", "answers_ids": [7], "active": True})  # list img_id
    save(root, "train", "questions", questions)
    answers = load(root, "train", "answers")
    answers.append({"id": 6, "question_id": 6, "answer": None, "active": True})
    answers.append({"id": 8, "question_id": 99, "answer": "yes", "active": True})  # orphan answer
    answers.append({"id": 0, "question_id": 0, "answer": "no", "active": True})    # duplicate id 0
    save(root, "train", "answers", answers)
    write_image(root / "Images_LR" / "0.tif")
    write_image(root / "Images_LR" / "1.tif")                               # 2.tif is missing
    items = list(RSVQALR(root))
    samples, issues = split_out(items)
    assert [(s.image_id, [q.question for q in s.qa]) for s in samples] == [
        ("0", ["Is there a road?"]), ("1", [])]
    assert [(i.kind, i.file, i.line, i.reason) for i in issues] == [
        ("skip", "LR_split_train_images.json", None, "images[3]: not an object"),
        ("skip", "LR_split_train_images.json", None, "images[4]: id '4' is not a non-negative integer"),
        ("skip", "LR_split_train_images.json", None, "images[5] (id 1): duplicate id (first at images[1])"),
        ("skip", "LR_split_train_questions.json", None, "questions[5] (id 0): duplicate id (first at questions[0])"),
        ("skip", "LR_split_train_answers.json", None, "answers[7] (id 0): duplicate id (first at answers[0])"),
        ("skip", "LR_split_train_answers.json", None,
         "answers[6] (id 8): question_id 99 is not an active question of LR_split_train_questions.json"),
        ("skip", "LR_split_train_questions.json", None, "questions[1] (id 1): no question text"),
        ("skip", "LR_split_train_questions.json", None,
         "questions[2] (id 2): img_id 9 is not an active image of LR_split_train_images.json"),
        ("skip", "LR_split_train_questions.json", None, "questions[3] (id 3): no answers_ids"),
        ("skip", "LR_split_train_questions.json", None,
         "questions[4] (id 4): answer id 44 is not an active answer of LR_split_train_answers.json"),
        ("skip", "LR_split_train_questions.json", None, "questions[6] (id 6): answer id 6 has no usable answer (None)"),
        ("skip", "LR_split_train_questions.json", None,
         "questions[7] (id 7): img_id [0] is not an active image of LR_split_train_images.json"),
        ("skip", "LR_split_train_images.json", None,
         "images[2] (id 2): image file not found (expected Images_LR/2.tif); its 0 questions skipped"),
    ]


def test_question_of_an_image_of_another_split_is_skipped(tmp_path: Path) -> None:
    root = make_lr(tmp_path / "lr")
    questions = load(root, "val", "questions")
    questions[-1]["img_id"] = 0  # image 0 is train: inactive in the val images file
    save(root, "val", "questions", questions)
    items = list(RSVQALR(root, split="val"))
    assert Issue(kind="skip", code=IssueCode.BROKEN_REFERENCE, file="LR_split_val_questions.json",
                 reason="questions[5] (id 5): img_id 0 is not an active image of LR_split_val_images.json") in items
    assert [(s.image_id, s.qa) for s in items if isinstance(s, Sample)] == [("2", ())]


@pytest.mark.parametrize(
    ("content", "line", "code", "reason"),
    [
        ('{"images": [\n{"id": 0,,}]}', 2, IssueCode.FILE_SYNTAX_ERROR,
         "invalid JSON: Expecting property name enclosed in double quotes"),
        ('[{"id": 0}]', None, IssueCode.FILE_WRONG_STRUCTURE,
         'expected an object {"images": [...]}; split \'train\' skipped'),
        ('{"img": []}', None, IssueCode.FILE_WRONG_STRUCTURE,
         'expected an object {"images": [...]}; split \'train\' skipped'),
    ],
)
def test_unreadable_split_file_skips_the_split(tmp_path: Path, content: str, line: int | None, code: IssueCode,
                                               reason: str) -> None:
    root = make_lr(tmp_path / "lr")
    (root / "LR_split_train_images.json").write_text(content)
    items = list(RSVQALR(root))
    assert items[0] == Issue(kind="skip", code=code, file="LR_split_train_images.json", line=line, reason=reason)
    assert [s.split for s in items if isinstance(s, Sample)] == ["val", "test"]


def test_missing_answers_file_skips_the_split(tmp_path: Path) -> None:
    root = make_lr(tmp_path / "lr")
    (root / "LR_split_test_answers.json").unlink()
    items = list(RSVQALR(root, split="test"))
    assert items[-1] == Issue(kind="skip", code=IssueCode.ANNOTATION_MISSING, file="LR_split_test_answers.json",
                              reason="file missing; split 'test' skipped")
    assert not any(isinstance(i, Sample) for i in items)


def test_unrecognised_roots_raise(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not a folder"):
        RSVQALR(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match=r"expected LR_split_\{train,val,test\}_\{images,questions,answers\}\.json"):
        RSVQALR(tmp_path / "empty")
    write_split_files(tmp_path / "noimg", "USGS", [(0, "train")], [(0, 0, "presence", "Is there a road?", "yes")])
    with pytest.raises(SourceError, match=r"no image folder \(looked for Images_LR/, Data/, Images/\)"):
        RSVQAHR(tmp_path / "noimg")


def test_registry_and_class_attributes() -> None:
    assert get_source("rsvqa-lr") is RSVQALR and get_source("rsvqa-hr") is RSVQAHR
    for cls in (RSVQALR, RSVQAHR):
        assert cls.task_kind == "vqa" and cls.vocabulary == () and cls.description


# ---- end to end ------------------------------------------------------------------------------

def test_cli_dry_run(tmp_path: Path) -> None:
    _, records, manifest = dry_run("rsvqa-lr", make_lr(tmp_path / "lr"), tmp_path / "out", tasks={'caption', 'multi_turn_reasoning', 'detailed_description', 'vqa'})
    assert records and {r["split"] for r in records} <= {"train", "val", "test"}
    assert manifest["counts"]["samples"] == 4
