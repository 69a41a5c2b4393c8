"""The DIOR and DIOR-RSVG adapters on synthetic files in their native VOC XML layouts, and the real
DIOR-RSVG split files."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import dry_run, split_out, write_image

from rsgpt4v.core.issue_codes import IssueCode
from rsgpt4v.core.schema import Issue, Sample
from rsgpt4v.sources import get_source
from rsgpt4v.sources.base import SourceError
from rsgpt4v.sources.dior import DIOR, DIOR_CLASSES, DIORRSVG, read_split_file

HBB = "Annotations/Horizontal Bounding Boxes"
OBB = "Annotations/Oriented Bounding Boxes"


def write_text(path: Path, text: str, eol: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.replace("\n", eol).encode("utf-8"))
    return path


def hbb_object(name: str, box: tuple[object, object, object, object], description: str | None = None) -> str:
    xmin, ymin, xmax, ymax = box
    extra = f"\n    <description>{description}</description>" if description is not None else ""
    return (f"  <object>\n    <name>{name}</name>\n    <pose>Unspecified</pose>\n    <bndbox>\n"
            f"      <xmin>{xmin}</xmin>\n      <ymin>{ymin}</ymin>\n      <xmax>{xmax}</xmax>\n"
            f"      <ymax>{ymax}</ymax>\n    </bndbox>{extra}\n  </object>\n")


def obb_object(name: str, corners: list[tuple[int, int]], difficult: int = 0, truncated: int = 0) -> str:
    tags = "".join(f"<x_{c}>{x}</x_{c}><y_{c}>{y}</y_{c}>"
                   for c, (x, y) in zip(("left_top", "right_top", "right_bottom", "left_bottom"), corners))
    return (f"  <object>\n    <type>robndbox</type>\n    <name>{name}</name>\n    <truncated>{truncated}</truncated>\n"
            f"    <difficult>{difficult}</difficult>\n    <robndbox>{tags}</robndbox>\n"
            "    <angle>0.52</angle>\n  </object>\n")


def voc(filename: str, objects: list[str]) -> str:
    """A DIOR annotation file as the dataset writes it (the DIOR-RSVG copy of 00001.xml, verbatim shape)."""
    return ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<annotation>\n'
            f"  <filename>{filename}</filename>\n  <source>\n    <database>DIOR</database>\n  </source>\n"
            "  <size>\n    <width>800</width>\n    <height>800</height>\n    <depth>3</depth>\n  </size>\n"
            "  <segmented>0</segmented>\n" + "".join(objects) + "</annotation>")


# ---- DIOR ----------------------------------------------------------------------------------------

def make_dior(root: Path) -> Path:
    """train 00001 + 00002, val 00003, test 11726; CRLF split files as in the download."""
    write_text(root / HBB / "00001.xml", voc("00001.jpg", [
        hbb_object("golffield", (133, 237, 684, 672)),
        hbb_object("Expressway-Service-area", (10, 20, 50, 80)),
    ]))
    write_text(root / HBB / "00002.xml", voc("00002.jpg", [hbb_object("vehicle", (1, 2, 5, 6))]))
    write_text(root / HBB / "00003.xml", voc("00003.jpg", []))
    write_text(root / HBB / "11726.xml", voc("11726.jpg", [hbb_object("windmill", (3.5, 4, 7, 7.5))]))
    for image_id in ("00001", "00002", "00003"):
        write_image(root / "JPEGImages-trainval" / f"{image_id}.jpg")
    write_image(root / "JPEGImages-test" / "11726.jpg")
    write_text(root / "ImageSets" / "Main" / "train.txt", "00001\n00002\n", eol="\r\n")
    write_text(root / "ImageSets" / "Main" / "val.txt", "00003\n", eol="\r\n")
    write_text(root / "ImageSets" / "Main" / "test.txt", "11726\n", eol="\r\n")
    return root


def test_dior_layout_splits_and_boxes(tmp_path: Path) -> None:
    root = make_dior(tmp_path / "DIOR")
    items = list(DIOR(root))
    samples, issues = split_out(items)
    assert issues == []
    assert [(s.split, s.image_id, s.rel_image) for s in samples] == [
        ("train", "00001", "JPEGImages-trainval/00001.jpg"),
        ("train", "00002", "JPEGImages-trainval/00002.jpg"),
        ("val", "00003", "JPEGImages-trainval/00003.jpg"),
        ("test", "11726", "JPEGImages-test/11726.jpg"),
    ]
    first = samples[0]
    assert first.source == "dior" and first.gsd is None and first.annotated
    assert first.image_path == (root / "JPEGImages-trainval" / "00001.jpg").resolve()
    assert first.provenance == {"label_file": f"{HBB}/00001.xml", "split_file": "ImageSets/Main/train.txt"}
    golf, esa = first.objects
    assert (golf.category, esa.category) == ("golffield", "expressway-service-area")
    assert golf.polygon == ((133.0, 237.0), (684.0, 237.0), (684.0, 672.0), (133.0, 672.0))
    assert golf.box == (133.0, 237.0, 684.0, 672.0)
    assert (golf.difficult, golf.truncated, golf.line, golf.description) == (0, False, None, None)
    assert samples[2].objects == ()
    assert samples[3].objects[0].box == (3.5, 4.0, 7.0, 7.5)


def test_dior_bad_input_becomes_issues(tmp_path: Path) -> None:
    root = make_dior(tmp_path / "DIOR")
    write_text(root / "ImageSets" / "Main" / "train.txt",
               "00001\n00001\n../00002\n00404\n00005\n00006\n00007\n\n00002 1\n", eol="\r\n")
    write_text(root / HBB / "00005.xml", voc("00005.jpg", [hbb_object("ship", (1, 1, 4, 4))]))  # no image
    write_text(root / HBB / "00006.xml", voc("00006.jpg", [hbb_object("ship", (1, 1, 4, 4))])[:-5])
    write_image(root / "JPEGImages-trainval" / "00006.jpg")
    write_text(root / HBB / "00007.xml", voc("00007.jpg", [
        hbb_object("ship", (10, 10, 10, 40)),       # zero width
        hbb_object("ship", (50, 10, 20, 40)),       # xmax < xmin
        hbb_object("ship", (1, 1, "x", 4)),
        hbb_object("", (1, 1, 4, 4)),
        hbb_object("spaceship", (1, 1, 4, 4)),
        hbb_object("Ship", (1, 1, 4, 4)),
        hbb_object("SPACESHIP", (2, 2, 4, 4)),
    ]).replace("<ymax>4</ymax>", "", 1))            # the 'x' object's ymax goes missing too
    write_image(root / "JPEGImages-trainval" / "00007.jpg")
    items = list(DIOR(root, split="train"))
    summary = [(i.split, i.image_id) if isinstance(i, Sample) else (i.kind, i.file, i.line, i.reason) for i in items]
    train = "ImageSets/Main/train.txt"
    xml7 = f"{HBB}/00007.xml"
    assert summary == [
        ("train", "00001"),
        ("skip", train, 2, "duplicate image id '00001' (first at line 1)"),
        ("skip", train, 3, "malformed image id '../00002'"),
        ("skip", train, 4, f"no annotation file for id '00404' (looked for {HBB}/00404.xml)"),
        ("skip", train, 5, "no image for id '00005' (looked for JPEGImages-trainval/00005.jpg, "
                           "JPEGImages-test/00005.jpg, JPEGImages/00005.jpg)"),
        ("skip", f"{HBB}/00006.xml", 23, "invalid XML: unclosed token"),  # "</anno" on the last line
        ("skip", xml7, None, "object 0 (ship): degenerate box (xmin 10, ymin 10, xmax 10, ymax 40)"),
        ("skip", xml7, None, "object 1 (ship): degenerate box (xmin 50, ymin 10, xmax 20, ymax 40)"),
        ("skip", xml7, None, "object 2 (ship): <xmax> 'x' is not a number"),
        ("skip", xml7, None, "object 3: no <name>"),
        ("warning", xml7, None, "unknown category 'spaceship' (first seen here); kept"),
        ("train", "00007"),
        ("skip", train, 9, "malformed image id '00002 1'"),
    ]
    assert [i.code for i in items if isinstance(i, Issue)] == [
        IssueCode.DUPLICATE_ID, IssueCode.MALFORMED_ENTRY, IssueCode.ANNOTATION_MISSING, IssueCode.IMAGE_MISSING,
        IssueCode.FILE_SYNTAX_ERROR, IssueCode.DEGENERATE_BOX, IssueCode.DEGENERATE_BOX, IssueCode.MALFORMED_ENTRY,
        IssueCode.MALFORMED_ENTRY, IssueCode.UNKNOWN_CATEGORY, IssueCode.MALFORMED_ENTRY]
    kept = [s for s in items if isinstance(s, Sample)][-1]
    assert [o.category for o in kept.objects] == ["spaceship", "ship", "spaceship"]


def test_dior_obb_option_reads_dior_r_corners(tmp_path: Path) -> None:
    root = make_dior(tmp_path / "DIOR")
    write_text(root / OBB / "00001.xml", voc("00001.jpg", [
        obb_object("golffield", [(133, 237), (684, 237), (684, 672), (133, 672)]),
        obb_object("Expressway-toll-station", [(100, 0), (200, 100), (100, 200), (0, 100)], difficult=1, truncated=1),
        obb_object("ship", [(5, 5), (5, 5), (5, 5), (5, 5)]),
    ]))
    samples, issues = split_out(list(DIOR(root, split="train", obb=True)))
    assert [(i.file, i.reason) for i in issues] == [
        (f"{OBB}/00001.xml", "object 2 (ship): degenerate box (area 0 px^2 < 1)"),
        ("ImageSets/Main/train.txt", f"no annotation file for id '00002' (looked for {OBB}/00002.xml)"),
    ]
    (sample,) = samples
    golf, toll = sample.objects
    assert golf.polygon == ((133.0, 237.0), (684.0, 237.0), (684.0, 672.0), (133.0, 672.0))
    assert toll.category == "expressway-toll-station"
    assert toll.polygon == ((100.0, 0.0), (200.0, 100.0), (100.0, 200.0), (0.0, 100.0))
    assert toll.box == (0.0, 0.0, 200.0, 200.0) and toll.difficult == 1 and toll.truncated
    assert sample.provenance["label_file"] == f"{OBB}/00001.xml"
    with pytest.raises(SourceError, match="Oriented Bounding Boxes"):
        DIOR(make_dior(tmp_path / "hbb_only"), obb=True)


@pytest.mark.parametrize("folder, obb", [("Annotations/HBB", False), ("Annotations/OBB", True), ("Annotations", False)])
def test_dior_repackaged_annotation_folders(tmp_path: Path, folder: str, obb: bool) -> None:
    root = tmp_path / "DIOR"
    obj = obb_object("dam", [(1, 1), (9, 1), (9, 9), (1, 9)]) if obb else hbb_object("dam", (1, 1, 9, 9))
    write_text(root / folder / "00001.xml", voc("00001.jpg", [obj]))
    write_image(root / "JPEGImages" / "00001.jpg")  # a copy with the two image folders merged
    write_text(root / "ImageSets" / "Main" / "test.txt", "00001\n")
    (sample,) = list(DIOR(root, obb=obb))
    assert (sample.split, sample.rel_image, sample.provenance["label_file"]) == (
        "test", "JPEGImages/00001.jpg", f"{folder}/00001.xml")
    assert sample.objects[0].box == (1.0, 1.0, 9.0, 9.0)


def test_dior_split_files_and_errors(tmp_path: Path) -> None:
    root = make_dior(tmp_path / "DIOR")
    write_text(root / "ImageSets" / "Main" / "trainval.txt", "00001\n00002\n00003\n")
    write_text(root / "ImageSets" / "Main" / "airplane_train.txt", "00001  1\n")  # VOC per-class list
    assert [s.split for s in DIOR(root)] == ["train", "train", "val", "test"]  # trainval = train + val
    assert [s.image_id for s in DIOR(root, split="trainval")] == ["00001", "00002", "00003"]
    with pytest.raises(SourceError, match=r"no split 'airplane_train' .*found: train, val, test, trainval"):
        DIOR(root, split="airplane_train")
    (root / "ImageSets" / "Main" / "val.txt").unlink()
    assert [s.split for s in DIOR(root)] == ["train", "train", "test", "trainval", "trainval", "trainval"]
    for f in (root / "ImageSets" / "Main").iterdir():
        f.unlink()
    with pytest.raises(SourceError, match="expected ImageSets/Main/train.txt"):
        DIOR(root)
    (tmp_path / "other" / "Annotations").mkdir(parents=True)
    with pytest.raises(SourceError, match="does not look like DIOR"):
        DIOR(tmp_path / "other")


def test_dior_iteration_is_repeatable(tmp_path: Path) -> None:
    ds = DIOR(make_dior(tmp_path / "DIOR"))
    assert list(ds) == list(ds)


def test_dior_registry_and_vocabulary() -> None:
    assert get_source("dior") is DIOR and get_source("dior-rsvg") is DIORRSVG
    assert DIOR.task_kind == "detection" and DIORRSVG.task_kind == "grounding"
    assert (DIOR.tiled, DIOR.exhaustive_labels, DIOR.label_tasks) == (True, True, {"detection", "counting", "presence"})
    assert (DIORRSVG.tiled, DIORRSVG.exhaustive_labels, DIORRSVG.label_tasks) == (False, False, frozenset())
    assert DIOR.vocabulary == DIORRSVG.vocabulary == DIOR_CLASSES and len(DIOR_CLASSES) == 20
    assert "expressway-service-area" in DIOR_CLASSES and all(c == c.lower() for c in DIOR_CLASSES)


def test_dior_cli_dry_run(tmp_path: Path) -> None:
    _, records, manifest = dry_run("dior", make_dior(tmp_path / "DIOR"), tmp_path / "out", tasks={'presence', 'detection', 'region_description', 'multi_turn_reasoning', 'caption', 'counting', 'detailed_description'})
    assert records and {r["split"] for r in records} <= {"train", "val", "test"}
    assert manifest["counts"]["samples"] == 4


# ---- DIOR-RSVG -----------------------------------------------------------------------------------

def make_rsvg(root: Path, split_folder: str = "") -> Path:
    """Objects 0 | 1 2 3 | 4 5 over 00001, 00003, 00010; written out of name order on purpose."""
    ann = root / "Annotations"
    write_text(ann / "00010.xml", voc("00010.jpg", [
        hbb_object("vehicle", (10, 10, 20, 30), "The vehicle on the left"),
        hbb_object("Expressway-Service-area", (0, 0, 8, 8), "  An expressway service area\n   in the middle "),
    ]))
    write_text(ann / "00001.xml", voc("00001.jpg", [
        hbb_object("golffield", (133, 237, 684, 672), "A green and brown golf field")]))
    write_text(ann / "00003.xml", voc("00003.jpg", [
        hbb_object("ship", (1, 1, 5, 5), "The ship at the top"),
        hbb_object("ship", (2, 2, 6, 6), "The ship below the first one"),
        hbb_object("harbor", (0, 0, 7, 7), "The harbor"),
    ]))
    for stem in ("00001", "00003", "00010"):
        write_image(root / "JPEGImages" / f"{stem}.jpg")
    splits = root / split_folder
    write_text(splits / "train.txt", "0\n2\n3\n5\n")
    write_text(splits / "val.txt", "1\n4\n")
    write_text(splits / "test.txt", "4\n")
    return root


def test_rsvg_global_indices_group_per_split_and_image(tmp_path: Path) -> None:
    root = make_rsvg(tmp_path / "DIOR_RSVG")
    samples, issues = split_out(list(DIORRSVG(root)))
    assert issues == []
    summary = [(s.split, s.image_id, [o.description for o in s.objects], s.provenance["object_indices"])
               for s in samples]
    assert summary == [
        ("train", "00001", ["A green and brown golf field"], "0"),
        ("train", "00003", ["The ship below the first one", "The harbor"], "2,3"),
        ("train", "00010", ["An expressway service area in the middle"], "5"),
        ("val", "00003", ["The ship at the top"], "1"),
        ("val", "00010", ["The vehicle on the left"], "4"),
        ("test", "00010", ["The vehicle on the left"], "4"),
    ]
    train3 = samples[1]
    assert [o.category for o in train3.objects] == ["ship", "harbor"]
    assert train3.objects[0].box == (2.0, 2.0, 6.0, 6.0)
    assert train3.objects[1].polygon == ((0.0, 0.0), (7.0, 0.0), (7.0, 7.0), (0.0, 7.0))
    assert samples[2].objects[0].category == "expressway-service-area"
    assert train3.rel_image == "JPEGImages/00003.jpg" and train3.image_path.is_absolute()
    assert train3.provenance == {"label_file": "Annotations/00003.xml", "split_file": "train.txt",
                                 "object_indices": "2,3"}
    assert [s.image_id for s in DIORRSVG(root, split="val")] == ["00003", "00010"]


def test_rsvg_split_files_in_dior_rsvg_subfolder(tmp_path: Path) -> None:
    root = make_rsvg(tmp_path / "RSVGD", split_folder="DIOR_RSVG")
    samples = [s for s in DIORRSVG(root) if isinstance(s, Sample)]
    assert len(samples) == 6 and samples[0].provenance["split_file"] == "DIOR_RSVG/train.txt"


def test_rsvg_bad_input_becomes_issues(tmp_path: Path) -> None:
    root = make_rsvg(tmp_path / "DIOR_RSVG")
    ann = root / "Annotations"
    # 00002 sorts between 00001 and 00003: it shifts every later index by its two objects
    broken = voc("00002.jpg", [hbb_object("ship", (1, 1, 5, 5), "a"), hbb_object("ship", (1, 1, 5, 5), "b")])
    write_text(ann / "00002.xml", broken.replace("<pose>", "<pose", 1))
    write_text(ann / "00004.xml", voc("00004.jpg", [
        hbb_object("ship", (1, 1, 1, 5), "A flat ship"),
        hbb_object("dam", (1, 1, 5, 5)),
        hbb_object("dam", (1, 1, 5, 5), "The dam"),
    ]))
    write_image(root / "JPEGImages" / "00004.jpg")
    write_text(ann / "00005.xml", voc("../00005.jpg", [hbb_object("dam", (1, 1, 5, 5), "A dam")]))
    write_text(ann / "00006.xml", voc("00006.jpg", [hbb_object("bridge", (1, 1, 5, 5), "A bridge")]))  # no image
    # indices now: 00001: 0 | 00002: 1 2 | 00003: 3 4 5 | 00004: 6 7 8 | 00005: 9 | 00006: 10 | 00010: 11 12
    write_text(root / "train.txt", "0\n2\n5\nnine\n6\n7\n8\n9\n10\n12\n99\n5\n")
    write_text(root / "val.txt", "3\n11\n")
    (root / "test.txt").unlink()
    items = list(DIORRSVG(root))
    summary = [(i.split, i.image_id, s.provenance["object_indices"]) if isinstance(s := i, Sample)
               else (i.kind, i.file, i.line, i.reason) for i in items]
    assert summary == [
        ("skip", "Annotations/00002.xml", 15,
         "invalid XML: not well-formed (invalid token); its 2 <object> tags are still counted"),
        ("skip", "train.txt", 4, "malformed line: 'nine' is not an object index"),
        ("skip", "train.txt", 12, "duplicate object index 5 (first at line 3)"),
        ("train", "00001", "0"),
        ("skip", "train.txt", 2, "object 2 lies in invalid Annotations/00002.xml"),
        ("train", "00003", "5"),
        ("skip", "train.txt", 5,
         "object 6 (00004.xml, object 0 (ship)): degenerate box (xmin 1, ymin 1, xmax 1, ymax 5)"),
        ("skip", "train.txt", 6, "object 7 (00004.xml, object 1 (dam)): no <description>"),
        ("train", "00004", "8"),
        ("skip", "Annotations/00005.xml", None,
         "no image for annotation (looked for <filename> '../00005.jpg' outside JPEGImages/)"),
        ("skip", "Annotations/00006.xml", None, "no image for annotation (looked for JPEGImages/00006.jpg)"),
        ("train", "00010", "12"),
        ("skip", "train.txt", 11, "object index 99 out of range (Annotations/ holds 13 objects)"),
        ("val", "00003", "3"),
        ("val", "00010", "11"),
    ]
    assert [i.code for i in items if isinstance(i, Issue)] == [
        IssueCode.FILE_SYNTAX_ERROR, IssueCode.MALFORMED_ENTRY, IssueCode.DUPLICATE_ID, IssueCode.BROKEN_REFERENCE,
        IssueCode.DEGENERATE_BOX, IssueCode.EMPTY_TEXT, IssueCode.PATH_OUTSIDE_FOLDER, IssueCode.IMAGE_MISSING,
        IssueCode.BROKEN_REFERENCE]
    samples, _ = split_out(items)
    assert [o.description for o in samples[1].objects] == ["The harbor"]
    assert samples[3].objects[0].description == "An expressway service area in the middle"


def test_rsvg_unreadable_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_rsvg(tmp_path / "DIOR_RSVG")
    (root / "test.txt").write_bytes(b"4\n\xff\xfe\n")
    read_bytes = Path.read_bytes

    def denied(self: Path) -> bytes:  # chmod 000 does not stop root, so fake what the OS would say
        if self.name == "00003.xml":
            raise PermissionError(13, "Permission denied", str(self))
        return read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", denied)
    items = list(DIORRSVG(root))
    summary = [(i.split, i.image_id, s.provenance["object_indices"]) if isinstance(s := i, Sample)
               else (i.kind, i.file, i.line, i.reason) for i in items]
    assert summary == [
        ("skip", "Annotations/00003.xml", None,
         "cannot read file (Permission denied); the object indices of later files may be shifted"),
        ("train", "00001", "0"),
        ("train", "00010", "2"),  # 00003's three objects went uncounted: 00010 now holds 1 and 2
        ("skip", "train.txt", 3, "object index 3 out of range (Annotations/ holds 3 objects)"),
        ("skip", "train.txt", 4, "object index 5 out of range (Annotations/ holds 3 objects)"),
        ("val", "00010", "1"),
        ("skip", "val.txt", 2, "object index 4 out of range (Annotations/ holds 3 objects)"),
        ("skip", "test.txt", None, "unreadable split file: 'utf-8' codec can't decode byte 0xff in position 2: "
                                   "invalid start byte"),
    ]


def test_rsvg_errors_and_registry(tmp_path: Path) -> None:
    root = make_rsvg(tmp_path / "DIOR_RSVG")
    with pytest.raises(SourceError, match=r"no split 'trainval' .*found: train, val, test"):
        DIORRSVG(root, split="trainval")
    for name in ("train", "val", "test"):
        (root / f"{name}.txt").unlink()
    with pytest.raises(SourceError, match="expected train.txt, val.txt, test.txt"):
        DIORRSVG(root)
    (tmp_path / "empty" / "Annotations").mkdir(parents=True)
    with pytest.raises(SourceError, match="does not look like DIOR-RSVG"):
        DIORRSVG(tmp_path / "empty")


def test_rsvg_cli_dry_run(tmp_path: Path) -> None:
    _, records, manifest = dry_run("dior-rsvg", make_rsvg(tmp_path / "DIOR_RSVG"), tmp_path / "out", tasks={'grounding', 'region_description', 'multi_turn_reasoning', 'caption', 'detailed_description'})
    assert records and {r["split"] for r in records} <= {"train", "val", "test"}
    assert manifest["counts"]["samples"] == 6


# ---- the real DIOR-RSVG split files ---------------------------------------------------------------

def test_real_rsvg_split_files_parse_and_partition_the_objects(real_dir: Path) -> None:
    splits = real_dir / "dior_rsvg" / "splits"
    parsed = {name: read_split_file(splits / f"{name}.txt", f"{name}.txt") for name in ("train", "val", "test")}
    assert {name: len(indices) for name, (indices, _) in parsed.items()} == {"train": 26991, "val": 3829, "test": 7500}
    assert all(issues == [] for _, issues in parsed.values())
    train, val, test = (set(indices) for indices, _ in parsed.values())
    assert not (train & val or train & test or val & test)
    assert train | val | test == set(range(38320))  # 0-based: test.txt starts with 0, none reaches 38320
    indices, _ = parsed["test"]
    assert list(indices.items())[:3] == [(0, 1), (1, 2), (6, 3)]  # index -> line


def test_rsvg_file_changed_between_walk_and_sample(tmp_path: Path) -> None:
    """The walk keeps where each selected object is, and its XML is parsed again for the sample:
    a file edited or removed in between is named, never silently dropped."""
    root = make_rsvg(tmp_path / "DIOR_RSVG")
    items = iter(DIORRSVG(root))
    first = next(items)  # the walk is over once the first sample is made
    assert isinstance(first, Sample) and first.image_id == "00001"
    ann = root / "Annotations"
    write_text(ann / "00003.xml", voc("00003.jpg", [hbb_object("ship", (1, 1, 5, 5), "The only ship left")]))
    (ann / "00010.xml").unlink()
    rest = [(i.split, i.image_id, s.provenance["object_indices"]) if isinstance(s := i, Sample)
            else (i.code, i.file, i.line, i.reason) for i in items]
    gone = "(the file changed during the build)"
    assert rest == [
        (IssueCode.BROKEN_REFERENCE, "train.txt", 2, f"object 2 is no longer in Annotations/00003.xml {gone}"),
        (IssueCode.BROKEN_REFERENCE, "train.txt", 3, f"object 3 is no longer in Annotations/00003.xml {gone}"),
        (IssueCode.FILE_UNREADABLE, "Annotations/00010.xml", None, "cannot read file (No such file or directory)"),
        (IssueCode.BROKEN_REFERENCE, "train.txt", 4, f"object 5 is no longer in Annotations/00010.xml {gone}"),
        ("val", "00003", "1"),
        (IssueCode.FILE_UNREADABLE, "Annotations/00010.xml", None, "cannot read file (No such file or directory)"),
        (IssueCode.BROKEN_REFERENCE, "val.txt", 2, f"object 4 is no longer in Annotations/00010.xml {gone}"),
        (IssueCode.FILE_UNREADABLE, "Annotations/00010.xml", None, "cannot read file (No such file or directory)"),
        (IssueCode.BROKEN_REFERENCE, "test.txt", 1, f"object 4 is no longer in Annotations/00010.xml {gone}"),
    ]
