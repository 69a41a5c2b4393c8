"""Issue 11: adapters say what they change; nothing vanishes or is renamed silently."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import dry_run, split_out, write_image

from rsgpt4v.core.issue_codes import IssueCode
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
    assert checked_polygon(((0.0, 0.0), (1e308, 0.0), (1e308, 1e308), (0.0, 1e308))).code == IssueCode.BAD_COORDINATES
    assert isinstance(checked_polygon(((0.0, 0.0), (10.0, 0.0), (10.0, 10.0), (0.0, 10.0))), tuple)


def test_a_label_file_header_does_not_rename_the_file(tmp_path: Path) -> None:
    root = _dota(tmp_path, "label_file:../../elsewhere.txt\ngsd:0.5\n10 10 50 10 50 50 10 50 ship 0\n1 2 3\n")
    samples, issues = split_out(list(DOTA(root)))
    assert samples[0].provenance["label_file"] == "labelTxt/P0001.txt"
    assert {i.file for i in issues} == {"labelTxt/P0001.txt"}


def _link_notes(manifest: dict) -> list[dict]:
    return [i for i in manifest["issues"]["list"] if "outside --root" in i["reason"]]


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
    _, _, manifest = dry_run("dota", root, tmp_path / "out")
    assert manifest["counts"]["samples"] == 2
    notes = _link_notes(manifest)
    assert [(n["kind"], n["file"]) for n in notes] == [("warning", "images/P0001.png")]
    assert str((elsewhere / "P0001.png").resolve()) in notes[0]["reason"]


def test_every_adapter_notes_links_out_of_the_root(tmp_path: Path) -> None:
    """The note is made where every adapter's samples pass, so no adapter follows a link silently."""
    from test_captions import make_rsicd
    from test_coco import make_coco

    for make, name in ((make_rsicd, "rsicd"), (make_coco, "coco")):
        root = make(tmp_path / name)
        image = next(p for p in sorted(root.rglob("*")) if p.suffix in (".jpg", ".png", ".tif"))
        elsewhere = tmp_path / f"{name}-elsewhere{image.suffix}"
        image.rename(elsewhere)
        image.symlink_to(elsewhere)
        _, _, manifest = dry_run(name, root, tmp_path / f"{name}-out")
        notes = _link_notes(manifest)
        assert len(notes) == 1 and str(elsewhere.resolve()) in notes[0]["reason"], name


def test_an_xml_declaration_with_an_unknown_encoding_is_a_named_skip() -> None:
    from rsgpt4v.sources.base import parse_xml

    root, issue = parse_xml(b'<?xml version="1.0" encoding="U999"?><annotation/>', "Annotations/1.xml")
    assert root is None and (issue.file, issue.line, issue.reason) == ("Annotations/1.xml", 1,
                                                                      "invalid XML: unknown encoding: U999")
