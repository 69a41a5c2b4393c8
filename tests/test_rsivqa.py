"""The RSIVQA adapter on synthetic image:question?answer files with the release's quirks, and on real release files."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import dry_run, split_out, write_image

from rsgpt4v.core.issue_codes import IssueCode
from rsgpt4v.core.schema import QA, Defect, Issue, Sample
from rsgpt4v.sources import get_source
from rsgpt4v.sources.base import SourceError
from rsgpt4v.sources.rsivqa import RSIVQA, parse_line, read_question_file

# each file as the release writes it: LF endings, a final newline
TEXT = {
    "AID/rsicd_vqa.txt": "00433.jpg:what is the theme of this picture?airport\n"
                         "airport_1.jpg:what is the theme of this picture?airport\n",
    "DOTA/dota_train_vqa2.txt": "P0000: how many planes are there in this picture?21\n"
                                "P0000: does this picture contain plane?yes\n",
    "DOTA/dota_val_vqa2.txt": "P0003: how many small vehicles are there in this picture?15\n"
                              "P0003: does this picture contain ship?no\n",
    "HRRSD/opt_val_vqa.txt": "00001: how many airplanes are there in this picture?1\n",
    "Sydney/sydney_vqa.txt": "1.tif:what is the theme of this picture?residential\n",
    "UCM/ucm_vqa.txt": "1.tif:what is the theme of this picture?farmland\n"
                       "101.tif:what is the theme of this picture?airplane\n",
    "UCM/ucm_res.txt": "1.tif:What is the theme of this picture?farmland\n"
                       "1.tif:How many trees in the picture?one\n"
                       "1.tif:What is the location of the trees in this picture?top left corner\n"
                       "10.tif:How many  in the picture?zero\n"
                       "10.tif:What is the location of the mobile homes in this picture?everywhere \n"
                       "101.tif:What is the theme of this picture?airport\n"
                       "101.tif:What is the location of the  in this picture?i cannot see it \n",
}
IMAGES = {"AID": ["00433.jpg", "airport_1.jpg"], "DOTA": ["P0000.png", "P0003.png"], "HRRSD": ["00001.jpg"],
          "Sydney": ["1.tif"], "UCM": ["1.tif", "10.tif", "101.tif"]}


def make_root(root: Path, with_images: bool = True) -> Path:
    for name, text in TEXT.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(text.encode("ascii"))
    if with_images:
        for subset, names in IMAGES.items():
            for name in names:
                write_image(root / subset / "images" / name)
    return root


# ---- parse_line ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        ("00433.jpg:what is the theme of this picture?airport",
         ("00433.jpg", "what is the theme of this picture?", "airport")),
        ("P0003: how many small vehicles are there in this picture?15",
         ("P0003", "how many small vehicles are there in this picture?", "15")),
        ("1388.tif:What is the location of the mobile homes in this picture?everywhere \r",
         ("1388.tif", "What is the location of the mobile homes in this picture?", "everywhere")),
        ("1.tif:is it a: test? really?yes", ("1.tif", "is it a: test? really?", "yes")),
        ("no colon here?yes", Defect(IssueCode.MALFORMED_ENTRY, "malformed line: no ':' after the image name")),
        ("1.tif:what is the theme of this picture",
         Defect(IssueCode.MALFORMED_ENTRY, "malformed line: no '?' ending the question")),
        (":what is the theme of this picture?x", Defect(IssueCode.MALFORMED_ENTRY, "malformed line: empty image name")),
        ("1.tif: ?x", Defect(IssueCode.EMPTY_TEXT, "malformed line: empty question")),
        ("1.tif:what is the theme of this picture? ", Defect(IssueCode.EMPTY_TEXT, "malformed line: empty answer")),
    ],
)
def test_parse_line(line: str, parsed: tuple[str, str, str] | Defect) -> None:
    assert parse_line(line) == parsed


def test_read_question_file_lines_crlf_and_blank_lines(tmp_path: Path) -> None:
    f = tmp_path / "x.txt"
    f.write_bytes(b"1.tif:q one?a\r\n\r\nbroken line\r\n2.tif:q two?b")
    triplets, issues = read_question_file(f, "UCM/x.txt")
    assert [(t.line, t.image, t.question, t.answer) for t in triplets] == [(1, "1.tif", "q one?", "a"),
                                                                          (4, "2.tif", "q two?", "b")]
    assert issues == [Issue(kind="skip", code=IssueCode.MALFORMED_ENTRY, file="UCM/x.txt", line=3,
                            reason="malformed line: no ':' after the image name")]
    f.write_bytes(b"1.tif:q?\xff\n")
    assert read_question_file(f, "UCM/x.txt") == ([], [Issue(kind="skip", code=IssueCode.FILE_UNREADABLE,
                                                             file="UCM/x.txt",
                                                             reason="not UTF-8 text (invalid start byte)")])


# ---- the adapter -----------------------------------------------------------------------------

def test_release_layout(tmp_path: Path) -> None:
    root = make_root(tmp_path / "RSIVQA")
    items = list(RSIVQA(root))
    samples, issues = split_out(items)
    assert [(s.split, s.image_id, len(s.qa)) for s in samples] == [
        ("train", "AID_00433", 1), ("train", "AID_airport_1", 1), ("train", "DOTA_P0000", 2),
        ("train", "Sydney_1", 1),
        ("train", "UCM_1", 3), ("train", "UCM_101", 1), ("train", "UCM_10", 1),
        ("val", "DOTA_P0003", 2), ("val", "HRRSD_00001", 1)]  # split by the file names: opt_val is val
    assert issues == [
        Issue(kind="warning", code=IssueCode.EMPTY_TEXT, file="UCM/ucm_res.txt", line=4,
              reason="2 questions with an empty object name dropped (first at line 4)"),
        Issue(kind="warning", code=IssueCode.DUPLICATE_QUESTION, file="UCM/ucm_res.txt", line=1,
              reason="2 questions asked again for the same image dropped, 1 of them with another answer "
                     "(first at line 1)"),
    ]
    by_id = {s.image_id: s for s in samples}
    assert by_id["UCM_1"].qa == (
        QA(question="what is the theme of this picture?", answer="farmland"),
        QA(question="How many trees in the picture?", answer="one"),
        QA(question="What is the location of the trees in this picture?", answer="top left corner"),
    )
    assert by_id["UCM_101"].qa == (QA(question="what is the theme of this picture?", answer="airplane"),)
    assert by_id["UCM_10"].qa == (QA(question="What is the location of the mobile homes in this picture?",
                                     answer="everywhere"),)
    p3 = by_id["DOTA_P0003"]
    assert p3.qa[0] == QA(question="how many small vehicles are there in this picture?", answer="15", kind=None)
    assert p3.rel_image == "DOTA/images/P0003.png" and p3.image_path == (root / "DOTA/images/P0003.png").resolve()
    assert p3.provenance == {"questions_file": "DOTA/dota_val_vqa2.txt", "line": 1, "image_name": "P0003"}
    assert by_id["HRRSD_00001"].rel_image == "HRRSD/images/00001.jpg"
    assert (by_id["UCM_1"].gsd, by_id["Sydney_1"].gsd, p3.gsd) == (0.3048, 0.5, None)
    assert {s.source for s in samples} == {"rsivqa"} and all(s.annotated for s in samples)


def test_iteration_is_repeatable_and_split_argument(tmp_path: Path) -> None:
    root = make_root(tmp_path / "RSIVQA")
    ds = RSIVQA(root)
    assert list(ds) == list(ds)
    assert [s.image_id for s in RSIVQA(root, split="val") if isinstance(s, Sample)] == ["DOTA_P0003", "HRRSD_00001"]
    with pytest.raises(SourceError, match=r"no split 'test' .*found: train, val"):
        RSIVQA(root, split="test")


def test_repository_clone_root_is_accepted(tmp_path: Path) -> None:
    make_root(tmp_path / "clone" / "RSIVQA")
    ds = RSIVQA(tmp_path / "clone")
    assert ds.root == tmp_path / "clone" / "RSIVQA"
    assert len([s for s in ds if isinstance(s, Sample)]) == 9


def test_missing_image_folders_give_one_issue_per_file(tmp_path: Path) -> None:
    root = make_root(tmp_path / "RSIVQA", with_images=False)
    write_image(root / "Sydney" / "images" / "1.tif")
    samples, issues = split_out(list(RSIVQA(root)))
    assert [s.image_id for s in samples] == ["Sydney_1"]
    assert [(i.file, i.reason.split(";")[0]) for i in issues] == [
        ("AID/rsicd_vqa.txt", "image folder AID/images not found"),
        ("DOTA/dota_train_vqa2.txt", "image folder DOTA/images not found"),
        ("UCM/ucm_vqa.txt", "image folder UCM/images not found"),
        ("UCM/ucm_res.txt", "image folder UCM/images not found"),
        ("DOTA/dota_val_vqa2.txt", "image folder DOTA/images not found"),
        ("HRRSD/opt_val_vqa.txt", "image folder HRRSD/images not found"),
    ]
    assert issues[0].reason.endswith("(place or symlink the AID images there)")


def test_images_option_points_at_source_folders(tmp_path: Path) -> None:
    root = make_root(tmp_path / "RSIVQA", with_images=False)
    (root / "DOTA" / "dota_train_vqa2.txt").unlink()
    (root / "HRRSD" / "opt_val_vqa.txt").unlink()
    dota = tmp_path / "DOTA-v1.0" / "val" / "images"
    write_image(dota / "P0003.png")
    ds = RSIVQA(root, split="val", images={"DOTA": dota})
    (sample,) = list(ds)
    assert sample.image_path == (dota / "P0003.png").resolve()
    assert sample.rel_image == (dota / "P0003.png").as_posix()  # outside the root: kept absolute
    with pytest.raises(SourceError, match="unknown RSIVQA subset 'RSICD'"):
        RSIVQA(root, images={"RSICD": dota})


def test_bad_lines_and_missing_images(tmp_path: Path) -> None:
    root = tmp_path / "RSIVQA"
    (root / "UCM").mkdir(parents=True)
    (root / "UCM" / "ucm_vqa.txt").write_text(
        "1.tif:what is the theme of this picture?farmland\n"
        "2.tif what is the theme of this picture farmland\n"
        "../3.tif:what is the theme of this picture?farmland\n"
        "4.tif:what is the theme of this picture?\n"
        "5.tif:what is the theme of this picture?farmland\n"
        "5.tif:does this picture contain trees?yes\n"
        "6.jpg:what is the theme of this picture?farmland\n"
        "/etc/7.tif:what is the theme of this picture?farmland\n")
    write_image(root / "UCM" / "images" / "1.tif")
    write_image(root / "UCM" / "images" / "6.tif")  # named .jpg in the file: found by stem
    samples, issues = split_out(list(RSIVQA(root)))
    assert [(s.image_id, s.rel_image) for s in samples] == [
        ("UCM_1", "UCM/images/1.tif"), ("UCM_6", "UCM/images/6.tif")]
    assert [(i.kind, i.file, i.line, i.reason) for i in issues] == [
        ("skip", "UCM/ucm_vqa.txt", 2, "malformed line: no ':' after the image name"),
        ("skip", "UCM/ucm_vqa.txt", 4, "malformed line: empty answer"),
        ("skip", "UCM/ucm_vqa.txt", 3, "image name '../3.tif' climbs out of the image folder"),
        ("skip", "UCM/ucm_vqa.txt", 8, "image name '/etc/7.tif' climbs out of the image folder"),
        ("skip", "UCM/ucm_vqa.txt", 5,
         "image '5.tif' not found in UCM/images (looked for 5.png, .jpg, .tif, ...); its 2 questions skipped"),
    ]


def test_unrecognised_roots_raise(tmp_path: Path) -> None:
    (tmp_path / "empty" / "UCM").mkdir(parents=True)
    with pytest.raises(SourceError, match=r"does not look like RSIVQA: expected some of AID/rsicd_vqa.txt"):
        RSIVQA(tmp_path / "empty")
    with pytest.raises(SourceError, match="not a folder"):
        RSIVQA(tmp_path / "missing")


def test_registry_and_class_attributes() -> None:
    assert get_source("rsivqa") is RSIVQA
    assert RSIVQA.task_kind == "vqa" and RSIVQA.vocabulary == ()


def test_cli_dry_run(tmp_path: Path) -> None:
    _, records, manifest = dry_run("rsivqa", make_root(tmp_path / "RSIVQA"), tmp_path / "out", tasks={'caption', 'multi_turn_reasoning', 'detailed_description', 'vqa'})
    assert records and {r["split"] for r in records} <= {"train", "val"}
    assert manifest["counts"]["samples"] == 9


# ---- real release files ----------------------------------------------------------------------

REAL_FILES = {"UCM/ucm_vqa.txt": 2100, "UCM/ucm_res.txt": 2795, "Sydney/sydney_vqa.txt": 613,
              "DOTA/dota_val_vqa2.txt": 4041}


@pytest.fixture
def real_root(real_dir: Path) -> Path:
    return real_dir / "rsivqa" / "RSIVQA"


@pytest.mark.parametrize(("name", "lines"), list(REAL_FILES.items()))
def test_real_files_parse_line_for_line(real_root: Path, name: str, lines: int) -> None:
    path = real_root / name
    non_empty = [ln for ln in path.read_text().split("\n") if ln.strip()]
    triplets, issues = read_question_file(path, name)
    assert len(triplets) + len(issues) == len(non_empty) == lines
    assert issues == []


def test_real_file_values(real_root: Path) -> None:
    root = real_root
    dota, _ = read_question_file(root / "DOTA" / "dota_val_vqa2.txt", "d")
    assert (dota[0].image, dota[0].question, dota[0].answer) == (
        "P0003", "how many small vehicles are there in this picture?", "15")
    assert len({t.image for t in dota}) == 458
    res, _ = read_question_file(root / "UCM" / "ucm_res.txt", "r")
    by_line = {t.line: t for t in res}
    assert (by_line[2165].image, by_line[2165].answer) == ("1388.tif", "everywhere")  # trailing space in the file
    assert (by_line[10].question, by_line[10].answer) == ("What is the location of the  in this picture?",
                                                          "i cannot see it")
    sydney, _ = read_question_file(root / "Sydney" / "sydney_vqa.txt", "s")
    assert (sydney[-1].image, sydney[-1].answer) == ("613.tif", "runway")


def test_real_files_through_the_adapter(tmp_path: Path, real_root: Path) -> None:
    real = real_root
    root = tmp_path / "RSIVQA"
    images = set()
    for name in REAL_FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).symlink_to(real / name)
        images |= {(name.split("/")[0], t.image) for t in read_question_file(real / name, name)[0]}
    for subset, image in images:  # the adapter only checks existence: empty files will do
        folder = root / subset / "images"
        folder.mkdir(exist_ok=True)
        (folder / (image if subset != "DOTA" else f"{image}.png")).touch()
    samples, issues = split_out(list(RSIVQA(root)))
    counts = {}
    for s in samples:
        key = (s.split, s.image_id.split("_")[0])
        counts[key] = counts.get(key, 0) + 1
    assert counts == {("train", "Sydney"): 613, ("train", "UCM"): 2100, ("val", "DOTA"): 458}
    assert sum(len(s.qa) for s in samples) == 4041 + 613 + 2100 + 2795 - 294 - 559
    assert issues == [
        Issue(kind="warning", code=IssueCode.EMPTY_TEXT, file="UCM/ucm_res.txt", line=9,
              reason="294 questions with an empty object name dropped (first at line 9)"),
        Issue(kind="warning", code=IssueCode.DUPLICATE_QUESTION, file="UCM/ucm_res.txt", line=1,
              reason="559 questions asked again for the same image dropped, 52 of them with another answer "
                     "(first at line 1)"),
    ]
    ucm101 = next(s for s in samples if s.image_id == "UCM_101")
    # ucm_res.txt:66-70 answer the theme "airport" (dropped: asked in ucm_vqa.txt:1101) and ask "How many  in
    # the picture?four" (dropped: no object name)
    assert ucm101.qa == (
        QA(question="what is the theme of this picture?", answer="airplane"),
        QA(question="Does this picture contain an airplane?", answer="yes"),
        QA(question="Does this picture contain trees?", answer="no"),
        QA(question="What is the location of the cars in this picture?", answer="top"),
    )
    assert ucm101.provenance == {"questions_file": "UCM/ucm_vqa.txt", "line": 1101, "image_name": "101.tif"}
