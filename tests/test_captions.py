"""The captioning adapters (RSICD, UCM/Sydney-Captions, RSITMD, NWPU-Captions) on synthetic files in
their native json layouts, on a real RSICD entry, and end to end through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import dry_run, split_out, write_image, write_json

from rsgpt4v.core.schema import Issue, Sample
from rsgpt4v.sources import get_source
from rsgpt4v.sources.base import SourceError
from rsgpt4v.sources.captions import (
    RSICD,
    RSITMD,
    NWPUCaptions,
    SydneyCaptions,
    UCMCaptions,
    clean_captions,
    scene_from_filename,
)


def sentence(raw: str, imgid: int, sentid: int, tokens: list[str] | None = None) -> dict:
    toks = tokens if tokens is not None else raw.replace(" .", "").split()
    return {"tokens": toks, "raw": raw, "imgid": imgid, "sentid": sentid}


def karpathy(filename: str, imgid: int, split: str, raws: list[str]) -> dict:
    """One images[] entry as the Karpathy-style files write it (sentids numbered from imgid*5)."""
    sents = [sentence(r, imgid, imgid * 5 + k) for k, r in enumerate(raws)]
    return {"filename": filename, "imgid": imgid, "sentences": sents, "split": split,
            "sentids": [s["sentid"] for s in sents]}


# ---- helpers ---------------------------------------------------------------------------------

def test_clean_captions_dedupes_strips_and_fixes_only_the_final_space_dot() -> None:
    texts = ("many planes are parked . near a building .", "  many planes are parked . near a building.\n",
             "", None, 3, "Some Trees ARE here  ")
    assert clean_captions(texts) == (("many planes are parked . near a building.", "Some Trees ARE here"), 3)


@pytest.mark.parametrize(("filename", "scene"), [
    ("airport_1.jpg", "airport"), ("denseresidential_12.jpg", "denseresidential"),
    ("baseball_diamond_003.jpg", "baseball diamond"), ("00676.jpg", None), ("12.tif", None), ("airport.jpg", None),
])
def test_scene_from_filename(filename: str, scene: str | None) -> None:
    assert scene_from_filename(filename) == scene


# ---- RSICD -----------------------------------------------------------------------------------

AIRPORT = "many planes are parked next to a long building in an airport ."
AIRPORT_2 = "several airplanes are near the terminal ."


def make_rsicd(root: Path) -> Path:
    """File order test, train, val; padded duplicates; a text-augmented entry; a bare numeric name."""
    augmented = karpathy("stadium_3.jpg", 2, "train", ["a stadium surrounded by green trees ."])
    augmented["sentences"][0]["tokens"] = ["a", "playground", "is", "surrounded", "by", "trees"]
    write_json(root / "dataset_rsicd.json", {"images": [
        karpathy("bridge_7.jpg", 9, "test", ["a bridge over the river ."] * 5),
        karpathy("airport_1.jpg", 0, "train", [AIRPORT, AIRPORT, AIRPORT_2, AIRPORT, AIRPORT_2]),
        augmented,
        karpathy("00676.jpg", 3, "val", ["many buildings and green trees are in a dense residential area ."] * 5),
    ], "dataset": "rsicd"})
    for name in ("bridge_7.jpg", "airport_1.jpg", "stadium_3.jpg", "00676.jpg"):
        write_image(root / "RSICD_images" / name)
    return root


def test_rsicd_native_layout(tmp_path: Path) -> None:
    root = make_rsicd(tmp_path / "RSICD")
    items = list(RSICD(root))
    assert all(isinstance(i, Sample) for i in items)
    assert [(s.split, s.image_id) for s in items] == [
        ("train", "airport_1"), ("train", "stadium_3"), ("val", "00676"), ("test", "bridge_7")]
    airport, stadium, dense, bridge = items
    assert airport.captions == ("many planes are parked next to a long building in an airport.",
                                "several airplanes are near the terminal.")
    assert stadium.captions == ("a stadium surrounded by green trees.",)  # raw, not the augmented tokens
    assert bridge.captions == ("a bridge over the river.",)
    assert (airport.scene_class, dense.scene_class) == ("airport", None)
    assert airport.source == "rsicd" and airport.gsd is None and airport.annotated and airport.objects == ()
    assert airport.image_path == (root / "RSICD_images" / "airport_1.jpg").resolve()
    assert airport.rel_image == "RSICD_images/airport_1.jpg"
    assert airport.provenance == {"annotation_file": "dataset_rsicd.json", "filename": "airport_1.jpg", "imgid": 0}


def test_split_argument_and_repeatable_iteration(tmp_path: Path) -> None:
    root = make_rsicd(tmp_path / "RSICD")
    assert [s.image_id for s in RSICD(root, split="val")] == ["00676"]
    ds = RSICD(root)
    assert list(ds) == list(ds)
    with pytest.raises(SourceError, match=r"no split 'trainval' in dataset_rsicd.json \(found: train, val, test\)"):
        RSICD(root, split="trainval")


# ---- UCM-Captions / Sydney-Captions ----------------------------------------------------------

def test_ucm_captions_jpg_names_for_tif_files(tmp_path: Path) -> None:
    root = tmp_path / "UCM_captions"
    write_json(root / "dataset.json", {"images": [
        karpathy("1.jpg", 0, "train", ["There is a piece of farmland .", "There is a piece of cropland ."]),
        karpathy("2.tif", 1, "val", ["Lots of trees ."]),
        karpathy("3.jpg", 2, "test", ["A river goes through ."]),
    ], "dataset": "ucm"})
    write_image(root / "imgs" / "1.tif")
    write_image(root / "imgs" / "2.tif")
    write_image(root / "imgs" / "3.jpg")
    samples = list(UCMCaptions(root))
    assert [(s.split, s.image_id, s.rel_image) for s in samples] == [
        ("train", "1", "imgs/1.tif"), ("val", "2", "imgs/2.tif"), ("test", "3", "imgs/3.jpg")]
    assert samples[0].captions == ("There is a piece of farmland.", "There is a piece of cropland.")
    assert samples[0].provenance["filename"] == "1.jpg"
    assert all(s.gsd == 0.3048 and s.scene_class is None and s.source == "ucm-captions" for s in samples)


def test_sydney_captions_keeps_typos_and_reads_images_folder(tmp_path: Path) -> None:
    root = tmp_path / "Sydney_captions"
    typo = "there are some buildings in the ceter of the pictrue ."
    write_json(root / "dataset_sydney.json", {"images": [karpathy("1.tif", 0, "train", [typo, typo])],
                                              "dataset": "sydney"})
    write_image(root / "images" / "1.tif")
    (sample,) = list(SydneyCaptions(root))
    assert sample.captions == ("there are some buildings in the ceter of the pictrue.",)
    assert (sample.rel_image, sample.gsd, sample.provenance["annotation_file"]) == (
        "images/1.tif", 0.5, "dataset_sydney.json")


# ---- RSITMD ----------------------------------------------------------------------------------

def test_rsitmd_train_and_test_only(tmp_path: Path) -> None:
    root = tmp_path / "RSITMD"
    write_json(root / "dataset_RSITMD.json", {"images": [
        karpathy("airport_12.tif", 0, "train", ["Two planes are parked beside the terminal building."] * 5),
        karpathy("boat_3.tif", 1, "test", ["Three boats are moored at the dock."]),
    ]})
    write_image(root / "images" / "airport_12.tif")
    write_image(root / "images" / "boat_3.tif")
    assert [(s.split, s.image_id, s.scene_class, s.captions) for s in RSITMD(root)] == [
        ("train", "airport_12", "airport", ("Two planes are parked beside the terminal building.",)),
        ("test", "boat_3", "boat", ("Three boats are moored at the dock.",))]
    with pytest.raises(SourceError, match=r"no split 'val' in dataset_RSITMD.json \(found: train, test\)"):
        RSITMD(root, split="val")


# ---- bad input, Karpathy-style files ---------------------------------------------------------

def test_bad_entries_become_issues(tmp_path: Path) -> None:
    root = tmp_path / "RSICD"
    tokens_only = karpathy("stadium_1.jpg", 6, "train", ["x"])
    del tokens_only["sentences"][0]["raw"]  # tokens are there; raw is never rebuilt from them
    blank_one = karpathy("park_2.jpg", 7, "train", ["a park with many trees .", "", "  "])
    blank_one["sentences"].append({"tokens": [], "raw": None, "imgid": 7, "sentid": 38})
    write_json(root / "dataset_rsicd.json", {"images": [
        karpathy("airport_1.jpg", 0, "train", [AIRPORT]),
        "not an entry",
        {k: v for k, v in karpathy("beach_1.jpg", 2, "train", ["a beach ."]).items() if k != "split"},
        {k: v for k, v in karpathy("beach_2.jpg", 3, "train", ["a beach ."]).items() if k != "filename"},
        karpathy("center_1.jpg", 4, "train", []),
        {"filename": "center_2.jpg", "imgid": 5, "split": "train"},
        tokens_only,
        blank_one,
        karpathy("../outside.jpg", 8, "train", ["a secret ."]),
        karpathy("/etc/passwd.jpg", 9, "train", ["a secret ."]),
        karpathy("church_4.jpg", 10, "train", ["a church ."]),
        karpathy("airport_1.jpg", 11, "train", ["the same image again ."]),
        karpathy("airport_1.jpg", 12, "test", ["the same image in another split ."]),
    ]})
    for name in ("airport_1.jpg", "beach_1.jpg", "beach_2.jpg", "center_1.jpg", "center_2.jpg", "stadium_1.jpg",
                 "park_2.jpg"):
        write_image(root / "RSICD_images" / name)
    write_image(tmp_path / "outside.jpg")
    items = list(RSICD(root))
    summary = [(i.split, i.image_id) if isinstance(i, Sample) else (i.kind, i.reason) for i in items]
    assert summary == [
        ("skip", "images[1]: not an object"),
        ("skip", "images[2] (filename 'beach_1.jpg'): no split"),
        ("train", "airport_1"),
        ("skip", "images[3]: no filename"),
        ("skip", "images[4] (filename 'center_1.jpg'): no caption text (sentences missing, empty or without raw)"),
        ("skip", "images[5] (filename 'center_2.jpg'): no caption text (sentences missing, empty or without raw)"),
        ("skip", "images[6] (filename 'stadium_1.jpg'): no caption text (sentences missing, empty or without raw)"),
        ("warning", "images[7] (filename 'park_2.jpg'): 3 of 4 captions blank or not text; kept the others"),
        ("train", "park_2"),
        ("skip", "images[8] (filename '../outside.jpg'): filename '../outside.jpg' leaves the dataset root"),
        ("skip", "images[9] (filename '/etc/passwd.jpg'): filename '/etc/passwd.jpg' leaves the dataset root"),
        ("skip", "images[10] (filename 'church_4.jpg'): image not found (looked for RSICD_images/church_4.jpg, "
                 "also with other image suffixes)"),
        ("skip", "images[11] (filename 'airport_1.jpg'): duplicate image 'airport_1' in split 'train' "
                 "(first at images[0])"),
        ("test", "airport_1"),
    ]
    assert all(i.file == "dataset_rsicd.json" and i.line is None for i in items if isinstance(i, Issue))
    samples, _ = split_out(items)
    assert samples[0].captions == ("many planes are parked next to a long building in an airport.",)
    assert samples[1].captions == ("a park with many trees.",)
    assert samples[2].captions == ("the same image in another split.",)


def test_invalid_json_is_one_issue_with_its_line(tmp_path: Path) -> None:
    root = tmp_path / "UCM"
    (root / "imgs").mkdir(parents=True)
    (root / "dataset.json").write_text('{"images": [\n  {"filename": "1.tif",\n  "split": "train"\n', encoding="utf-8")
    (issue,) = list(UCMCaptions(root))
    assert (issue.kind, issue.file, issue.line) == ("skip", "dataset.json", 4)
    assert issue.reason.startswith("invalid JSON:")
    UCMCaptions(root, split="train")  # the split cannot be checked in a broken file: no error here


@pytest.mark.parametrize("data", [[{"filename": "1.tif"}], {"dataset": "ucm"}, {"images": {"1.tif": []}}])
def test_wrong_json_structure(tmp_path: Path, data: object) -> None:
    root = tmp_path / "UCM"
    write_json(root / "dataset.json", data)
    (root / "imgs").mkdir()
    assert [(i.kind, i.file, i.reason) for i in UCMCaptions(root)] == [
        ("skip", "dataset.json", "expected an object with an 'images' list")]


def test_unreadable_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_rsicd(tmp_path / "RSICD")

    def denied(self: Path) -> bytes:  # chmod 000 does not stop root, so fake what the OS would say
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    (issue,) = list(RSICD(root))
    assert (issue.kind, issue.file, issue.reason) == (
        "skip", "dataset_rsicd.json", "cannot read file (Permission denied)")


# ---- finding the files -----------------------------------------------------------------------

def test_annotation_file_discovery(tmp_path: Path) -> None:
    root = tmp_path / "UCM"
    write_image(root / "images" / "1.tif")
    with pytest.raises(SourceError, match=r"does not look like ucm-captions: expected dataset.json, dataset_ucm.json "
                                          r"\(or a single dataset\*.json\) in it$"):
        UCMCaptions(root)
    write_json(root / "dataset_ucmd.json", {"images": [karpathy("1.tif", 0, "train", ["a road ."])]})
    assert [s.provenance["annotation_file"] for s in UCMCaptions(root)] == ["dataset_ucmd.json"]
    write_json(root / "dataset_other.json", {"images": []})
    with pytest.raises(SourceError, match="found several, pass annotations=: dataset_other.json, dataset_ucmd.json"):
        UCMCaptions(root)
    assert [s.image_id for s in UCMCaptions(root, annotations="dataset_ucmd.json")] == ["1"]
    write_json(root / "dataset.json", {"images": [karpathy("1.tif", 0, "val", ["a road ."])]})
    assert [s.split for s in UCMCaptions(root)] == ["val"]  # the known name wins
    with pytest.raises(SourceError, match="annotation file '../x.json' not found"):
        UCMCaptions(root, annotations="../x.json")


def test_image_folder_discovery(tmp_path: Path) -> None:
    root = tmp_path / "RSICD"
    write_json(root / "dataset_rsicd.json", {"images": [karpathy("airport_1.jpg", 0, "train", [AIRPORT])]})
    with pytest.raises(SourceError, match=r"no image folder \(looked for RSICD_images/, imgs/, images/, Images/\)"):
        RSICD(root)
    write_image(root / "Images" / "airport_1.jpg")
    write_image(root / "pics" / "airport_1.jpg")
    assert [s.rel_image for s in RSICD(root)] == ["Images/airport_1.jpg"]
    assert [s.rel_image for s in RSICD(root, images="pics")] == ["pics/airport_1.jpg"]
    with pytest.raises(SourceError, match=r"looked for nowhere/\)"):
        RSICD(root, images="nowhere")
    with pytest.raises(SourceError, match="not a folder"):
        RSICD(tmp_path / "missing")


# ---- NWPU-Captions ---------------------------------------------------------------------------

def nwpu_entry(filename: str, imgid: int, split: str, raws: list[object]) -> dict:
    """One entry as dataset_nwpu.json writes it: raw, raw_1..raw_4 and sentids, sentids_1..sentids_4."""
    entry: dict = {"filename": filename, "imgid": imgid, "split": split}
    for k, raw in enumerate(raws):
        suffix = f"_{k}" if k else ""
        entry[f"raw{suffix}"] = raw
        entry[f"sentids{suffix}"] = imgid * 5 + k
    return entry


def make_nwpu(root: Path, images: str = "NWPU_images") -> Path:
    write_json(root / "dataset_nwpu.json", {
        "airplane": [
            nwpu_entry("airplane_001.jpg", 0, "test", ["Some planes are parked on the apron."] * 5),
            nwpu_entry("airplane_002.jpg", 1, "train", [
                "A plane is parked at the airport.", "Two white planes are on the runway.",
                "A plane is parked at the airport.", " Several planes are near a building .", "A plane."]),
        ],
        "baseball_diamond": [
            nwpu_entry("baseball_diamond_001.jpg", 700, "val", ["A baseball field is surrounded by trees."] * 5),
            nwpu_entry("baseball_diamond_002.jpg", 701, "train", ["A baseball field next to a road."] * 5),
        ],
    })
    folder = root / images if images else root
    for name in ("airplane_001.jpg", "airplane_002.jpg", "baseball_diamond_001.jpg", "baseball_diamond_002.jpg"):
        write_image(folder / name.rsplit("_", 1)[0] / name)
    return root


@pytest.mark.parametrize("images", ["NWPU_images", "images", ""])
def test_nwpu_captions(tmp_path: Path, images: str) -> None:
    root = make_nwpu(tmp_path / "NWPU-Captions", images)
    samples = list(NWPUCaptions(root))
    assert [(s.split, s.image_id, s.scene_class) for s in samples] == [
        ("train", "airplane_002", "airplane"), ("train", "baseball_diamond_002", "baseball diamond"),
        ("val", "baseball_diamond_001", "baseball diamond"), ("test", "airplane_001", "airplane")]
    prefix = f"{images}/" if images else ""
    assert samples[0].rel_image == f"{prefix}airplane/airplane_002.jpg"
    assert samples[0].captions == ("A plane is parked at the airport.", "Two white planes are on the runway.",
                                   "Several planes are near a building.", "A plane.")
    assert samples[3].captions == ("Some planes are parked on the apron.",)
    assert samples[2].provenance == {"annotation_file": "dataset_nwpu.json", "class": "baseball_diamond",
                                     "filename": "baseball_diamond_001.jpg", "imgid": 700}
    assert all(s.source == "nwpu-captions" and s.gsd is None for s in samples)
    assert [s.image_id for s in NWPUCaptions(root, split="val")] == ["baseball_diamond_001"]


def test_nwpu_bare_filenames_get_the_class_in_the_id(tmp_path: Path) -> None:
    root = tmp_path / "NWPU"
    write_json(root / "dataset_nwpu.json", {"beach": [nwpu_entry("001.jpg", 0, "train", ["Waves on a beach."])],
                                            "forest land": [nwpu_entry("001.jpg", 1, "train", ["Dense trees."])]})
    write_image(root / "images" / "beach" / "001.jpg")
    write_image(root / "images" / "forest land" / "001.tif")
    assert [(s.image_id, s.rel_image, s.scene_class) for s in NWPUCaptions(root)] == [
        ("beach_001", "images/beach/001.jpg", "beach"),
        ("forest_land_001", "images/forest land/001.tif", "forest land")]


def test_nwpu_bad_entries(tmp_path: Path) -> None:
    root = make_nwpu(tmp_path / "NWPU")
    data = json.loads((root / "dataset_nwpu.json").read_text())
    data["airplane"] += [
        nwpu_entry("airplane_003.jpg", 2, "train", ["", None, "  "]),
        ["not", "an", "entry"],
        nwpu_entry("airplane_002.jpg", 3, "train", ["The same image again."]),
        nwpu_entry("airplane_009.jpg", 4, "train", ["A plane."]),
        nwpu_entry("../../airplane_010.jpg", 5, "train", ["A plane."]),
        {"imgid": 6, "raw": "No split here."},
    ]
    data["bridge"] = {"filename": "bridge_001.jpg"}
    data["../../etc"] = [nwpu_entry("x.jpg", 7, "train", ["x"])]
    write_json(root / "dataset_nwpu.json", data)
    write_image(root / "NWPU_images" / "airplane" / "airplane_003.jpg")
    items = list(NWPUCaptions(root))
    assert [(i.kind, i.reason) for i in items if isinstance(i, Issue)] == [
        ("skip", "airplane[3]: not an object"),
        ("skip", "airplane[7]: no split"),
        ("skip", "class 'bridge': not a list of images"),
        ("skip", "../../etc[0]: class name '../../etc' leaves the dataset root"),
        ("skip", "airplane[2] (filename 'airplane_003.jpg'): "
                 "no caption text (sentences missing, empty or without raw)"),
        ("skip", "airplane[4] (filename 'airplane_002.jpg'): duplicate image 'airplane_002' in split 'train' "
                 "(first at airplane[1])"),
        ("skip", "airplane[5] (filename 'airplane_009.jpg'): image not found (looked for "
                 "NWPU_images/airplane/airplane_009.jpg, also with other image suffixes)"),
        ("skip", "airplane[6] (filename '../../airplane_010.jpg'): filename '../../airplane_010.jpg' leaves the "
                 "dataset root"),
    ]
    assert [(s.split, s.image_id) for s in items if isinstance(s, Sample)] == [
        ("train", "airplane_002"), ("train", "baseball_diamond_002"), ("val", "baseball_diamond_001"),
        ("test", "airplane_001")]
    assert all(i.file == "dataset_nwpu.json" for i in items if isinstance(i, Issue))


def test_nwpu_wrong_structure_and_missing_folders(tmp_path: Path) -> None:
    root = tmp_path / "NWPU"
    write_json(root / "dataset_nwpu.json", [{"filename": "airplane_001.jpg"}])
    assert [(i.kind, i.reason) for i in NWPUCaptions(root)] == [("skip", "expected an object keyed by class name")]
    write_json(root / "dataset_nwpu.json", {"airplane": [nwpu_entry("airplane_001.jpg", 0, "train", ["A plane."])]})
    with pytest.raises(SourceError, match=r"no class folder such as airplane/ under NWPU_images/, images/, the root"):
        NWPUCaptions(root)
    write_image(root / "imgs" / "airplane" / "airplane_001.jpg")
    assert [s.rel_image for s in NWPUCaptions(root, images="imgs")] == ["imgs/airplane/airplane_001.jpg"]
    with pytest.raises(SourceError, match="expected dataset_nwpu.json"):
        NWPUCaptions(tmp_path / "NWPU" / "imgs")


# ---- registry --------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "cls"), [("rsicd", RSICD), ("ucm-captions", UCMCaptions),
                                           ("sydney-captions", SydneyCaptions), ("rsitmd", RSITMD),
                                           ("nwpu-captions", NWPUCaptions)])
def test_registry_and_class_attributes(name: str, cls: type) -> None:
    assert get_source(name) is cls
    assert cls.name == name and cls.task_kind == "caption" and cls.vocabulary == ()
    assert cls.description and "\n" not in cls.description


# ---- a real RSICD entry ----------------------------------------------------------------------

def test_real_rsicd_entry(tmp_path: Path, real_dir: Path) -> None:
    entry_file = real_dir / "rsicd" / "dataset_rsicd.images0.reconstructed.json"
    image = real_dir / "rsicd" / "images" / "stadium_1.jpg"
    (entry,) = json.loads(entry_file.read_text(encoding="utf-8"))["images"]
    root = tmp_path / "RSICD"
    write_json(root / "dataset_rsicd.json", {"images": [entry], "dataset": "rsicd"})
    (root / "RSICD_images").mkdir()
    shutil.copy(image, root / "RSICD_images" / "stadium_1.jpg")
    # the real entry is airport_1.jpg, the real image at hand is stadium_1.jpg: the entry's image is missing
    (issue,) = list(RSICD(root))
    assert issue.reason == ("images[0] (filename 'airport_1.jpg'): image not found (looked for "
                            "RSICD_images/airport_1.jpg, also with other image suffixes)")
    shutil.copy(image, root / "RSICD_images" / "airport_1.jpg")  # adapters never open images
    (sample,) = list(RSICD(root))
    # five identical padded sentences, lower case with " ." at the end, collapse to one caption
    assert [s["raw"] for s in entry["sentences"]] == [AIRPORT] * 5
    assert sample.captions == ("many planes are parked next to a long building in an airport.",)
    assert (sample.split, sample.image_id, sample.scene_class) == ("train", "airport_1", "airport")
    assert sample.provenance == {"annotation_file": "dataset_rsicd.json", "filename": "airport_1.jpg", "imgid": 0}


# ---- end to end through the CLI --------------------------------------------------------------

def make_ucm(root: Path) -> Path:
    write_json(root / "dataset.json", {"images": [
        karpathy("1.jpg", 0, "train", ["There is a piece of farmland ."]),
        karpathy("2.tif", 1, "test", ["Many cars are parked ."]),
        karpathy("3.tif", 2, "test", ["No image for this one ."]),
    ]})
    write_image(root / "imgs" / "1.tif")
    write_image(root / "imgs" / "2.tif")
    return root


def make_sydney(root: Path) -> Path:
    write_json(root / "dataset.json", {"images": [karpathy("1.tif", 0, "val", ["some buildings in the ceter ."])]})
    write_image(root / "images" / "1.tif")
    return root


def make_rsitmd(root: Path) -> Path:
    write_json(root / "dataset_RSITMD.json", {"images": [karpathy("port_1.tif", 0, "train", ["Boats in a port."]),
                                                         karpathy("port_2.tif", 1, "test", ["A quiet port."])]})
    write_image(root / "images" / "port_1.tif")
    write_image(root / "images" / "port_2.tif")
    return root


@pytest.mark.parametrize(("name", "make", "good", "splits"), [
    ("rsicd", make_rsicd, 4, {"train", "val", "test"}),
    ("ucm-captions", make_ucm, 2, {"train", "test"}),
    ("sydney-captions", make_sydney, 1, {"val"}),
    ("rsitmd", make_rsitmd, 2, {"train", "test"}),
    ("nwpu-captions", make_nwpu, 4, {"train", "val", "test"}),
])
def test_cli_dry_run(tmp_path: Path, name: str, make, good: int, splits: set[str]) -> None:
    _, records, manifest = dry_run(name, make(tmp_path / "data"), tmp_path / "out", tasks={'caption', 'multi_turn_reasoning', 'detailed_description'})
    assert records and {r["split"] for r in records} <= splits
    assert manifest["counts"]["samples"] == good
    assert manifest["issues"]["skipped"] == (1 if name == "ucm-captions" else 0)


def test_a_caption_holding_the_image_token_is_dropped_and_counted(tmp_path: Path) -> None:
    root = tmp_path / "RSICD"
    write_json(root / "dataset_rsicd.json", {"images": [
        karpathy("airport_1.jpg", 0, "train", [AIRPORT, "an <image> of planes at a terminal ."])]})
    write_image(root / "RSICD_images" / "airport_1.jpg")
    _, records, manifest = dry_run("rsicd", root, tmp_path / "out", "--config", str(_no_stages(tmp_path)))
    captions = [r["conversations"][1]["value"] for r in records if r["task"] == "caption"]
    assert captions == ["many planes are parked next to a long building in an airport."]
    assert manifest["issues"]["by_reason"] == {"warning: image_token_in_text": 1}
    assert manifest["issues"]["list"][0]["file"] == "RSICD_images/airport_1.jpg"


def _no_stages(folder: Path) -> Path:
    config = folder / "template-only.yaml"
    config.write_text("stages: []\n", encoding="utf-8")
    return config
