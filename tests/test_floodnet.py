"""The FloodNet Track 2 adapter on synthetic question files in the release's format (dict keyed "0".."N-1")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import dry_run, split_out, write_image

from rsgpt4v.core.issue_codes import IssueCode
from rsgpt4v.core.schema import QA, Issue, Sample
from rsgpt4v.sources import get_source
from rsgpt4v.sources.base import SourceError
from rsgpt4v.sources.floodnet import FloodNetVQA

TRAIN = [
    ("10165.JPG", "What is the overall condition of the given image?", "flooded", "Condition_Recognition"),
    ("10168.JPG", "What is the overall condition of the given image?", "non flooded", "Condition_Recognition"),
    ("10168.JPG", "How many non flooded buildings can be seen in this image?", 3, "Complex_Counting"),
    ("10168.JPG", "How many buildings can be seen in the image?", 3, "Simple_Counting"),
    ("10170.JPG", "Is the entire road non flooded?", "Yes", "Yes_No"),
    ("10170.JPG", "What is the condition of the road in this image?", "flooded,non flooded", "Condition_Recognition"),
]
VALID = [
    ("10169.JPG", "What is the overall condition of the given image?", None, "Condition_Recognition"),
    ("10169.JPG", "How many buildings are in this image?", None, "Simple_Counting"),
    ("10173.JPG", "Is the entire road non flooded?", None, "Yes_No"),
]
TEST = [("7606.JPG", "What is the condition of road?", None, "Condition_Recognition")]


def question_file(path: Path, rows: list[tuple], raw: str | None = None) -> Path:
    """As released: 4-space indented, keys "0".."N-1", no Ground_Truth key in the valid/test files."""
    entries = {}
    for i, (image, question, truth, kind) in enumerate(rows):
        entry = {"Image_ID": image, "Question": question}
        if truth is not None:
            entry["Ground_Truth"] = truth
        entry["Question_Type"] = kind
        entries[str(i)] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(raw if raw is not None else json.dumps(entries, indent=4))
    return path


def make_root(root: Path, names: tuple[str, str, str] = ("Training Question.json", "Valid Question.json",
                                                          "Test_Question.json")) -> Path:
    for name, rows, folder in zip(names, (TRAIN, VALID, TEST), ("Train_Image", "Valid_Image", "Test_Image")):
        question_file(root / "Questions" / name, rows)
        for image in dict.fromkeys(r[0] for r in rows):
            write_image(root / "Images" / folder / image)
    return root


def test_native_layout(tmp_path: Path) -> None:
    root = make_root(tmp_path / "FloodNet Challenge - Track 2")
    samples, issues = split_out(list(FloodNetVQA(root)))
    assert [(s.split, s.image_id, len(s.qa), s.annotated) for s in samples] == [
        ("train", "10165", 1, True), ("train", "10168", 3, True), ("train", "10170", 2, True),
        ("val", "10169", 0, False), ("val", "10173", 0, False), ("test", "7606", 0, False)]
    assert issues == [
        Issue(kind="warning", code=IssueCode.SPLIT_UNLABELLED, file="Questions/Valid Question.json",
              reason="3 questions without Ground_Truth (split has no answers); images kept unannotated"),
        Issue(kind="warning", code=IssueCode.SPLIT_UNLABELLED, file="Questions/Test_Question.json",
              reason="1 questions without Ground_Truth (split has no answers); images kept unannotated"),
    ]
    s10168, s10170 = samples[1], samples[2]
    assert s10168.qa == (
        QA(question="What is the overall condition of the given image?", answer="non flooded",
           kind="Condition_Recognition"),
        QA(question="How many non flooded buildings can be seen in this image?", answer="3", kind="Complex_Counting"),
        QA(question="How many buildings can be seen in the image?", answer="3", kind="Simple_Counting"),
    )
    assert s10170.qa[1].answer == "flooded,non flooded" and s10170.qa[0] == QA(
        question="Is the entire road non flooded?", answer="Yes", kind="Yes_No")
    assert s10168.source == "floodnet-vqa" and s10168.gsd is None
    assert s10168.image_path == (root / "Images" / "Train_Image" / "10168.JPG").resolve()
    assert s10168.rel_image == "Images/Train_Image/10168.JPG"
    assert s10168.provenance == {"questions_file": "Questions/Training Question.json", "image_name": "10168.JPG",
                                 "questions": 3}
    assert samples[3].provenance == {"questions_file": "Questions/Valid Question.json", "image_name": "10169.JPG",
                                     "questions": 2}


def test_renamed_copies_and_split_argument(tmp_path: Path) -> None:
    root = make_root(tmp_path / "fn", ("Training_Question.json", "Valid_Question.json", "Test Question.json"))
    ds = FloodNetVQA(root)
    assert list(ds) == list(ds)
    assert [s.split for s in ds if isinstance(s, Sample)] == ["train"] * 3 + ["val"] * 2 + ["test"]
    assert [s.image_id for s in FloodNetVQA(root, split="test") if isinstance(s, Sample)] == ["7606"]
    (root / "Questions" / "Test Question.json").unlink()
    with pytest.raises(SourceError, match=r"no split 'test' .*found: train, val"):
        FloodNetVQA(root, split="test")


def test_image_suffix_case_may_differ(tmp_path: Path) -> None:
    root = tmp_path / "fn"
    question_file(root / "Questions" / "Training Question.json", TRAIN[:1])
    write_image(root / "Images" / "Train_Image" / "10165.jpg")
    (sample,) = list(FloodNetVQA(root))
    assert sample.rel_image == "Images/Train_Image/10165.jpg" and sample.image_id == "10165"


def test_bad_entries_become_issues(tmp_path: Path) -> None:
    root = tmp_path / "fn"
    raw = """{
    "0": {"Image_ID": "10165.JPG", "Question": "Is the entire road flooded?", "Ground_Truth": "No",
          "Question_Type": "Yes_No"},
    "1": "not an entry",
    "2": {"Question": "How many buildings are in this image?", "Ground_Truth": 2},
    "3": {"Image_ID": "../10165.JPG", "Question": "q?", "Ground_Truth": "Yes"},
    "4": {"Image_ID": "10165.JPG", "Question": " ", "Ground_Truth": "Yes"},
    "5": {"Image_ID": "10165.JPG", "Question": "How many buildings are non flooded?",
          "Question_Type": "Complex_Counting"},
    "6": {"Image_ID": "10165.JPG", "Question": "Is the entire road non flooded?", "Ground_Truth": true},
    "0": {"Image_ID": "10165.JPG", "Question": "duplicate", "Ground_Truth": "Yes"},
    "7": {"Image_ID": "10999.JPG", "Question": "What is the condition of road?", "Ground_Truth": "flooded"},
    "8": {"Image_ID": "10165.JPG", "Question": "How many buildings are in the image?", "Ground_Truth": 4.0}
}"""
    question_file(root / "Questions" / "Training Question.json", [], raw=raw)
    write_image(root / "Images" / "Train_Image" / "10165.JPG")
    items = list(FloodNetVQA(root))
    samples, issues = split_out(items)
    (s,) = samples
    assert s.qa == (QA(question="Is the entire road flooded?", answer="No", kind="Yes_No"),
                    QA(question="How many buildings are in the image?", answer="4", kind=None))
    f = "Questions/Training Question.json"
    assert [(i.kind, i.file, i.reason) for i in issues] == [
        ("skip", f, 'questions["0"]: duplicate key (the first one is kept)'),
        ("skip", f, 'questions["1"]: not an object'),
        ("skip", f, "questions[\"2\"]: Image_ID None is not a file name"),
        ("skip", f, "questions[\"3\"]: Image_ID '../10165.JPG' climbs out of the image folder"),
        ("skip", f, 'questions["4"]: no Question'),
        ("skip", f, 'questions["5"]: no usable Ground_Truth (None)'),
        ("skip", f, 'questions["6"]: no usable Ground_Truth (True)'),
        ("skip", f, "image '10999.JPG' not found (expected Images/Train_Image/10999.JPG); its 1 questions skipped"),
    ]


@pytest.mark.parametrize(
    ("raw", "line", "code", "reason"),
    [
        ('{\n  "0": {"Image_ID": "1.JPG",}\n}', 2, IssueCode.FILE_SYNTAX_ERROR,
         "invalid JSON: Expecting property name enclosed in double quotes"),
        ('[{"Image_ID": "1.JPG"}]', None, IssueCode.FILE_WRONG_STRUCTURE, 'expected an object keyed "0".."N-1"'),
        (b"\xff\xfe{}", None, IssueCode.FILE_UNREADABLE, "not UTF-8 text (invalid start byte)"),
    ],
)
def test_unreadable_question_file(tmp_path: Path, raw: str | bytes, line: int | None, code: IssueCode,
                                  reason: str) -> None:
    root = make_root(tmp_path / "fn")
    path = root / "Questions" / "Training Question.json"
    path.write_bytes(raw if isinstance(raw, bytes) else raw.encode())
    items = list(FloodNetVQA(root))
    assert items[0] == Issue(kind="skip", code=code, file="Questions/Training Question.json", line=line, reason=reason)
    assert [s.split for s in items if isinstance(s, Sample)] == ["val", "val", "test"]


def test_missing_image_folder_is_one_issue_per_file(tmp_path: Path) -> None:
    root = tmp_path / "fn"
    question_file(root / "Questions" / "Training Question.json", TRAIN)
    assert list(FloodNetVQA(root)) == [Issue(kind="skip", code=IssueCode.IMAGE_FOLDER_MISSING,
                                             file="Questions/Training Question.json",
                                             reason="image folder Images/Train_Image not found; 6 questions skipped")]


def test_unrecognised_roots_raise(tmp_path: Path) -> None:
    (tmp_path / "x" / "Images" / "Train_Image").mkdir(parents=True)
    with pytest.raises(SourceError, match=r"does not look like FloodNet Track 2: expected Questions/Training Question"):
        FloodNetVQA(tmp_path / "x")
    with pytest.raises(SourceError, match="not a folder"):
        FloodNetVQA(tmp_path / "missing")


def test_registry_and_class_attributes() -> None:
    assert get_source("floodnet-vqa") is FloodNetVQA
    assert FloodNetVQA.task_kind == "vqa" and FloodNetVQA.vocabulary == ()


def test_cli_dry_run(tmp_path: Path) -> None:
    _, records, manifest = dry_run("floodnet-vqa", make_root(tmp_path / "fn"), tmp_path / "out", tasks={'caption', 'multi_turn_reasoning', 'detailed_description', 'vqa'})
    assert records and {r["split"] for r in records} <= {"train", "val", "test"}
    assert manifest["counts"]["samples"] == 6
