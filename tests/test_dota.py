"""The DOTA adapter on synthetic files in DOTA's native format, on real devkit files, and on the bundled sample."""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
from conftest import dry_run, split_out, write_image
from PIL import Image

from rsgpt4v.core.issue_codes import IssueCode
from rsgpt4v.core.schema import Issue, Sample
from rsgpt4v.imaging.geometry import polygon_area
from rsgpt4v.sources import get_source, sample_root
from rsgpt4v.sources.base import SourceError
from rsgpt4v.sources.dota import DOTA, VOCABULARIES, parse_label_file

HEADER = ["imagesource:GoogleEarth", "gsd:0.146"]
SHIP = "1054.0 1028.0 1063.0 1011.0 1111.0 1040.0 1112.0 1062.0 ship 0"
CAR = "10 20 30 20 30 30 10 30 small-vehicle 1"


def write_label(path: Path, lines: list[str], eol: str = "\r\n", final_eol: bool = True, bom: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = eol.join(lines) + (eol if final_eol else "")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


# ---- parse_label_file ------------------------------------------------------------------------

def test_parse_v15_floats_crlf_headers_and_nine_fields(tmp_path: Path) -> None:
    f = write_label(tmp_path / "P0001.txt", HEADER + [
        SHIP,
        "807.5 331.0 800.0 324.0 817.0 309.0 823.0 316.0 Small-Vehicle 1",
        "",
        "100.0 100.0 140.0 100.0 140.0 120.0 100.0 120.0 container-crane",
        "  5 5 25 5 25 15 5 15 plane 2  ",
    ])
    parsed = parse_label_file(f, "labelTxt/P0001.txt")
    assert parsed.issues == ()
    assert parsed.header == {"imagesource": "GoogleEarth", "gsd": "0.146"}
    assert parsed.gsd == 0.146
    ship, car, crane, plane = parsed.objects
    assert ship.category == "ship"
    assert ship.polygon == ((1054.0, 1028.0), (1063.0, 1011.0), (1111.0, 1040.0), (1112.0, 1062.0))
    assert ship.box == (1054.0, 1011.0, 1112.0, 1062.0)
    assert (ship.difficult, ship.line) == (0, 3)
    assert car.category == "small-vehicle"
    assert car.polygon[0] == (807.5, 331.0)
    assert (car.difficult, car.line) == (1, 4)
    assert (crane.category, crane.difficult, crane.line) == ("container-crane", 0, 6)
    assert (plane.difficult, plane.line, plane.box) == (2, 7, (5.0, 5.0, 25.0, 15.0))


def test_parse_bad_lines_are_skipped_with_their_line_numbers(tmp_path: Path) -> None:
    f = write_label(tmp_path / "P0002.txt", HEADER + [
        SHIP,                                                   # 3 kept
        "1 2 3 4 5 6 7 8",                                      # 4 too few fields
        "1 2 3 4 5 6 7 8 ship 0 extra",                         # 5 too many
        "1 2 3 x 5 6 7 8 ship 0",                               # 6 non-numeric
        "1 2 3 nan 5 6 7 8 ship 0",                             # 7 NaN
        "1 2 3 4 inf 6 7 8 ship 0",                             # 8 inf
        "0 0 10 0 10 10 0 10 ship 0.5",                         # 9 non-integer difficult
        "0 0 10 0 10 10 0 10 ship hard",                        # 10 non-numeric difficult
        "5 5 5 5 5 5 5 5 ship 0",                               # 11 a point
        "0 0 10 10 20 20 30 30 ship 0",                         # 12 collinear
        "0 0 10 0 10 10 0 10 ship 1.0",                         # 13 kept: integral float difficult
    ])
    parsed = parse_label_file(f, "train/labelTxt/P0002.txt")
    assert [o.line for o in parsed.objects] == [3, 13]
    assert parsed.objects[1].difficult == 1
    assert [(i.kind, i.line) for i in parsed.issues] == [("skip", n) for n in range(4, 13)]
    assert {i.file for i in parsed.issues} == {"train/labelTxt/P0002.txt"}
    reasons = [i.reason for i in parsed.issues]
    assert all(r.startswith("malformed object line: ") for r in reasons[:7])
    assert "got 8 fields" in reasons[0] and "got 11 fields" in reasons[1]
    assert "'x'" in reasons[2] and "'nan'" in reasons[3] and "'inf'" in reasons[4]
    assert "difficult '0.5'" in reasons[5] and "difficult 'hard'" in reasons[6]
    assert reasons[7].startswith("degenerate polygon") and reasons[8].startswith("degenerate polygon")
    assert str(parsed.issues[7]).startswith("train/labelTxt/P0002.txt:11: degenerate polygon")


UNKNOWN = "the ground sample distance is unknown; the prompts give sizes in pixels only"


@pytest.mark.parametrize(
    ("line", "gsd", "code", "warning"),
    [
        ("gsd:1", 1.0, None, None),
        ("gsd:0.146", 0.146, None, None),
        ("gsd:null", None, IssueCode.GSD_UNKNOWN, f"gsd 'null': {UNKNOWN}"),
        ("gsd:None", None, IssueCode.GSD_UNKNOWN, f"gsd 'None': {UNKNOWN}"),
        ("gsd:", None, IssueCode.GSD_UNKNOWN, f"gsd '': {UNKNOWN}"),
        ("gsd:1.34e-06", None, IssueCode.BAD_GSD, "gsd 1.34e-06 is not a plausible metres-per-pixel value; ignored"),
        ("gsd:500", None, IssueCode.BAD_GSD, "gsd 500 is not a plausible metres-per-pixel value; ignored"),
        ("gsd:-0.5", None, IssueCode.BAD_GSD, "gsd -0.5 is not a plausible metres-per-pixel value; ignored"),
        ("gsd:0.3m", None, IssueCode.BAD_GSD, "gsd '0.3m' is not a number; ignored"),
    ],
)
def test_parse_gsd_variants(tmp_path: Path, line: str, gsd: float | None, code: IssueCode | None,
                            warning: str | None) -> None:
    f = write_label(tmp_path / "P0003.txt", ["imagesource:GF", line, CAR])
    parsed = parse_label_file(f, "P0003.txt")
    assert parsed.gsd == gsd
    assert parsed.header["gsd"] == line.partition(":")[2]  # kept as written
    assert len(parsed.objects) == 1
    if warning is None:
        assert parsed.issues == ()
    else:
        assert parsed.issues == (Issue(kind="warning", code=code, file="P0003.txt", line=2, reason=warning),)


def test_parse_bom_lf_blank_lines_no_final_newline_and_other_headers(tmp_path: Path) -> None:
    f = write_label(tmp_path / "P0004.txt", ["imagesource:GoogleEarth", "Acquisition Dates:2016-01-01", "gsd:0.5",
                                             "", CAR, "", "", SHIP], eol="\n", final_eol=False, bom=True)
    parsed = parse_label_file(f)
    assert parsed.header == {"imagesource": "GoogleEarth", "acquisition_dates": "2016-01-01", "gsd": "0.5"}
    assert [(o.category, o.line) for o in parsed.objects] == [("small-vehicle", 5), ("ship", 8)]
    assert parsed.issues == ()


def test_parse_latin1_fallback(tmp_path: Path) -> None:
    f = tmp_path / "P0005.txt"
    f.write_bytes("imagesource:Géoportail\r\ngsd:0.5\r\n".encode("latin-1") + CAR.encode() + b"\r\n")
    parsed = parse_label_file(f)
    assert parsed.header["imagesource"] == "Géoportail"
    assert len(parsed.objects) == 1


def test_parse_binary_file_raises(tmp_path: Path) -> None:
    f = tmp_path / "P0006.txt"
    f.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(ValueError, match="not a text file"):
        parse_label_file(f)


# ---- the adapter: layouts, pairing, order ----------------------------------------------------

def make_split_root(root: Path) -> Path:
    """train (labels, a label without image, an image without label), val, test without labels."""
    write_label(root / "train" / "labelTxt" / "P0001.txt", HEADER + [SHIP, "1 1 9 1 9 9 1 9 foo 0", CAR])
    write_image(root / "train" / "images" / "P0001.png")
    write_label(root / "train" / "labelTxt" / "P0002.txt", ["imagesource:GF", "gsd:1", CAR])
    write_label(root / "train" / "labelTxt" / "P0003.txt",
                ["gsd:null", "1 1 9 1 9 9 1 9 Foo 0", "1 1 9 1 9 9 1 9 bar 0"])
    write_image(root / "train" / "images" / "P0003.JPG")
    write_image(root / "train" / "images" / "P0004.png")
    write_label(root / "val" / "labelTxt" / "P0100.txt", ["gsd:1.34e-06", CAR])
    write_image(root / "val" / "images" / "P0100.png")
    write_image(root / "test" / "images" / "P0200.png")
    return root


def test_split_folders_order_pairing_and_issues(tmp_path: Path) -> None:
    root = make_split_root(tmp_path / "DOTA")
    items = list(DOTA(root))
    summary = [
        (i.split, i.image_id, len(i.objects)) if isinstance(i, Sample) else (i.kind, i.file, i.line)
        for i in items
    ]
    assert summary == [
        ("warning", "train/labelTxt/P0001.txt", 4),
        ("train", "P0001", 3),
        ("skip", "train/labelTxt/P0002.txt", None),
        ("warning", "train/labelTxt/P0003.txt", 1),
        ("warning", "train/labelTxt/P0003.txt", 3),
        ("train", "P0003", 2),
        ("skip", "train/images/P0004.png", None),
        ("warning", "val/labelTxt/P0100.txt", 1),
        ("val", "P0100", 1),
        ("test", "P0200", 0),
    ]
    issues = {i.file: i.reason for i in items if isinstance(i, Issue) and i.line is None}
    assert issues["train/labelTxt/P0002.txt"].startswith("no image for label file (looked for train/images/P0002.png")
    assert issues["train/images/P0004.png"] == "no label file for image (looked for train/labelTxt/P0004.txt)"
    warnings = [(i.file, i.line, i.reason) for i in items if isinstance(i, Issue) and i.kind == "warning"]
    # 'foo' is reported once, at its first occurrence, though it recurs (as 'Foo') in P0003
    assert warnings == [
        ("train/labelTxt/P0001.txt", 4, "unknown category 'foo' (first seen here); kept"),
        ("train/labelTxt/P0003.txt", 1, f"gsd 'null': {UNKNOWN}"),
        ("train/labelTxt/P0003.txt", 3, "unknown category 'bar' (first seen here); kept"),
        ("val/labelTxt/P0100.txt", 1, "gsd 1.34e-06 is not a plausible metres-per-pixel value; ignored"),
    ]
    samples, _ = split_out(items)
    p1, p3, p100, p200 = samples
    assert [o.category for o in p1.objects] == ["ship", "foo", "small-vehicle"]
    assert [o.category for o in p3.objects] == ["foo", "bar"]
    assert p1.source == "dota" and p1.gsd == 0.146
    assert p1.image_path == (root / "train" / "images" / "P0001.png").resolve() and p1.image_path.is_absolute()
    assert p1.rel_image == "train/images/P0001.png"
    assert p1.provenance == {"label_file": "train/labelTxt/P0001.txt", "imagesource": "GoogleEarth",
                             "gsd": "0.146"}
    assert p3.rel_image == "train/images/P0003.JPG" and p3.gsd is None and p3.provenance["gsd"] == "null"
    assert p100.gsd is None and p100.provenance["gsd"] == "1.34e-06"
    assert p200.objects == () and p200.gsd is None and p200.provenance == {} and not p200.annotated
    assert p200.rel_image == "test/images/P0200.png"


def test_iteration_is_repeatable(tmp_path: Path) -> None:
    ds = DOTA(make_split_root(tmp_path / "DOTA"))
    assert list(ds) == list(ds)


def test_split_argument(tmp_path: Path) -> None:
    root = make_split_root(tmp_path / "DOTA")
    assert [(i.split, i.image_id) for i in DOTA(root, split="val") if isinstance(i, Sample)] == [("val", "P0100")]
    with pytest.raises(SourceError, match=r"no split 'trainval' .*found: train, val, test"):
        DOTA(root, split="trainval")


def test_extra_split_folders_come_after_train_val_test(tmp_path: Path) -> None:
    root = make_split_root(tmp_path / "DOTA")
    write_image(root / "test-dev" / "images" / "P0300.png")
    write_label(root / "aux" / "labelTxt" / "P0400.txt", [CAR])
    write_image(root / "aux" / "images" / "P0400.png")
    (root / "notes").mkdir()
    samples, _ = split_out(list(DOTA(root)))
    assert [s.split for s in samples] == ["train", "train", "val", "test", "aux", "test-dev"]
    assert samples[-1].provenance == {} and not samples[-1].annotated  # test-dev images are unlabelled too


def test_flat_layout_named_after_root(tmp_path: Path) -> None:
    for folder, split in (("val", "val"), ("my_dota", "train")):
        root = tmp_path / folder
        write_label(root / "labelTxt" / "P0001.txt", HEADER + [SHIP])
        write_image(root / "images" / "P0001.png")
        (sample,) = list(DOTA(root))
        assert (sample.split, sample.rel_image, sample.provenance["label_file"]) == (
            split, "images/P0001.png", "labelTxt/P0001.txt")


def test_flat_layout_split_mismatch(tmp_path: Path) -> None:
    root = tmp_path / "val"
    write_image(root / "images" / "P0001.png")
    with pytest.raises(SourceError, match="found: val"):
        DOTA(root, split="train")


def test_flat_test_folder_without_labels(tmp_path: Path) -> None:
    root = tmp_path / "test"
    write_image(root / "images" / "P0002.png")
    write_image(root / "images" / "P0001.tif")
    assert [(s.split, s.image_id, s.rel_image) for s in DOTA(root)] == [
        ("test", "P0001", "images/P0001.tif"), ("test", "P0002", "images/P0002.png")]


def test_png_preferred_and_other_files_ignored(tmp_path: Path) -> None:
    root = tmp_path / "train"
    write_label(root / "labelTxt" / "P0001.txt", [CAR])
    write_image(root / "images" / "P0001.jpg")
    write_image(root / "images" / "P0001.png")
    write_label(root / "labelTxt" / "._P0001.txt", ["junk"])  # macOS resource fork
    (root / "images" / "Thumbs.db").write_bytes(b"\x00")
    (root / "labelTxt" / "readme.md").write_text("x")
    samples, issues = split_out(list(DOTA(root)))
    assert [s.rel_image for s in samples] == ["images/P0001.png"]
    assert [(i.kind, i.file, i.reason) for i in issues] == [
        ("warning", "images/P0001.jpg", "another image has the same name: P0001.png is used, this one ignored")]


@pytest.mark.parametrize("nesting", ["labelTxt-v1.5/labelTxt", "labelTxt-v1.5", "labelTxt-v1.5/DOTA-v1.5_train"])
def test_official_label_folder_nesting(tmp_path: Path, nesting: str) -> None:
    root = tmp_path / "DOTA"
    write_label(root / "train" / nesting / "P0001.txt",
                ["100.0 100.0 140.0 100.0 140.0 120.0 100.0 120.0 container-crane 0"])
    write_label(root / "train" / "labelTxt-v1.5" / "DOTA-v1.5_train_hbb" / "P0001.txt", [CAR])  # never read
    write_image(root / "train" / "images" / "P0001.png")
    (sample,) = list(DOTA(root))
    assert sample.provenance["label_file"] == f"train/{nesting}/P0001.txt"
    assert [o.category for o in sample.objects] == ["container-crane"]


def test_version_selects_label_folder_and_vocabulary(tmp_path: Path) -> None:
    root = tmp_path / "DOTA"
    write_label(root / "train" / "labelTxt-v1.0" / "labelTxt" / "P0001.txt", [CAR])
    write_label(root / "train" / "labelTxt-v2.0" / "labelTxt" / "P0001.txt",
                ["0 0 50 0 50 50 0 50 helipad 0", "0 0 50 0 50 50 0 50 container-crane 0"])
    write_image(root / "train" / "images" / "P0001.png")
    auto_source = DOTA(root)
    (auto,) = list(auto_source)  # the newest version present, nothing unknown
    assert auto.provenance["label_file"] == "train/labelTxt-v2.0/labelTxt/P0001.txt"
    assert len(auto_source.vocabulary) == 18 and "airport" in auto_source.vocabulary
    v10_source = DOTA(root, version="1.0")
    (v10,) = list(v10_source)
    assert v10.provenance["label_file"] == "train/labelTxt-v1.0/labelTxt/P0001.txt"
    assert len(v10_source.vocabulary) == 15 and not {"airport", "helipad", "container-crane"} & set(
        v10_source.vocabulary)
    write_label(root / "train" / "labelTxt" / "P0001.txt", ["0 0 50 0 50 50 0 50 helipad 0"])
    warning, sample = list(DOTA(root, version="1.5"))
    assert str(warning) == "train/labelTxt/P0001.txt:1: unknown category 'helipad' (first seen here); kept"
    assert sample.objects[0].category == "helipad"


@pytest.mark.parametrize(("categories", "version"), [
    (["plane", "small-vehicle"], "1.0"), (["plane", "container-crane"], "1.5"), (["helipad"], "2.0"),
    (["plane", "no-such-class"], "2.0")])
def test_auto_takes_the_smallest_version_that_holds_every_label(tmp_path: Path, categories: list[str],
                                                                 version: str) -> None:
    root = tmp_path / "DOTA"
    for i, cat in enumerate(categories):
        write_label(root / "labelTxt" / f"P{i}.txt", [f"0 0 50 0 50 50 0 50 {cat} 0"])
        write_image(root / "images" / f"P{i}.png")
    assert DOTA(root).vocabulary == VOCABULARIES[version]


def test_real_v1_labels_ask_no_question_about_later_classes(real_dir: Path, tmp_path: Path) -> None:
    source = DOTA(real_dir / "dota_v1.0")
    assert source.vocabulary == VOCABULARIES["1.0"]
    _, records, _ = dry_run("dota", real_dir / "dota_v1.0", tmp_path / "out", "-O", "version=auto")
    asked = " ".join(c["value"] for r in records if r["task"] in ("counting", "presence")
                     for c in r["conversations"])
    assert asked and not re.search(r"airport|helipad|container crane", asked, re.IGNORECASE)


def test_unrecognised_roots_raise(tmp_path: Path) -> None:
    (tmp_path / "empty" / "stuff").mkdir(parents=True)
    with pytest.raises(SourceError, match=r"expected images/ and labelTxt/.*train/, val/, test/"):
        DOTA(tmp_path / "empty")
    with pytest.raises(SourceError, match="not a folder"):
        DOTA(tmp_path / "missing")
    write_image(tmp_path / "ok" / "images" / "P1.png")
    with pytest.raises(SourceError, match="unknown DOTA version '3.0'"):
        DOTA(tmp_path / "ok", version="3.0")


def test_unreadable_label_file_is_skipped(tmp_path: Path) -> None:
    root = tmp_path / "train"
    (root / "labelTxt").mkdir(parents=True)
    (root / "labelTxt" / "P0001.txt").write_bytes(b"\x00\x01\x02binary")
    write_image(root / "images" / "P0001.png")
    write_label(root / "labelTxt" / "P0002.txt", [CAR])
    write_image(root / "images" / "P0002.png")
    issue, sample = list(DOTA(root))
    assert (issue.kind, issue.file) == ("skip", "labelTxt/P0001.txt")
    assert issue.reason.startswith("unreadable label file")
    assert sample.image_id == "P0002"


def test_label_file_without_read_permission_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "train"
    write_label(root / "labelTxt" / "P0001.txt", [CAR])
    write_image(root / "images" / "P0001.png")

    def denied(self: Path) -> bytes:  # chmod 000 does not stop root, so fake what the OS would say
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    (issue,) = list(DOTA(root))
    assert (issue.kind, issue.file) == ("skip", "labelTxt/P0001.txt")
    assert issue.reason.startswith("unreadable label file: [Errno 13] Permission denied")


def test_registry_and_class_attributes() -> None:
    assert get_source("dota") is DOTA
    assert DOTA.name == "dota" and DOTA.task_kind == "detection"
    assert len(VOCABULARIES["2.0"]) == 18 and {"plane", "container-crane", "helipad", "airport"} <= set(VOCABULARIES["2.0"])


# ---- real DOTA devkit files ------------------------------------------------------------------

def test_real_devkit_example(real_dir: Path) -> None:
    root = real_dir / "dota_v1.0"
    samples, issues = split_out(list(DOTA(root)))
    (p1888,) = samples
    unpaired = ("P0706", "P0770", "P1088", "P1234", "P2598", "P2709")
    assert [i.file for i in issues] == [f"labelTxt/{s}.txt" for s in unpaired]
    assert all(i.kind == "skip" and i.reason.startswith("no image for label file") for i in issues)
    assert (p1888.split, p1888.image_id, p1888.rel_image) == ("train", "P1888", "images/P1888.png")
    with Image.open(p1888.image_path) as im:
        assert im.size == (712, 557)
    assert p1888.gsd == pytest.approx(0.266170468393)
    assert p1888.provenance == {"label_file": "labelTxt/P1888.txt", "imagesource": "GoogleEarth",
                                "gsd": "0.266170468393"}
    raw_lines = (root / "labelTxt" / "P1888.txt").read_bytes().split(b"\r\n")
    object_lines = [ln for ln in raw_lines if ln and b":" not in ln]
    assert len(p1888.objects) == len(object_lines) == 64
    first = p1888.objects[0]
    assert (first.category, first.difficult, first.line) == ("small-vehicle", 0, 3)
    assert first.polygon == ((674.0, 375.0), (683.0, 375.0), (684.0, 394.0), (675.0, 395.0))
    assert all(0 <= x <= 712 and 0 <= y <= 557 for o in p1888.objects for x, y in o.polygon)


def test_real_label_files_all_parse(real_dir: Path) -> None:
    files = sorted((real_dir / "dota_v1.0" / "labelTxt").glob("*.txt"))
    assert len(files) == 7
    parsed = {f.stem: parse_label_file(f, f.name) for f in files}
    assert all(p.issues == () for p in parsed.values())
    assert sum(len(p.objects) for p in parsed.values()) == 984
    assert parsed["P1234"].header == {"imagesource": "GF", "gsd": "1"} and parsed["P1234"].gsd == 1.0
    assert parsed["P0706"].gsd == pytest.approx(0.255589285596)
    cats = Counter(o.category for p in parsed.values() for o in p.objects)
    assert (cats["ship"], cats["storage-tank"], cats["large-vehicle"], cats["plane"]) == (561, 255, 63, 22)
    assert sum(o.difficult for p in parsed.values() for o in p.objects) == 67
    assert set(cats) <= set(VOCABULARIES["1.0"])


def test_real_files_through_the_adapter(tmp_path: Path, real_dir: Path) -> None:
    root = real_dir / "dota_v1.0"
    copy = tmp_path / "train"
    shutil.copytree(root / "labelTxt", copy / "labelTxt")
    for f in (root / "labelTxt").glob("*.txt"):
        write_image(copy / "images" / f"{f.stem}.png")
    samples, issues = split_out(list(DOTA(copy)))
    assert issues == []
    assert [s.image_id for s in samples] == ["P0706", "P0770", "P1088", "P1234", "P1888", "P2598", "P2709"]
    assert sum(len(s.objects) for s in samples) == 984


# ---- the bundled synthetic sample ------------------------------------------------------------

def test_bundled_sample() -> None:
    root = sample_root("dota")
    source = DOTA(root)
    samples, issues = split_out(list(source))
    # the sample shows a label file of unknown gsd, as DOTA's GF/JL images often are
    assert issues == [Issue(kind="warning", code=IssueCode.GSD_UNKNOWN, file="train/labelTxt/P9003.txt", line=2,
                            reason=f"gsd 'null': {UNKNOWN}")]
    assert [(s.split, s.image_id) for s in samples] == [
        ("train", "P9001"), ("train", "P9002"), ("train", "P9003"), ("val", "P9004")]
    by_id = {s.image_id: s for s in samples}
    assert by_id["P9002"].provenance["imagesource"] == "GF" and by_id["P9002"].gsd == 1.0
    assert by_id["P9003"].gsd is None and by_id["P9003"].provenance["gsd"] == "null"
    assert by_id["P9001"].gsd == 0.3
    assert Counter(o.category for o in by_id["P9003"].objects)["small-vehicle"] >= 55
    assert {"plane", "ship", "harbor", "storage-tank", "roundabout", "large-vehicle"} <= {
        o.category for s in samples for o in s.objects}
    assert any(o.difficult == 1 for s in samples for o in s.objects)
    sizes = {}
    for s in samples:
        with Image.open(s.image_path) as im:
            sizes[s.image_id] = im.size
        w, h = sizes[s.image_id]
        for o in s.objects:
            assert o.category in source.vocabulary
            assert all(0 <= x <= w and 0 <= y <= h for x, y in o.polygon), (s.image_id, o.line)
            assert polygon_area(o.polygon) >= 20
    assert sizes["P9001"] == (1400, 1100) and max(max(wh) for wh in sizes.values()) > 1024


def test_bundled_sample_files_are_native_dota() -> None:
    root = sample_root("dota")
    labels = sorted(root.glob("*/labelTxt/*.txt"))
    assert len(labels) == 4
    field_counts = Counter()
    for f in labels:
        data = f.read_bytes()
        assert data.count(b"\n") == data.count(b"\r\n") > 0 and data.endswith(b"\r\n")
        lines = data.decode("ascii").split("\r\n")[:-1]
        assert lines[0].startswith("imagesource:") and lines[1].startswith("gsd:")
        for ln in lines[2:]:
            tokens = ln.split(" ")
            field_counts[len(tokens)] += 1
            assert all(t.lstrip("-").isdigit() for t in tokens[:8])  # v1.0: integer corners
    assert field_counts[9] == 1 and set(field_counts) == {9, 10}
    assert sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) < 2_500_000
