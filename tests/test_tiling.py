from __future__ import annotations

from pathlib import Path

from rsgpt4v.core.config import load_config
from rsgpt4v.core.schema import Obj, Sample
from rsgpt4v.imaging.geometry import bounding_box
from rsgpt4v.imaging.tiling import clip_to_image, make_scenes, window_starts, windows


def _obj(x0: float, y0: float, x1: float, y1: float, cat: str = "plane", line: int = 3) -> Obj:
    poly = ((x0, y0), (x1, y0), (x1, y1), (x0, y1))
    return Obj(category=cat, polygon=poly, box=bounding_box(poly), line=line)


def _sample(*objs: Obj) -> Sample:
    return Sample(source="dota", split="train", image_id="P1", image_path=Path("/x/P1.png"), rel_image="images/P1.png",
                  objects=objs, provenance={"label_file": "labelTxt/P1.txt"})


def test_window_starts_follow_the_devkit() -> None:
    assert window_starts(800, 1024, 200) == [0]
    assert window_starts(1024, 1024, 200) == [0]
    assert window_starts(1400, 1024, 200) == [0, 376]
    assert window_starts(3000, 1024, 200) == [0, 824, 1648, 1976]


def test_windows_are_row_major_and_inside_the_image() -> None:
    cfg = load_config().tiling
    assert windows(1400, 1100, cfg) == [(0, 0, 1024, 1024), (376, 0, 1400, 1024),
                                        (0, 76, 1024, 1100), (376, 76, 1400, 1100)]


def test_objects_kept_at_seventy_percent_and_marked_truncated() -> None:
    cfg = load_config().tiling
    inside = _obj(10, 10, 50, 50)
    mostly = _obj(1000, 100, 1040, 140)     # 24 of 40 px wide inside the first window: 60 %: dropped there
    cut = _obj(1010, 200, 1030, 240)       # 14 of 20 px inside: 70 %: kept, truncated
    scenes = make_scenes(_sample(inside, mostly, cut), [inside, mostly, cut], 1400, 1100, cfg)
    first = scenes[0]
    assert first.window == (0, 0, 1024, 1024)
    cats = [(o.box, o.truncated) for o in first.objects]
    assert ((10, 10, 50, 50), False) in cats
    assert ((1010, 200, 1024, 240), True) in cats
    assert all(o.box[0] != 1000 for o in first.objects)
    second = scenes[1]
    assert any(o.box == (1000, 100, 1040, 140) and not o.truncated for o in second.objects)


def test_empty_windows_are_skipped_for_annotated_images() -> None:
    cfg = load_config().tiling
    obj = _obj(10, 10, 50, 50)
    scenes = make_scenes(_sample(obj), [obj], 1400, 1100, cfg)
    assert [s.window for s in scenes] == [(0, 0, 1024, 1024)]


def test_clip_to_image_drops_outside_and_reports_clipped() -> None:
    inside, over, outside = _obj(10, 10, 50, 50), _obj(90, 90, 120, 120, line=4), _obj(200, 200, 220, 220, line=5)
    kept, issues = clip_to_image(_sample(inside, over, outside), 100, 100)
    assert [o.box for o in kept] == [(10, 10, 50, 50), (90, 90, 100, 100)]
    skip = [i for i in issues if i.kind == "skip"]
    assert len(skip) == 1 and skip[0].file == "labelTxt/P1.txt" and skip[0].line == 5
    assert "outside" in skip[0].reason
    assert any(i.kind == "warning" and "clipped" in i.reason for i in issues)
