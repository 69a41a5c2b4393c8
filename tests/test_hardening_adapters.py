"""Issue 11: adapters say what they change; nothing vanishes or is renamed silently."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import split_out, write_image

from rsgpt4v.sources.base import checked_polygon
from rsgpt4v.sources.dota import DOTA
from rsgpt4v.sources.floodnet import FloodNetVQA
from rsgpt4v.sources.rsvqa import RSVQALR


def _dota(root: Path, label: str) -> Path:
    write_image(root / "images" / "P0001.png", (100, 100))
    (root / "labelTxt").mkdir(parents=True, exist_ok=True)
    (root / "labelTxt" / "P0001.txt").write_text(label)
    return root


@pytest.mark.parametrize("coordinate", ["1e308", "-1e308", "1e12"])
def test_huge_coordinates_are_a_named_skip_not_a_nan_that_vanishes(tmp_path: Path, coordinate: str) -> None:
    root = _dota(tmp_path, f"10 10 {coordinate} 10 {coordinate} 50 10 50 ship 0\n20 20 40 20 40 40 20 40 car 0\n")
    samples, issues = split_out(list(DOTA(root)))
    assert [o.category for o in samples[0].objects] == ["car"]
    assert [(i.kind, i.file, i.line) for i in issues if i.kind == "skip"] == [("skip", "labelTxt/P0001.txt", 1)]
    assert any("coordinate out of range" in i.reason for i in issues)


def test_checked_polygon_refuses_what_clipping_would_turn_into_nan() -> None:
    assert "out of range" in checked_polygon(((0.0, 0.0), (1e308, 0.0), (1e308, 1e308), (0.0, 1e308)))
    assert isinstance(checked_polygon(((0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0))), tuple)


def test_a_label_file_header_does_not_rename_the_file(tmp_path: Path) -> None:
    root = _dota(tmp_path, "label_file:../../elsewhere.txt\ngsd:0.5\n10 10 50 10 50 50 10 50 ship 0\n1 2 3\n")
    samples, issues = split_out(list(DOTA(root)))
    assert samples[0].provenance["label_file"] == "labelTxt/P0001.txt"
    assert {i.file for i in issues} == {"labelTxt/P0001.txt"}


def test_a_link_out_of_the_root_is_noted_once(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    for name in ("P0001.png", "P0002.png"):
        write_image(elsewhere / name, (100, 100))
    root = tmp_path / "root"
    (root / "images").mkdir(parents=True)
    (root / "labelTxt").mkdir()
    for stem in ("P0001", "P0002"):
        (root / "images" / f"{stem}.png").symlink_to(elsewhere / f"{stem}.png")
        (root / "labelTxt" / f"{stem}.txt").write_text("10 10 50 10 50 50 10 50 ship 0\n")
    samples, issues = split_out(list(DOTA(root)))
    assert len(samples) == 2
    notes = [i for i in issues if "outside --root" in i.reason]
    assert [(n.kind, n.file) for n in notes] == [("warning", "images/P0001.png")]
    assert str((elsewhere / "P0001.png").resolve()) in notes[0].reason


def test_floodnet_nan_answer_is_not_the_text_nan(tmp_path: Path) -> None:
    write_image(tmp_path / "Images" / "Train_Image" / "1.jpg")
    (tmp_path / "Questions").mkdir()
    (tmp_path / "Questions" / "Training Question.json").write_text(
        '{"0": {"Image_ID": "1.jpg", "Question": "How many buildings?", "Ground_Truth": NaN,'
        ' "Question_Type": "Simple_Counting"},'
        ' "1": {"Image_ID": "1.jpg", "Question": "Is it flooded?", "Ground_Truth": "Yes",'
        ' "Question_Type": "Yes_No"}}')
    samples, issues = split_out(list(FloodNetVQA(tmp_path)))
    assert [qa.answer for s in samples for qa in s.qa] == ["Yes"]
    assert any("no usable Ground_Truth (nan)" in i.reason for i in issues)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_rsvqa_non_finite_answer_is_skipped(tmp_path: Path, literal: str) -> None:
    write_image(tmp_path / "Images_LR" / "0.tif")
    (tmp_path / "LR_split_train_images.json").write_text(json.dumps(
        {"images": [{"id": 0, "questions_ids": [0, 1], "active": True}]}))
    (tmp_path / "LR_split_train_questions.json").write_text(json.dumps({"questions": [
        {"id": 0, "img_id": 0, "type": "count", "question": "How many roads?", "answers_ids": [0], "active": True},
        {"id": 1, "img_id": 0, "type": "presence", "question": "Is there water?", "answers_ids": [1], "active": True},
    ]}))
    (tmp_path / "LR_split_train_answers.json").write_text(
        '{"answers": [{"id": 0, "question_id": 0, "answer": ' + literal + ', "active": true},'
        ' {"id": 1, "question_id": 1, "answer": "yes", "active": true}]}')
    samples, issues = split_out(list(RSVQALR(tmp_path)))
    assert [qa.answer for s in samples for qa in s.qa] == ["yes"]
    assert any("has no usable answer" in i.reason for i in issues)


def test_an_image_name_too_long_for_the_file_system_is_not_found_not_a_crash(tmp_path: Path) -> None:
    from rsgpt4v.sources.base import find_image

    write_image(tmp_path / "a.png")
    assert find_image(tmp_path, "x" * 5000 + ".png") is None
    assert find_image(tmp_path, "bad\x00name.png") is None
    assert find_image(tmp_path, "a.png") == tmp_path / "a.png"


def test_captions_and_coco_note_links_out_of_the_root(tmp_path: Path) -> None:
    from test_captions import make_rsicd
    from test_coco import make_coco

    from rsgpt4v.sources.captions import RSICD
    from rsgpt4v.sources.coco import COCO

    for make, adapter, name in ((make_rsicd, RSICD, "rsicd"), (make_coco, COCO, "coco")):
        root = make(tmp_path / name)
        image = next(p for p in sorted(root.rglob("*")) if p.suffix in (".jpg", ".png", ".tif"))
        elsewhere = tmp_path / f"{name}-elsewhere{image.suffix}"
        image.rename(elsewhere)
        image.symlink_to(elsewhere)
        _, issues = split_out(list(adapter(root)))
        notes = [i for i in issues if "outside --root" in i.reason]
        assert len(notes) == 1 and str(elsewhere.resolve()) in notes[0].reason, [str(i) for i in issues]


def test_an_xml_declaration_with_an_unknown_encoding_is_a_named_skip() -> None:
    from rsgpt4v.sources.base import parse_xml

    root, issue = parse_xml(b'<?xml version="1.0" encoding="U999"?><annotation/>', "Annotations/1.xml")
    assert root is None and (issue.file, issue.line, issue.reason) == ("Annotations/1.xml", 1,
                                                                      "invalid XML: unknown encoding: U999")
