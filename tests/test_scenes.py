"""The scene classification adapters (NWPU-RESISC45, AID, UC Merced) on synthetic class folders."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import dry_run, split_out, write_image

from rsgpt4v.core.schema import Sample
from rsgpt4v.sources import get_source
from rsgpt4v.sources.base import SourceError
from rsgpt4v.sources.scenes import AID, NWPURESISC45, UCMerced


def make_nwpu(root: Path) -> Path:
    for rel in ("airplane/airplane_001.jpg", "airplane/airplane_002.jpg", "baseball_diamond/baseball_diamond_001.jpg"):
        write_image(root / rel)
    return root


def make_aid(root: Path) -> Path:
    for rel in ("BaseballField/baseballfield_1.jpg", "BaseballField/baseballfield_2.jpg",
                "StorageTanks/storagetanks_1.jpg"):
        write_image(root / rel)
    return root


def make_ucm(root: Path) -> Path:
    for rel in ("Images/agricultural/agricultural00.tif", "Images/baseballdiamond/baseballdiamond00.tif",
                "Images/baseballdiamond/baseballdiamond01.tif"):
        write_image(root / rel)
    return root


def test_nwpu_resisc45_flat_layout(tmp_path: Path) -> None:
    root = make_nwpu(tmp_path / "NWPU-RESISC45")
    ds = NWPURESISC45(root)
    samples, issues = split_out(list(ds))
    assert issues == []
    assert [(s.split, s.image_id, s.rel_image, s.scene_class) for s in samples] == [
        ("train", "airplane_001", "airplane/airplane_001.jpg", "airplane"),
        ("train", "airplane_002", "airplane/airplane_002.jpg", "airplane"),
        ("train", "baseball_diamond_001", "baseball_diamond/baseball_diamond_001.jpg", "baseball diamond"),
    ]
    s = samples[0]
    assert (s.source, s.objects, s.gsd, s.annotated, s.provenance) == ("nwpu-resisc45", (), None, True,
                                                                       {"class_folder": "airplane"})
    assert s.image_path == (root / "airplane" / "airplane_001.jpg").resolve()
    assert ds.vocabulary == ("airplane", "baseball diamond")
    assert len(NWPURESISC45.vocabulary) == 45 and "thermal power station" in NWPURESISC45.vocabulary


def test_aid_camel_case_folders_in_an_extra_top_folder(tmp_path: Path) -> None:
    root = tmp_path / "AID"
    make_aid(root / "AID")
    (root / "readme.txt").write_text("AID")
    ds = AID(root)
    samples = list(ds)
    assert [(s.image_id, s.rel_image, s.scene_class) for s in samples] == [
        ("baseballfield_1", "AID/BaseballField/baseballfield_1.jpg", "baseball field"),
        ("baseballfield_2", "AID/BaseballField/baseballfield_2.jpg", "baseball field"),
        ("storagetanks_1", "AID/StorageTanks/storagetanks_1.jpg", "storage tanks"),
    ]
    assert ds.vocabulary == ("baseball field", "storage tanks") and len(AID.vocabulary) == 30


def test_nwpu_doubled_top_folder(tmp_path: Path) -> None:
    root = tmp_path / "NWPU-RESISC45"
    make_nwpu(root / "NWPU-RESISC45")
    assert [s.rel_image for s in NWPURESISC45(root)][0] == "NWPU-RESISC45/airplane/airplane_001.jpg"


@pytest.mark.parametrize("nesting, prefix", [("", "Images/"), ("UCMerced_LandUse", "UCMerced_LandUse/Images/")])
def test_uc_merced_images_folder(tmp_path: Path, nesting: str, prefix: str) -> None:
    root = tmp_path / "ucm"
    make_ucm(root / nesting)
    samples = list(UCMerced(root))
    assert [(s.image_id, s.rel_image, s.scene_class, s.gsd) for s in samples] == [
        ("agricultural00", f"{prefix}agricultural/agricultural00.tif", "agricultural", 0.3048),
        ("baseballdiamond00", f"{prefix}baseballdiamond/baseballdiamond00.tif", "baseball diamond", 0.3048),
        ("baseballdiamond01", f"{prefix}baseballdiamond/baseballdiamond01.tif", "baseball diamond", 0.3048),
    ]
    images = root / nesting / "Images"
    assert [s.rel_image for s in UCMerced(images)][0] == "agricultural/agricultural00.tif"  # root = Images/
    assert len(UCMerced.vocabulary) == 21 and "mobile home park" in UCMerced.vocabulary


def test_image_ids_are_prefixed_and_unique(tmp_path: Path) -> None:
    root = tmp_path / "NWPU"
    write_image(root / "cloud" / "001.jpg")
    for suffix in (".JPG", ".PNG", ".jpg", ".png"):
        write_image(root / "cloud" / f"cloud_7{suffix}")
    assert [s.image_id for s in NWPURESISC45(root)] == [
        "cloud_001", "cloud_7", "cloud_7_png", "cloud_7_jpg", "cloud_7_2"]


def test_non_images_empty_and_unknown_folders_are_warnings(tmp_path: Path) -> None:
    root = make_nwpu(tmp_path / "NWPU")
    (root / "airplane" / "Thumbs.db").write_bytes(b"\x00")
    (root / "airplane" / ".DS_Store").write_bytes(b"\x00")
    write_image(root / "airplane" / "._airplane_003.jpg")
    (root / "airplane" / "extra").mkdir()
    (root / "beach").mkdir()
    write_image(root / "Sea Ice" / "sea_ice_001.jpg")
    write_image(root / "volcano" / "volcano_001.jpg")
    (root / "__MACOSX" / "airplane").mkdir(parents=True)
    ds = NWPURESISC45(root)
    items = list(ds)
    summary = [(i.image_id, i.scene_class) if isinstance(i, Sample) else (i.kind, i.file, i.reason) for i in items]
    assert summary == [
        ("sea_ice_001", "sea ice"),  # a known class however its folder is written
        ("warning", "airplane", "4 non-image files ignored"),
        ("airplane_001", "airplane"),
        ("airplane_002", "airplane"),
        ("baseball_diamond_001", "baseball diamond"),
        ("warning", "beach", "empty class folder: no images"),
        ("warning", "volcano", "class folder 'volcano' is not one of the 45 NWPU-RESISC45 classes; kept as 'volcano'"),
        ("volcano_001", "volcano"),
    ]
    assert ds.vocabulary == ("sea ice", "airplane", "baseball diamond", "beach", "volcano")


def test_train_val_test_subfolders_are_splits(tmp_path: Path) -> None:
    root = tmp_path / "AID_split"
    make_aid(root / "train")
    write_image(root / "val" / "Beach" / "beach_1.jpg")
    write_image(root / "test" / "Beach" / "beach_2.jpg")
    assert [(s.split, s.image_id) for s in AID(root)] == [
        ("train", "baseballfield_1"), ("train", "baseballfield_2"), ("train", "storagetanks_1"),
        ("val", "beach_1"), ("test", "beach_2")]
    assert [s.image_id for s in AID(root, split="test")] == ["beach_2"]
    with pytest.raises(SourceError, match=r"no split 'trainval' .*found: train, val, test"):
        AID(root, split="trainval")


def test_unrecognised_roots_raise(tmp_path: Path) -> None:
    (tmp_path / "empty" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "b").mkdir()
    with pytest.raises(SourceError, match=r"does not look like AID: .*BaseballField/baseballfield_1.jpg"):
        AID(tmp_path / "empty")
    with pytest.raises(SourceError, match="does not look like UC Merced"):
        UCMerced(tmp_path / "empty")
    with pytest.raises(SourceError, match="not a folder"):
        NWPURESISC45(tmp_path / "missing")


def test_registry() -> None:
    assert get_source("nwpu-resisc45") is NWPURESISC45 and get_source("aid") is AID and get_source("ucm") is UCMerced
    assert {NWPURESISC45.task_kind, AID.task_kind, UCMerced.task_kind} == {"classification"}


@pytest.mark.parametrize("source, make", [("nwpu-resisc45", make_nwpu), ("aid", make_aid), ("ucm", make_ucm)])
def test_cli_dry_run(tmp_path: Path, source: str, make) -> None:
    _, records, manifest = dry_run(source, make(tmp_path / "data"), tmp_path / "out", tasks={'classification', 'caption', 'multi_turn_reasoning', 'detailed_description'})
    assert records and {r["split"] for r in records} == {"train"}
    assert manifest["counts"]["samples"] == 3
