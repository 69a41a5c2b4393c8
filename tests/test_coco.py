"""The COCO adapter on synthetic COCO-format json files and image folders."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import dry_run, split_out, write_image, write_json

from rsgpt4v.core.issue_codes import IssueCode
from rsgpt4v.core.schema import Issue, Sample
from rsgpt4v.sources import get_source
from rsgpt4v.sources.base import SourceError
from rsgpt4v.sources.coco import COCO, split_of

CATEGORIES = [{"supercategory": "vehicle", "id": 3, "name": "Small-Vehicle"},
              {"supercategory": "vehicle", "id": 17, "name": " airplane "}]


def make_coco(root: Path) -> Path:
    """COCO 2017's own layout, with category ids that skip and a captions file beside the instances."""
    write_json(root / "annotations" / "instances_train2017.json", {
        "info": {"year": 2017}, "licenses": [],
        "images": [{"id": 9, "file_name": "000000000009.jpg", "width": 8, "height": 8},
                   {"id": 25, "file_name": "000000000025.jpg", "width": 8, "height": 8}],
        "annotations": [
            {"id": 1, "image_id": 9, "category_id": 17, "bbox": [1, 2, 3, 4], "area": 12, "iscrowd": 0,
             "segmentation": [[1, 2, 4, 2, 4, 6]]},
            {"id": 2, "image_id": 9, "category_id": 3, "bbox": [0.5, 0.5, 2.25, 1.5], "area": 3.4, "iscrowd": 0},
            {"id": 3, "image_id": 9, "category_id": 3, "bbox": [0, 0, 8, 8], "area": 64, "iscrowd": 1,
             "segmentation": {"counts": [0, 64], "size": [8, 8]}},
        ],
        "categories": CATEGORIES,
    })
    write_json(root / "annotations" / "captions_train2017.json", {"images": [], "annotations": []})
    write_json(root / "annotations" / "instances_val2017.json", {
        "images": [{"id": 139, "file_name": "000000000139.jpg", "width": 8, "height": 8}],
        "annotations": [{"id": 4, "image_id": 139, "category_id": 3, "bbox": [1, 1, 2, 2], "iscrowd": 0}],
        "categories": CATEGORIES[:1],
    })
    write_image(root / "train2017" / "000000000009.jpg")
    write_image(root / "train2017" / "000000000025.jpg")
    write_image(root / "val2017" / "000000000139.jpg")
    return root


def test_coco_2017_layout(tmp_path: Path) -> None:
    root = make_coco(tmp_path / "coco")
    ds = COCO(root)
    assert ds.vocabulary == () and COCO.vocabulary == ()
    items = list(ds)
    samples, issues = split_out(items)
    assert [(i.kind, i.file, i.reason) for i in issues] == [
        ("warning", "annotations/instances_train2017.json", "1 crowd annotations (iscrowd=1) dropped")]
    assert [(s.split, s.image_id, s.rel_image, len(s.objects)) for s in samples] == [
        ("train", "000000000009", "train2017/000000000009.jpg", 2),
        ("train", "000000000025", "train2017/000000000025.jpg", 0),
        ("val", "000000000139", "val2017/000000000139.jpg", 1),
    ]
    plane, car = samples[0].objects
    assert (plane.category, car.category) == ("airplane", "small-vehicle")
    assert plane.polygon == ((1.0, 2.0), (4.0, 2.0), (4.0, 6.0), (1.0, 6.0)) and plane.box == (1.0, 2.0, 4.0, 6.0)
    assert car.box == (0.5, 0.5, 2.75, 2.0) and car.line is None
    assert samples[0].provenance == {"label_file": "annotations/instances_train2017.json", "coco_image_id": 9}
    assert all(s.annotated and s.gsd is None and s.image_path.is_absolute() for s in samples)
    assert ds.vocabulary == ("small-vehicle", "airplane")  # filled while reading, in first-seen order
    assert [s.image_id for s in COCO(root, split="val")] == ["000000000139"]


def test_coco_bad_entries_become_issues(tmp_path: Path) -> None:
    root = tmp_path / "coco"
    write_json(root / "annotations" / "instances_train.json", {
        "images": [{"id": 1, "file_name": "a.jpg"}, {"id": 1, "file_name": "b.jpg"}, {"file_name": "c.jpg"},
                   {"id": 2, "file_name": "../outside.jpg"}, {"id": 3, "file_name": "missing.jpg"},
                   "junk", {"id": True, "file_name": "d.jpg"}, {"id": "x4", "file_name": "d.jpg"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "bbox": [0, 0, 4, 4]},
            {"id": 11, "image_id": 99, "category_id": 1, "bbox": [0, 0, 4, 4]},
            {"id": 12, "image_id": 1, "category_id": 7, "bbox": [0, 0, 4, 4]},
            {"id": 13, "image_id": 1, "category_id": 1, "bbox": [0, 0, 4]},
            {"id": 14, "image_id": 1, "category_id": 1, "bbox": [0, 0, 0, 4]},
            {"id": 15, "image_id": 1, "category_id": 1, "bbox": [0, 0, 0.5, 0.5]},
            {"id": 10, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4]},
            [1, 2],
            {"id": 16, "image_id": "x4", "category_id": 2, "bbox": [1, 1, 2, 2]},
        ],
        "categories": [{"id": 1, "name": "ship"}, {"id": 1, "name": "boat"}, {"id": 2, "name": "Harbor"}, {"id": 5}],
    })
    write_image(root / "images" / "a.jpg")
    write_image(root / "images" / "b.jpg")
    write_image(root / "images" / "d.png")  # the json says d.jpg
    write_image(tmp_path / "outside.jpg")
    items = list(COCO(root))
    summary = [(i.split, i.image_id, [o.category for o in i.objects]) if isinstance(i, Sample) else (i.kind, i.reason)
               for i in items]
    assert summary == [
        ("skip", "categories[1]: duplicate category id 1"),
        ("skip", "categories[3]: needs an int or str id and a name"),
        ("skip", "annotations[1] (id 11): image_id 99 is not in images"),
        ("skip", "annotations[2] (id 12): category_id 7 is not in categories"),
        ("skip", "annotations[3] (id 13): malformed bbox [0, 0, 4]: expected [x, y, width, height]"),
        ("skip", "annotations[4] (id 14): degenerate bbox [0, 0, 0, 4] (width 0, height 4)"),
        ("skip", "annotations[5] (id 15): degenerate bbox [0, 0, 0.5, 0.5] (width 0.5, height 0.5)"),
        ("skip", "annotations[6] (id 10): duplicate annotation id"),
        ("skip", "annotations[7]: not an object"),
        ("train", "a", ["ship"]),
        ("skip", "images[1] (file_name 'b.jpg'): duplicate image id 1"),
        ("skip", "images[2] (file_name 'c.jpg'): needs an int or str id and a file_name"),
        ("skip", "images[3] (file_name '../outside.jpg'): file_name climbs out of the image folder"),
        ("skip", "images[4] (file_name 'missing.jpg'): image file not found (looked in images/, ./)"),
        ("skip", "images[5]: needs an int or str id and a file_name"),
        ("skip", "images[6] (file_name 'd.jpg'): needs an int or str id and a file_name"),
        ("train", "d", ["harbor"]),
    ]
    assert all(i.file == "annotations/instances_train.json" and i.line is None for i in items if isinstance(i, Issue))
    assert [i.code for i in items if isinstance(i, Issue)] == [
        IssueCode.DUPLICATE_ID, IssueCode.MALFORMED_ENTRY, IssueCode.BROKEN_REFERENCE, IssueCode.BROKEN_REFERENCE,
        IssueCode.MALFORMED_ENTRY, IssueCode.DEGENERATE_BOX, IssueCode.DEGENERATE_BOX, IssueCode.DUPLICATE_ID,
        IssueCode.MALFORMED_ENTRY, IssueCode.DUPLICATE_ID, IssueCode.MALFORMED_ENTRY, IssueCode.PATH_OUTSIDE_FOLDER,
        IssueCode.IMAGE_MISSING, IssueCode.MALFORMED_ENTRY, IssueCode.MALFORMED_ENTRY]
    d = [i for i in items if isinstance(i, Sample)][-1]
    assert d.rel_image == "images/d.png" and d.provenance["coco_image_id"] == "x4"


def test_coco_unreadable_files(tmp_path: Path) -> None:
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "instances_train.json").write_text('{"images": [\n  {"id": 1,\n  oops}\n]}')
    write_json(root / "annotations" / "instances_val.json", [{"id": 1}])
    assert [(i.kind, i.file, i.line, i.reason) for i in COCO(root)] == [
        ("skip", "annotations/instances_train.json", 3,
         "invalid JSON: Expecting property name enclosed in double quotes"),
        ("skip", "annotations/instances_val.json", None, 'not a COCO annotation file: no "images" list'),
    ]


def test_coco_test_info_file_is_unannotated_and_subfolders_in_file_name(tmp_path: Path) -> None:
    root = tmp_path / "coco"
    write_json(root / "annotations" / "image_info_test-dev2017.json", {
        "images": [{"id": 1, "file_name": "scene1/tile.jpg"}, {"id": 2, "file_name": "scene2/tile.jpg"}],
        "categories": CATEGORIES})
    write_image(root / "images" / "scene1" / "tile.jpg")
    write_image(root / "images" / "scene2" / "tile.jpg")
    samples = list(COCO(root))
    assert [(s.split, s.image_id, s.rel_image, s.annotated) for s in samples] == [
        ("test", "tile", "images/scene1/tile.jpg", False), ("test", "tile_2", "images/scene2/tile.jpg", False)]


def test_coco_options_and_root_level_json(tmp_path: Path) -> None:
    root = tmp_path / "dior_coco"
    for name in ("DIOR_train.json", "DIOR_test.json", "DIOR_val.json"):
        write_json(root / name, {"images": [{"id": 1, "file_name": "00001.jpg"}], "annotations": [],
                                 "categories": [{"id": 0, "name": "Expressway-toll-station"}]})
    write_image(root / "JPEGImages" / "00001.jpg")
    assert [s.split for s in COCO(root, images=Path("JPEGImages"))] == ["train", "val", "test"]
    (one,) = list(COCO(root, annotations=root / "DIOR_val.json", images=root / "JPEGImages"))
    assert (one.split, one.rel_image, one.objects) == ("val", "JPEGImages/00001.jpg", ())
    (missing,) = list(COCO(root, split="train"))  # without images=, JPEGImages/ is not probed
    assert missing.reason == "images[0] (file_name '00001.jpg'): image file not found (looked in ./)"
    with pytest.raises(SourceError, match="annotations=nope.json does not exist"):
        COCO(root, annotations=Path("nope.json"))
    with pytest.raises(SourceError, match="images=pics is not a folder"):
        COCO(root, images=Path("pics"))


def test_coco_split_names() -> None:
    assert [split_of(s) for s in ("instances_train2017", "instances_val2017", "image_info_test-dev2017",
                                  "instances_trainval35k", "instances_minival2014", "annotations")] == [
        "train", "val", "test", "trainval", "val", "annotations"]


def test_coco_colliding_split_names_keep_their_stems(tmp_path: Path) -> None:
    root = tmp_path / "coco"
    for stem in ("instances_minival2014", "instances_valminusminival2014"):
        write_json(root / "annotations" / f"{stem}.json", {"images": [], "annotations": [], "categories": []})
    assert [f.split for f in COCO(root).files] == ["instances_minival2014", "instances_valminusminival2014"]


def test_coco_errors_and_registry(tmp_path: Path) -> None:
    root = make_coco(tmp_path / "coco")
    with pytest.raises(SourceError, match=r"no split 'test' .*found: train, val"):
        COCO(root, split="test")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="holds no COCO json"):
        COCO(tmp_path / "empty")
    assert get_source("coco") is COCO and COCO.task_kind == "detection"


def test_coco_cli_dry_run(tmp_path: Path) -> None:
    _, records, manifest = dry_run("coco", make_coco(tmp_path / "coco"), tmp_path / "out", tasks={'presence', 'detection', 'region_description', 'multi_turn_reasoning', 'caption', 'counting', 'detailed_description'})
    assert records and {r["split"] for r in records} <= {"train", "val"}
    assert manifest["counts"]["samples"] == 3
