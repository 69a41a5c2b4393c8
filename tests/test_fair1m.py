"""The FAIR1M adapter on synthetic files in FAIR1M's native labelXmls layout."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import dry_run, split_out, write_image

from rsgpt4v.core.schema import Sample
from rsgpt4v.sources import get_source
from rsgpt4v.sources.base import SourceError
from rsgpt4v.sources.fair1m import FAIR1M, FAIR1M_CLASSES

SQUARE = ["10.000000,10.000000", "30.000000,10.000000", "30.000000,20.000000", "10.000000,20.000000",
          "10.000000,10.000000"]


def fair_object(name: str, points: list[str], coordinate: str = "pixel") -> str:
    pts = "".join(f"\t\t\t\t<point>{p}</point>\n" for p in points)
    return (f"\t\t<object>\n\t\t\t<coordinate>{coordinate}</coordinate>\n\t\t\t<type>rectangle</type>\n"
            f"\t\t\t<description>None</description>\n\t\t\t<possibleresult>\n\t\t\t\t<name>{name}</name>\n"
            f"\t\t\t</possibleresult>\n\t\t\t<points>\n{pts}\t\t\t</points>\n\t\t</object>\n")


def write_label(path: Path, objects: list[str], origin: str | None = "GF2/GF3") -> Path:
    """A FAIR1M label file in the shape of the real ones (tab-indented, <source> then <objects>)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    source = f"\t\t<filename>{path.stem}.tif</filename>\n" + (f"\t\t<origin>{origin}</origin>\n" if origin else "")
    path.write_text('<?xml version="1.0" encoding="utf-8"?>\n<annotation>\n\t<source>\n' + source + "\t</source>\n"
                    "\t<research>\n\t\t<version>1.0</version>\n\t\t<pluginname>FAIR1M</pluginname>\n\t</research>\n"
                    "\t<size>\n\t\t<width>1000</width>\n\t\t<height>1000</height>\n\t\t<depth>3</depth>\n\t</size>\n"
                    "\t<objects>\n" + "".join(objects) + "\t</objects>\n</annotation>", encoding="utf-8")
    return path


def make_fair1m(root: Path) -> Path:
    """train/part1 (labelXml/, as torchgeo unpacks it), train/part2 (labelXmls/), validation/, test/."""
    write_label(root / "train" / "part1" / "labelXml" / "0.xml", [
        fair_object("Small Car", SQUARE),
        fair_object("Boeing737", ["0,0", "4, 0", "4,4", "0,4"]),  # no closing point, a space after a comma
    ])
    write_image(root / "train" / "part1" / "images" / "0.tif")
    write_label(root / "train" / "part2" / "labelXmls" / "0.xml", [fair_object("other-ship", SQUARE)], origin=None)
    write_image(root / "train" / "part2" / "images" / "0.tif")
    write_label(root / "validation" / "labelXmls" / "1.xml", [fair_object("Dump Truck", SQUARE)])
    write_image(root / "validation" / "images" / "1.tif")
    write_image(root / "test" / "images" / "2.tif")
    return root


def test_layout_parts_splits_and_objects(tmp_path: Path) -> None:
    root = make_fair1m(tmp_path / "FAIR1M")
    samples, issues = split_out(list(FAIR1M(root)))
    assert issues == []
    assert [(s.split, s.image_id, s.rel_image, s.annotated) for s in samples] == [
        ("train", "part1_0", "train/part1/images/0.tif", True),
        ("train", "part2_0", "train/part2/images/0.tif", True),
        ("val", "1", "validation/images/1.tif", True),
        ("test", "2", "test/images/2.tif", False),
    ]
    car, plane = samples[0].objects
    assert (car.category, plane.category) == ("small car", "boeing737")
    assert car.polygon == ((10.0, 10.0), (30.0, 10.0), (30.0, 20.0), (10.0, 20.0))  # closing duplicate dropped
    assert car.box == (10.0, 10.0, 30.0, 20.0) and car.line is None and car.difficult == 0
    assert plane.polygon == ((0.0, 0.0), (4.0, 0.0), (4.0, 4.0), (0.0, 4.0))
    assert samples[0].provenance == {"label_file": "train/part1/labelXml/0.xml", "origin": "GF2/GF3"}
    assert samples[1].provenance == {"label_file": "train/part2/labelXmls/0.xml"}
    assert samples[1].objects[0].category == "other-ship"
    assert samples[2].objects[0].category == "dump truck"
    assert samples[3].objects == () and samples[3].provenance == {}
    assert all(s.gsd is None and s.source == "fair1m" and s.image_path.is_absolute() for s in samples)


def test_bad_input_becomes_issues(tmp_path: Path) -> None:
    root = tmp_path / "FAIR1M" / "train" / "part1"
    write_label(root / "labelXmls" / "3.xml", [
        fair_object("Bus", ["1,1", "9,1", "9,9", "1,9", "1,1"]),
        fair_object("Bus", SQUARE, coordinate="geodegree"),
        fair_object("Bus", ["1,1", "9;1", "9,9", "1,9"]),
        fair_object("Bus", ["1,1", "nan,1", "9,9", "1,9"]),
        fair_object("Bus", ["1,1", "9,9", "1,1"]),
        fair_object("Bus", ["1,1", "9,1", "9,1.05", "1,1.05", "1,1"]),
        fair_object("", SQUARE),
        fair_object("Hovercraft", SQUARE),
        fair_object("hovercraft", SQUARE),
    ])
    write_image(root / "images" / "3.tif")
    write_label(root / "labelXmls" / "4.xml", [fair_object("Van", SQUARE)])            # no image
    write_image(root / "images" / "5.tif")                                             # no label
    (root / "labelXmls" / "6.xml").write_text("<annotation><objects><object></objects></annotation>")
    write_image(root / "images" / "6.tif")
    write_image(root / "images" / "._7.tif")                                           # macOS junk, ignored
    items = list(FAIR1M(tmp_path / "FAIR1M"))
    summary = [(i.split, i.image_id, len(i.objects)) if isinstance(i, Sample) else (i.kind, i.file, i.line, i.reason)
               for i in items]
    xml3 = "train/part1/labelXmls/3.xml"
    assert summary == [
        ("skip", xml3, None, "object 1 (Bus): coordinates are 'geodegree', not pixels"),
        ("skip", xml3, None, "object 2 (Bus): malformed point '9;1': expected 'x,y'"),
        ("skip", xml3, None, "object 3 (Bus): malformed point 'nan,1': not finite"),
        ("skip", xml3, None, "object 4 (Bus): 2 distinct points; a polygon needs at least 3"),
        ("skip", xml3, None, "object 5 (Bus): degenerate box (area 0.4 px^2 < 1)"),
        ("skip", xml3, None, "object 6: no <possibleresult><name>"),
        ("warning", xml3, None, "unknown category 'hovercraft' (first seen here); kept"),
        ("train", "3", 3),
        ("skip", "train/part1/labelXmls/4.xml", None, "no image for label file (looked for train/part1/images/4.tif)"),
        ("skip", "train/part1/images/5.tif", None, "no label file for image (looked for train/part1/labelXmls/5.xml)"),
        ("skip", "train/part1/labelXmls/6.xml", 1, "invalid XML: mismatched tag"),
    ]
    sample = next(i for i in items if isinstance(i, Sample))
    assert [o.category for o in sample.objects] == ["bus", "hovercraft", "hovercraft"]


def test_unreadable_label_file_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "train"
    write_label(root / "labelXmls" / "1.xml", [fair_object("Van", SQUARE)])
    write_image(root / "images" / "1.tif")

    def denied(self: Path) -> bytes:  # chmod 000 does not stop root, so fake what the OS would say
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    (issue,) = list(FAIR1M(root))
    assert (issue.kind, issue.file, issue.reason) == ("skip", "labelXmls/1.xml", "cannot read file (Permission denied)")


def test_single_part_root_is_named_after_its_folder(tmp_path: Path) -> None:
    for folder, split in (("validation", "val"), ("test", "test"), ("part1", "train")):
        root = tmp_path / folder
        write_label(root / "labelXmls" / "1.xml", [fair_object("Tractor", SQUARE)])
        write_image(root / "images" / "1.tif")
        (sample,) = list(FAIR1M(root))
        assert (sample.split, sample.image_id, sample.rel_image) == (split, "1", "images/1.tif")


def test_numeric_order_split_image_folders_and_tif_preferred(tmp_path: Path) -> None:
    root = tmp_path / "train"
    for stem in ("10", "2", "1"):
        write_label(root / "labelXmls" / f"{stem}.xml", [fair_object("Van", SQUARE)])
    write_image(root / "images-1" / "1.tif")
    write_image(root / "images-1" / "1.png")
    write_image(root / "images-2" / "2.tif")
    write_image(root / "images-2" / "10.tif")
    assert [(s.image_id, s.rel_image) for s in FAIR1M(root)] == [
        ("1", "images-1/1.tif"), ("2", "images-2/2.tif"), ("10", "images-2/10.tif")]


def test_split_argument_and_errors(tmp_path: Path) -> None:
    root = make_fair1m(tmp_path / "FAIR1M")
    assert [s.image_id for s in FAIR1M(root, split="val")] == ["1"]
    with pytest.raises(SourceError, match=r"no split 'validation' .*found: train, val, test"):
        FAIR1M(root, split="validation")
    (tmp_path / "empty" / "notes").mkdir(parents=True)
    with pytest.raises(SourceError, match="does not look like FAIR1M: expected train/part1/images/"):
        FAIR1M(tmp_path / "empty")


def test_iteration_is_repeatable(tmp_path: Path) -> None:
    ds = FAIR1M(make_fair1m(tmp_path / "FAIR1M"))
    assert list(ds) == list(ds)


def test_registry_and_vocabulary() -> None:
    assert get_source("fair1m") is FAIR1M and FAIR1M.task_kind == "detection"
    assert len(FAIR1M_CLASSES) == len(set(FAIR1M_CLASSES)) == 37 and FAIR1M.vocabulary == FAIR1M_CLASSES
    assert {"small car", "boeing737", "a220", "other-airplane", "liquid cargo ship", "truck tractor"} <= set(
        FAIR1M_CLASSES)


def test_cli_dry_run(tmp_path: Path) -> None:
    _, records, manifest = dry_run("fair1m", make_fair1m(tmp_path / "FAIR1M"), tmp_path / "out", tasks={'presence', 'detection', 'region_description', 'multi_turn_reasoning', 'caption', 'counting', 'detailed_description'})
    assert records and {r["split"] for r in records} <= {"train", "val", "test"}
    assert manifest["counts"]["samples"] == 4
