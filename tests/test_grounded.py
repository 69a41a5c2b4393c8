"""Grounded descriptions: the global stage's mentions become phrases with their objects' boxes.

Each box flavour's text is read back the way the model family's own code reads a phrase with its
boxes, written here from that code's rules:
- GeoChat `geochat_demo.py` `extract_substrings`: cut after the last `}`, `<p>(.*?)\\}(?!<)`, split
  at `</p>` into the phrase and its boxes, the boxes at `<delim>` (or `}{`), integers `-?\\d+`, the
  angle last; a value is a percentage of the side.
- Qwen2-VL (Qwen-VL's `to_list_format` / `_fetch_all_box_with_ref`, with the Qwen2-VL tokens): the
  text is cut into `<|object_ref_start|>..<|object_ref_end|>` refs and
  `<|box_start|>(x1,y1),(x2,y2)<|box_end|>` boxes; a box belongs to the ref just before it (and the
  boxes that follow it, as `from_list_format` writes one ref then all its boxes); values in [0, 1000).
- LLaVA, Qwen2.5-VL and pixel: the phrase, then its boxes `[x1, y1, x2, y2]` (0-1 of LLaVA's padded
  square, pixels).
Every box of such a record is the pixel box of one ground-truth object of its window.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from rsgpt4v.core.config import load_config
from rsgpt4v.core.responses import GlobalResponse
from rsgpt4v.core.schema import Sample, Scene
from rsgpt4v.imaging.geometry import bounding_box, rect_corners
from rsgpt4v.imaging.tiling import clip_to_image, make_scenes
from rsgpt4v.language.mentions import mentions, plain, stray
from rsgpt4v.quality.qc import QualityChecker
from rsgpt4v.sources import get_source, sample_root
from rsgpt4v.sources.dota import VOCABULARIES
from rsgpt4v.tasks import window_box
from rsgpt4v.tools.export import export

FLAVOURS = ["llava", "geochat", "qwen2vl", "qwen25vl", "pixel"]


def _records(folder: Path) -> list[dict]:
    rows = [json.loads(line) for f in sorted(folder.glob("*.jsonl")) for line in f.read_text().splitlines()]
    return [{**r, "meta": json.loads(r["meta"])} if isinstance(r["meta"], str) else r for r in rows]


def _truth(root: Path) -> dict[str, set[tuple[float, ...]]]:
    """Scene key -> the pixel boxes of the window's ground-truth objects, as records write them."""
    boxes: dict[str, set[tuple[float, ...]]] = {}
    for sample in get_source("dota")(root):
        if not isinstance(sample, Sample):
            continue
        with Image.open(sample.image_path) as im:
            width, height = im.size
        objects, _ = clip_to_image(sample, width, height)
        for scene in make_scenes(sample, objects, width, height, load_config().tiling):
            boxes[scene.key] = {window_box(scene, o).box for o in scene.objects}
    return boxes


# ---- the consumers' parsers --------------------------------------------------------------------

def geochat_mentions(answer: str, w: int, h: int, space: str) -> list[tuple[str, tuple[float, ...]]]:
    index = answer.rfind("}")
    if index != -1:
        answer = answer[:index + 1]
    side = max(w, h) if space == "square" else None
    sx, sy = (side, side) if side else (w, h)
    ox, oy = ((side - w) // 2, (side - h) // 2) if side else (0, 0)
    found = []
    for match in re.findall(r"<p>(.*?)\}(?!<)", answer):
        phrase, rest = match.split("</p>")
        for part in rest.replace("}{", "}<delim>{").split("<delim>"):
            x1, y1, x2, y2, angle = (int(v) for v in re.findall(r"-?\d+", part))
            rect = ((x1 + x2) / 200 * sx - ox, (y1 + y2) / 200 * sy - oy, (x2 - x1) / 100 * sx,
                    (y2 - y1) / 100 * sy, float(angle))
            found.append((phrase, bounding_box(rect_corners(rect))))
    return found


_QWEN_PART = re.compile(r"<\|object_ref_start\|>(.*?)<\|object_ref_end\|>|<\|box_start\|>(.*?)<\|box_end\|>")


def qwen2vl_mentions(answer: str, w: int, h: int) -> list[tuple[str, tuple[float, ...]]]:
    found, ref = [], None
    last_end = 0
    for m in _QWEN_PART.finditer(answer):
        if answer[last_end:m.start()].strip():
            ref = None          # text between: the boxes that follow belong to no ref
        last_end = m.end()
        if m.group(1) is not None:
            ref = m.group(1).strip()
            continue
        x1, y1, x2, y2 = map(int, m.group(2).replace("(", "").replace(")", "").split(","))
        assert all(0 <= v < 1000 for v in (x1, y1, x2, y2))
        found.append((ref, ((x1 + 0.5) / 1000 * w, (y1 + 0.5) / 1000 * h, (x2 + 0.5) / 1000 * w,
                            (y2 + 0.5) / 1000 * h)))
    return found


def phrase_first_mentions(answer: str, phrases: list[str], fmt: str, w: int, h: int,
                          space: str) -> list[tuple[str, tuple[float, ...]]]:
    number = r"[\d.]+" if fmt == "llava" else r"\d+"
    box = rf"\[({number}), ({number}), ({number}), ({number})\]"
    side = max(w, h) if space == "square" and fmt == "llava" else None
    sx, sy = (side, side) if side else ((1, 1) if fmt != "llava" else (w, h))
    ox, oy = ((side - w) // 2, (side - h) // 2) if side else (0, 0)
    found: list[tuple[str, tuple[float, ...]]] = []
    for run in re.finditer(rf"{box}(?:, {box})*", answer):
        phrase = phrases[len(found)]
        assert answer[:run.start()].endswith(phrase + " "), (phrase, answer[:run.start()][-60:])
        for b in re.finditer(box, run.group(0)):
            v = [float(x) for x in b.groups()]
            found.append((phrase, (v[0] * sx - ox, v[1] * sy - oy, v[2] * sx - ox, v[3] * sy - oy)))
    return found


def decoded(record: dict, fmt: str) -> list[tuple[str, tuple[float, ...]]]:
    meta = record["meta"]
    w, h = meta["window"][2] - meta["window"][0], meta["window"][3] - meta["window"][1]
    answer = record["conversations"][1]["value"]
    if fmt == "geochat":
        return geochat_mentions(answer, w, h, meta["box_space"])
    if fmt == "qwen2vl":
        return qwen2vl_mentions(answer, w, h)
    return phrase_first_mentions(answer, meta["box_labels"], fmt, w, h, meta["box_space"])


# ---- the records -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def truth() -> dict[str, set[tuple[float, ...]]]:
    return _truth(sample_root("dota"))


@pytest.mark.parametrize("fmt", FLAVOURS)
def test_every_box_is_a_ground_truth_box_and_reads_back_with_its_phrase(sample_build: Path, tmp_path: Path,
                                                                         truth: dict, fmt: str) -> None:
    export(sample_build, tmp_path / fmt, "llava-jsonl", fmt, task_tokens=fmt == "geochat")
    grounded = [r for r in _records(tmp_path / fmt) if r["task"] == "grounded_description"]
    windows = {r["id"].rsplit("/", 1)[0] for r in _records(sample_build) if r["task"] == "region_description"}
    assert grounded and {r["id"].rsplit("/", 1)[0] for r in grounded} == windows
    for r in grounded:
        meta = r["meta"]
        key = r["id"].rsplit("/", 1)[0]
        assert {tuple(b) for b in meta["boxes"]} <= truth[key]          # ground truth, in pixels
        w, h = meta["window"][2] - meta["window"][0], meta["window"][3] - meta["window"][1]
        side = max(w, h) if meta["box_space"] == "square" else max(w, h)
        step = {"llava": 0.01 * side, "geochat": 0.01 * side, "qwen2vl": 0.001 * side}.get(fmt, 0.5)
        read = decoded(r, fmt)
        assert [p for p, _ in read] == meta["box_labels"]               # each box with its own phrase
        for (_, got), want in zip(read, meta["boxes"]):
            assert max(abs(a - b) for a, b in zip(got, want)) <= step + 1e-6, (fmt, got, want)
        if fmt == "geochat":
            assert r["conversations"][0]["value"].startswith("<image>\n[grounding] ")


def test_the_words_are_the_detailed_description(sample_build: Path) -> None:
    records = _records(sample_build)
    described = {r["id"].rsplit("/", 1)[0]: r["conversations"][1]["value"] for r in records
                 if r["task"] == "detailed_description"}
    for r in (r for r in records if r["task"] == "grounded_description"):
        text = r["conversations"][1]["value"]
        for phrase in r["meta"]["box_labels"]:
            assert phrase in text
        without_boxes = re.sub(r" \[[\d., ]+\](?:, \[[\d., ]+\])*", "", text)
        assert without_boxes == described[r["id"].rsplit("/", 1)[0]]
        assert "[" not in described[r["id"].rsplit("/", 1)[0]]


def test_export_goes_through_every_flavour_and_back_to_the_same_text(sample_build: Path, tmp_path: Path) -> None:
    original = {r["id"]: r for r in _records(sample_build) if r["task"] == "grounded_description"}
    folder = sample_build
    for fmt in ["geochat", "qwen25vl", "qwen2vl", "pixel", "llava"]:
        dest = tmp_path / fmt
        report = export(folder, dest, "llava-jsonl", fmt, box_space="square")
        assert report.skipped == 0 and report.bad_lines == 0, report.problems
        folder = dest
    back = {r["id"]: r for r in _records(folder) if r["task"] == "grounded_description"}
    assert {k: v["conversations"] for k, v in back.items()} == {k: v["conversations"] for k, v in original.items()}


def test_a_phrase_missing_before_its_boxes_is_named_not_exported(sample_build: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "images").symlink_to(sample_build / "images")
    lines, damaged_one = [], False
    for r in _records(sample_build):
        if r["task"] == "grounded_description" and not damaged_one:
            r["conversations"][1]["value"] = r["conversations"][1]["value"].replace(r["meta"]["box_labels"][0], "it")
            damaged_one = True
        lines.append(json.dumps(r))
    (damaged / "train.jsonl").write_text("\n".join(lines) + "\n")
    report = export(damaged, tmp_path / "geo", "llava-jsonl", "geochat")
    assert report.skipped == 1 and "is not written after its phrase" in report.problems[0]


# ---- QC of the mentions ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def p9001() -> Scene:
    sample = next(s for s in get_source("dota")(sample_root("dota")) if isinstance(s, Sample)
                  and s.image_id == "P9001")
    with Image.open(sample.image_path) as im:
        width, height = im.size
    objects, _ = clip_to_image(sample, width, height)
    return make_scenes(sample, objects, width, height, load_config().tiling)[0]


BASE = ("This top-down image shows an airport apron with planes parked along the terminal and small vehicles "
        "between the stands, on grey concrete with painted guide lines. ")


def _check(scene: Scene, description: str, caption: str = "An airport apron with parked planes.") -> str | None:
    qc = QualityChecker(load_config().qc, lambda: VOCABULARIES["2.0"], exhaustive_labels=True)
    problem = qc.scene_text(scene)(GlobalResponse(caption=caption, description=BASE + description))
    return None if problem is None else problem.kind


def test_qc_reads_the_mentions(p9001: Scene) -> None:
    planes = [i for i, o in enumerate(p9001.objects, 1) if o.category == "plane"]
    cars = [i for i, o in enumerate(p9001.objects, 1) if o.category == "small-vehicle"]
    assert _check(p9001, f"[The plane at the middle left]({planes[0]}) is parked nose-in.") is None
    assert _check(p9001, f"[Two planes]({planes[0]}, {planes[1]}) stand side by side.") is None
    assert _check(p9001, f"[A white car]({cars[0]}) waits beside the stands.") is None
    # an id the window does not have, a word naming another kind, a stray bracket or id, a caption with ids
    assert _check(p9001, f"[The plane]({len(p9001.objects) + 1}) is parked.") == "qc_mention"
    assert _check(p9001, f"[The plane at the top]({cars[0]}) is parked.") == "qc_mention"
    assert _check(p9001, "The plane (3) is parked.") == "qc_mention"
    assert _check(p9001, "[The plane] is parked.") == "qc_mention"
    assert _check(p9001, "", caption=f"An apron with [a plane]({planes[0]}).") == "qc_mention"
    # the rest of QC reads the text as a reader sees it: no ids, the words kept
    assert _check(p9001, f"[The plane]({planes[0]}) is parked, according to the notes.") == "qc_meta_talk"


def test_mentions_and_their_plain_text() -> None:
    text = "Two piers extend south: [a long, wide one](12) and [two  narrow ones](13, 14 ) on the right."
    assert [(m.phrase, m.ids) for m in mentions(text)] == [("a long, wide one", (12,)), ("two narrow ones", (13, 14))]
    assert plain(text) == "Two piers extend south: a long, wide one and two narrow ones on the right."
    assert stray(text) is None and stray("a ship (3) moored") == "(3)" and stray("a ship] moored") == "]"
