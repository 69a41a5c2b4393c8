"""The output read the way the consumers' own code reads it, on the bundled sample and the real DOTA window.

Each check is written here from the consumer's documented behaviour, not copied from it:
- LLaVA `llava/train/train.py`: `json.load` of `--data_path`, `image` joined to `--image_folder`,
  human/gpt turns, `<image>` in the first turn, and `expand2square` (the image pasted at
  `((side - w) // 2, (side - h) // 2)` on a square of side max(w, h)) before boxes mean anything.
- GeoChat `geochat_demo.py` `extract_substrings` (`<p>(.*?)\\}(?!<)` after cutting at the last `}`),
  then `</p>` and `<delim>` splits and `-?\\d+` integers, angle last; TEOChat's parser (`<(\\d+)>`
  per box, five numbers, so it drops a negative value: a rectangle reaching past the left or top
  edge, which GeoChat's own parser reads); the strict `{<d><d><d><d>|<θ>}` form.
- Qwen2-VL: `<|object_ref_start|>phrase<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>`
  with integers in [0, 1000); Qwen2.5-VL: `{"bbox_2d": [...], "label": ...}` in pixels.
- LLaMA-Factory: `dataset_info.json` entries (file_name, formatting sharegpt, columns, tags), the
  sharegpt converter's role alternation, and images joined to `media_dir` (default: `dataset_dir`).
- Hugging Face `datasets`: `load_dataset("json")` on the json exports, `load_dataset(folder)` on hf.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.imaging.geometry import oriented_rect, rect_corners
from rsgpt4v.tools.export import export

SAMPLE_DOTA = Path(__file__).resolve().parents[1] / "rsgpt4v" / "sample_data" / "dota"
BOX_TASKS = {"detection", "grounding", "region_description"}
_builds: dict[str, Path] = {}


def _build(factory, key: str, *args: str) -> Path:
    if key not in _builds:
        out = factory.mktemp(key) / "out"
        result = CliRunner().invoke(app, ["build", "--dry-run", "--no-progress", "--source", "dota", "--out",
                                          str(out), *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        _builds[key] = out
    return _builds[key]


def _lines(path: Path) -> list[dict]:
    """The records of a JSONL file, `meta` decoded where an export wrote it as a JSON string."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [{**r, "meta": json.loads(r["meta"])} if isinstance(r.get("meta"), str) else r for r in rows]


def _records(out: Path) -> list[dict]:
    return [r for f in sorted(out.glob("*.jsonl")) for r in _lines(f)]


@pytest.fixture(params=["sample", "real"])
def build(request, tmp_path_factory) -> Path:
    """The bundled sample, and the real 712 x 557 DOTA window P1888 (skipped where absent)."""
    if request.param == "sample":
        return _build(tmp_path_factory, "sample", "--sample")
    real = request.getfixturevalue("real_dir")
    return _build(tmp_path_factory, "real", "--root", str(real / "dota_v1.0"))


@pytest.fixture
def real_build(real_dir: Path, tmp_path_factory) -> Path:
    return _build(tmp_path_factory, "real", "--root", str(real_dir / "dota_v1.0"))


@pytest.fixture
def with_test(tmp_path_factory) -> Path:
    """The sample with a test split of unlabelled images: its records hold no boxes at all."""
    if "with_test" in _builds:
        return _builds["with_test"]
    root = tmp_path_factory.mktemp("dota_test") / "dota"
    shutil.copytree(SAMPLE_DOTA, root)
    (root / "test" / "images").mkdir(parents=True)
    shutil.copy(root / "val" / "images" / "P9004.png", root / "test" / "images" / "P9005.png")
    return _build(tmp_path_factory, "with_test", "--root", str(root))


# ---- LLaVA -------------------------------------------------------------------------------------

def _expand2square(im: Image.Image, background: tuple[int, int, int]) -> tuple[Image.Image, tuple[int, int]]:
    w, h = im.size
    side = max(w, h)
    offset = ((side - w) // 2, (side - h) // 2)
    canvas = Image.new(im.mode, (side, side), background)
    canvas.paste(im, offset)
    return canvas, offset


def test_llava_loads_the_llava_json_export_not_the_build_jsonl(build: Path, tmp_path: Path) -> None:
    with pytest.raises(json.JSONDecodeError, match="Extra data"):
        json.load(open(build / "train.jsonl", encoding="utf-8"))  # JSON Lines, as the README says
    dest = tmp_path / "llava"
    report = export(build, dest, "llava-json")
    for split, n in report.records.items():
        data = json.load(open(dest / f"{split}.json", encoding="utf-8"))
        assert isinstance(data, list) and len(data) == n == len(_lines(build / f"{split}.jsonl"))
        for item in data:
            assert isinstance(item["id"], str) and os.path.isfile(os.path.join(dest, item["image"]))
            turns = item["conversations"]
            assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2) and len(turns) % 2 == 0
            values = [t["value"] for t in turns]
            assert values[0].startswith("<image>\n") and sum(v.count("<image>") for v in values) == 1


def test_llava_boxes_sit_on_the_expand2square_canvas(real_build: Path) -> None:
    """P1888 is 712 x 557: on LLaVA's padded 712 x 712 canvas the image starts 77 px down."""
    records = [r for r in _records(real_build) if r["task"] in BOX_TASKS]
    assert records and all(r["meta"]["box_space"] == "square" for r in records)
    errors_square, errors_image = [], []
    for r in records:
        with Image.open(real_build / r["image"]) as im:
            w, h = im.size
            canvas, (ox, oy) = _expand2square(im.convert("RGB"), (122, 116, 104))
        side = canvas.size[0]
        assert (w, h, side, ox, oy) == (712, 557, 712, 0, 77)
        found = [m for t in r["conversations"] for m in re.finditer(r"\[([\d.]+), ([\d.]+), ([\d.]+), ([\d.]+)\]",
                                                                     t["value"])]
        assert len(found) == len(r["meta"]["boxes"])
        for m, (x1, y1, x2, y2) in zip(found, r["meta"]["boxes"]):
            u = [float(v) for v in m.groups()]
            on_canvas = [u[0] * side, u[1] * side, u[2] * side, u[3] * side]
            truth = [x1 + ox, y1 + oy, x2 + ox, y2 + oy]
            errors_square += [a - b for a, b in zip(on_canvas, truth)]
            errors_image += [u[1] * h - y1, u[3] * h - y2]
    # Two decimals are a 7.12 px grid on this canvas: each edge within half of it, and no shift at all.
    assert max(abs(e) for e in errors_square) <= 0.005 * 712 + 1e-6
    assert abs(sum(errors_square) / len(errors_square)) < 1.0
    # Read as fractions of the unpadded image (the old output), the same boxes land tens of px off.
    assert max(abs(e) for e in errors_image) > 20


# ---- GeoChat -----------------------------------------------------------------------------------

STRICT = re.compile(r"\{<-?\d+><-?\d+><-?\d+><-?\d+>\|<-?\d+>\}")


def _geochat_demo_boxes(answer: str) -> list[tuple[str, list[int]]]:
    """GeoChat's demo: cut after the last '}', `<p>(.*?)\\}(?!<)`, split on </p> and <delim>, integers."""
    index = answer.rfind("}")
    if index != -1:
        answer = answer[:index + 1]
    boxes = []
    for match in re.findall(r"<p>(.*?)\}(?!<)", answer):
        obj, rest = match.split("</p>")  # a ValueError here is the demo's "wrong string"
        for part in rest.replace("}{", "}<delim>{").split("<delim>"):
            ints = [int(v) for v in re.findall(r"-?\d+", part)]
            if len(ints) == 5:
                boxes.append((obj, ints))
    return boxes


def _teochat_boxes(build: str) -> list[list[int]]:
    """TEOChat's GeoChat parser: strip braces, split on '}{', numbers in angle brackets, five per box."""
    segments = build.strip("{}").split("}{")
    return [list(map(int, re.findall(r"<(\d+)>", seg))) for seg in segments]


def test_geochat_boxes_read_by_geochat_and_teochat_parsers(build: Path, tmp_path: Path) -> None:
    dest = tmp_path / "geo"
    export(build, dest, "llava-jsonl", "geochat", task_tokens=True)
    answers_with_boxes = angled = 0
    for r in _records(dest):
        meta = r["meta"]
        assert meta["box_format"] == "geochat" and meta["box_space"] == "square"
        labels = iter(meta["box_labels"])
        for turn in r["conversations"]:
            value = turn["value"]
            braces = re.findall(r"\{[^{}]*\}", value)
            assert all(STRICT.fullmatch(b) for b in braces), braces
            expected = [next(labels) for _ in braces]
            for b in braces:
                five = _teochat_boxes(b)[0]
                if "-" not in b:
                    assert len(five) == 5 and 0 <= five[4] < 90
                angled += five[-1] != 0
            if turn["from"] == "gpt" and braces:
                answers_with_boxes += 1
                recovered = _geochat_demo_boxes(value)
                assert [obj for obj, _ in recovered] == expected
                assert [ints for _, ints in recovered] == [[int(v) for v in re.findall(r"-?\d+", b)] for b in braces]
        if r["task"] in BOX_TASKS:
            token = "[identify] " if r["task"] == "region_description" else "[refer] "
            humans = [t["value"].removeprefix("<image>\n") for t in r["conversations"] if t["from"] == "human"]
            assert all(h.startswith(token) for h in humans)
    assert answers_with_boxes >= 2
    assert angled > 0  # DOTA's oriented boxes keep their angle


def test_geochat_angle_and_rectangle_match_the_polygon(real_build: Path, tmp_path: Path) -> None:
    export(real_build, tmp_path / "geo", "llava-jsonl", "geochat", box_space="image")
    checked = 0
    for r in _records(tmp_path / "geo"):
        w, h = r["meta"]["window"][2] - r["meta"]["window"][0], r["meta"]["window"][3] - r["meta"]["window"][1]
        boxes = [b for t in r["conversations"] for b in STRICT.findall(t["value"])]
        for text, poly in zip(boxes, r["meta"]["box_polygons"]):
            x1, y1, x2, y2, theta = (int(v) for v in re.findall(r"-?\d+", text))
            # GeoChat's demo: scale the unrotated rectangle to pixels, turn it about its centre by θ.
            rect = ((x1 + x2) / 200 * w, (y1 + y2) / 200 * h, (x2 - x1) / 100 * w, (y2 - y1) / 100 * h, theta)
            corners = rect_corners(rect)
            for px, py in poly:
                # every corner of the object lies within the decoded rectangle, up to the grid and 1 degree
                d = min(math.dist((px, py), c) for c in corners)
                assert d <= math.hypot(w, h) / 100 + 0.02 * max(rect[2], rect[3]), (text, poly)
            exact = oriented_rect(poly)
            assert abs(theta - round(exact[4]) % 90) <= 1 or abs(theta - round(exact[4]) % 90) >= 89
            checked += 1
    assert checked > 20


# ---- Qwen2-VL and Qwen2.5-VL -------------------------------------------------------------------

QWEN_BOX = re.compile(r"<\|box_start\|>\((\d+),(\d+)\),\((\d+),(\d+)\)<\|box_end\|>")
QWEN_REF = re.compile(r"<\|object_ref_start\|>(.*?)<\|object_ref_end\|>((?:<\|box_start\|>.*?<\|box_end\|>)+)")


def test_qwen2vl_tokens_and_range(build: Path, tmp_path: Path) -> None:
    export(build, tmp_path / "q", "sharegpt", "qwen")
    seen = 0
    for row in _lines(tmp_path / "q" / "train.jsonl"):
        for m in row["messages"]:
            text = m["content"]
            boxes = QWEN_BOX.findall(text)
            assert all(0 <= int(v) < 1000 for box in boxes for v in box)
            stripped = QWEN_BOX.sub("", text)
            assert not re.search(r"\(\d+,\d+\),\(\d+,\d+\)", stripped)  # no bare tuples outside the tokens
            if m["role"] == "assistant" and boxes:
                referred = sum(len(QWEN_BOX.findall(group)) for _, group in QWEN_REF.findall(text))
                assert referred == len(boxes)  # every answer box follows its phrase
            seen += len(boxes)
    assert seen > 0


def test_qwen25vl_boxes_are_json_objects_in_pixels(build: Path, tmp_path: Path) -> None:
    export(build, tmp_path / "q", "llava-jsonl", "qwen25vl")
    seen = 0
    for r in _records(tmp_path / "q"):
        w, h = r["meta"]["window"][2] - r["meta"]["window"][0], r["meta"]["window"][3] - r["meta"]["window"][1]
        assert r["meta"]["box_space"] == "image"
        for turn in r["conversations"]:
            if turn["from"] != "gpt":
                continue
            for obj in re.findall(r'\{"bbox_2d": \[[^\]]*\], "label": "[^"]*"\}', turn["value"]):
                parsed = json.loads(obj)
                x1, y1, x2, y2 = parsed["bbox_2d"]
                assert 0 <= x1 <= x2 <= w and 0 <= y1 <= y2 <= h and parsed["label"]
                seen += 1
    assert seen > 0


# ---- round trip --------------------------------------------------------------------------------

_STEP = {"llava": 0.01, "geochat": 0.01, "qwen2vl": 0.001}
_NUMBERS = {"llava": r"\[([\d.]+), ([\d.]+), ([\d.]+), ([\d.]+)\]",
            "qwen2vl": r"<\|box_start\|>\((\d+),(\d+)\),\((\d+),(\d+)\)<\|box_end\|>",
            "pixel": r"\[(\d+), (\d+), (\d+), (\d+)\]", "qwen25vl": r"\[(\d+), (\d+), (\d+), (\d+)\]"}


@pytest.mark.parametrize("space", ["square", "image"])
@pytest.mark.parametrize("fmt", ["llava", "geochat", "qwen2vl", "qwen25vl", "pixel"])
def test_any_flavour_decodes_to_meta_within_half_a_grid_step(build: Path, tmp_path: Path, fmt: str,
                                                             space: str) -> None:
    export(build, tmp_path / "x", "llava-jsonl", fmt, box_space=space)
    decoded = 0
    for r in _records(tmp_path / "x"):
        x0, y0, x1, y1 = r["meta"]["window"]
        w, h = x1 - x0, y1 - y0
        padded = fmt in ("llava", "geochat") and space == "square"
        assert r["meta"]["box_space"] == ("square" if padded else "image")
        side = (max(w, h),) * 2 if padded else (w, h)
        off = ((side[0] - w) // 2, (side[1] - h) // 2)
        half = (0.5 * side[0] * _STEP[fmt], 0.5 * side[1] * _STEP[fmt]) if fmt in _STEP else (0.5, 0.5)
        text = "\n".join(t["value"] for t in r["conversations"])
        if fmt == "geochat":
            found = [tuple(float(v) for v in re.findall(r"-?\d+", b)) for b in STRICT.findall(text)]
            truths = [oriented_rect(p) for p in r["meta"]["box_polygons"]]
        else:
            found = [tuple(float(v) for v in m) for m in re.findall(_NUMBERS[fmt], text)]
            truths = r["meta"]["boxes"]
        assert len(found) == len(r["meta"]["boxes"])
        for got, truth in zip(found, truths):
            if fmt == "geochat":
                cx, cy, rw, rh, theta = truth
                if round(theta) >= 90:
                    theta, rw, rh = theta - 90, rh, rw
                truth = (cx - rw / 2, cy - rh / 2, cx + rw / 2, cy + rh / 2)
                assert abs(got[4] - theta) <= 0.5 + 1e-9
            if fmt in ("llava", "geochat"):
                scale = 100.0 if fmt == "geochat" else 1.0
                pixels = [got[i] / scale * side[i % 2] - off[i % 2] for i in range(4)]
            elif fmt == "qwen2vl":
                pixels = [(got[i] + 0.5) / 1000 * side[i % 2] for i in range(4)]
            else:
                pixels = list(got)
            for i, (a, b) in enumerate(zip(pixels, truth)):
                # GeoChat's rectangle is written as it is, past the canvas too; the others stay on it
                lo, hi = (-math.inf, math.inf) if fmt == "geochat" else (-off[i % 2], side[i % 2] - off[i % 2])
                assert abs(a - min(max(b, lo), hi)) <= half[i % 2] + 1e-6, (fmt, got, truth)
            decoded += 1
    assert decoded >= 10


# ---- LLaMA-Factory -----------------------------------------------------------------------------

def test_llamafactory_reads_the_sharegpt_export_through_its_dataset_info(build: Path, tmp_path: Path) -> None:
    dest = tmp_path / "lf"
    report = export(build, dest, "sharegpt", "qwen2vl")
    dataset_dir = dest  # the config's `dataset_dir`; `media_dir` defaults to it
    info = json.load(open(os.path.join(dataset_dir, "dataset_info.json"), encoding="utf-8"))
    assert set(info) == {f"rsgpt4v_{split}" for split in report.records}
    for name, attr in info.items():
        assert attr["formatting"] == "sharegpt"
        messages, images = attr["columns"]["messages"], attr["columns"]["images"]
        tags = attr["tags"]
        accept = (tags["user_tag"], tags["assistant_tag"])
        rows = _lines(Path(dataset_dir) / attr["file_name"])
        assert len(rows) == report.records[name.removeprefix("rsgpt4v_")]
        for row in rows:
            turns = row[messages]
            assert len(turns) % 2 == 0
            assert all(t[tags["role_tag"]] == accept[i % 2] for i, t in enumerate(turns))
            paths = [os.path.join(dataset_dir, p) for p in row[images]]
            assert all(os.path.isfile(p) for p in paths)
            assert sum(t[tags["content_tag"]].count("<image>") for t in turns) == len(paths) == 1


# ---- Hugging Face datasets ---------------------------------------------------------------------

def _null_free(arrow_type) -> bool:
    import pyarrow as pa

    if pa.types.is_null(arrow_type):
        return False
    if pa.types.is_struct(arrow_type):
        return all(_null_free(arrow_type.field(i).type) for i in range(arrow_type.num_fields))
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return _null_free(arrow_type.value_type)
    return True


@pytest.mark.parametrize("fmt", ["llava-json", "llava-jsonl", "sharegpt"])
def test_datasets_loads_the_json_exports_with_one_schema(with_test: Path, tmp_path: Path, fmt: str) -> None:
    datasets = pytest.importorskip("datasets")
    dest = tmp_path / "x"
    report = export(with_test, dest, fmt)
    assert report.records["test"] > 0
    files = {split: [str(p) for p in paths] for split, paths in report.data_files.items()}
    ds = datasets.load_dataset("json", data_files=files, cache_dir=str(tmp_path / "cache"))
    assert {s: ds[s].num_rows for s in ds} == {s: len(_lines(with_test / f"{s}.jsonl")) for s in report.records}
    features = [ds[s].features for s in ds]
    assert all(f == features[0] for f in features)
    assert all(_null_free(ds[s].data.schema.field(name).type) for s in ds for name in ds[s].column_names)
    if fmt != "sharegpt":
        assert features[0]["meta"] == datasets.Value("string")
        assert json.loads(ds["test"][0]["meta"])["boxes"] == []


def test_hf_export_has_an_image_feature_and_the_build_row_counts(with_test: Path, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    dest = tmp_path / "hf"
    report = export(with_test, dest, "hf", "geochat")
    ds = datasets.load_dataset(str(dest), cache_dir=str(tmp_path / "cache"))
    assert {s: ds[s].num_rows for s in ds} == {s: len(_lines(with_test / f"{s}.jsonl")) for s in report.records}
    assert isinstance(ds["train"].features["image"], datasets.Image)
    row = ds["train"][0]
    with Image.open(with_test / _lines(with_test / "train.jsonl")[0]["image"]) as im:
        assert row["image"].size == im.size
    assert json.loads(row["meta"])["box_format"] == "geochat"


# ---- bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "value", "valid"), [
    (["--box-format", "yolo"], "yolo", "llava, geochat, qwen2vl, qwen25vl, pixel, qwen"),
    (["--box-space", "tilted"], "tilted", "square, image"),
    (["--box-format", "llava", "--task-tokens"], "task-tokens", "--box-format geochat"),
])
def test_unknown_flavour_or_space_is_one_line_exit_2(build: Path, tmp_path: Path, args: list[str], value: str,
                                                     valid: str) -> None:
    result = CliRunner().invoke(app, ["export", str(build), "--out", str(tmp_path / "x"), *args])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and value in lines[0] and valid in lines[0]


def test_unknown_flavour_in_the_config_is_one_line_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("output: {box_format: yolo}\n")
    result = CliRunner().invoke(app, ["build", "--source", "dota", "--sample", "--dry-run", "--no-progress",
                                      "--out", str(tmp_path / "o"), "--config", str(cfg)])
    assert result.exit_code == 2
    assert "box_format" in result.output and "geochat" in result.output


def test_record_whose_box_cannot_be_written_is_named_and_skipped(build: Path, tmp_path: Path) -> None:
    copy = tmp_path / "out"
    shutil.copytree(build, copy)
    path = copy / "train.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    lineno = next(i for i, line in enumerate(lines, 1) if json.loads(line)["meta"]["boxes"])
    record = json.loads(lines[lineno - 1])
    record["meta"]["boxes"][0] = [10.0, 10.0, 5000.0, 20.0]  # far outside its window
    lines[lineno - 1] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = export(copy, tmp_path / "x", "llava-jsonl", "qwen2vl")
    assert report.skipped == 1
    assert report.problems[0].startswith(f"{path}:{lineno}: a box cannot be written as qwen2vl:")
    assert report.records["train"] == len(lines) - 1


# ---- DOTA difficult ----------------------------------------------------------------------------

def test_difficult_objects_are_kept_in_meta_and_can_be_left_out(tmp_path: Path) -> None:
    root = tmp_path / "dota"
    shutil.copytree(SAMPLE_DOTA, root)
    label = root / "train" / "labelTxt" / "P9001.txt"
    lines = label.read_text().splitlines()
    lines = [line[:-1] + "1" if i % 2 == 0 and line.endswith(" 0") else line for i, line in enumerate(lines)]
    label.write_text("\n".join(lines) + "\n")
    flagged = sum(line.endswith(" 1") for line in lines)
    assert flagged > 0
    out = tmp_path / "out"
    CliRunner().invoke(app, ["build", "--dry-run", "--no-progress", "--source", "dota", "--root", str(root),
                             "--out", str(out)], catch_exceptions=False)
    detection = [r for r in _lines(out / "train.jsonl") if r["task"] == "detection" and "P9001" in r["id"]]
    assert sum(sum(r["meta"]["box_difficult"]) for r in detection) > 0
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tasks: {exclude_difficult: true}\n")
    out2 = tmp_path / "out2"
    CliRunner().invoke(app, ["build", "--dry-run", "--no-progress", "--source", "dota", "--root", str(root),
                             "--out", str(out2), "--config", str(cfg)], catch_exceptions=False)
    kept = [r for r in _lines(out2 / "train.jsonl") if r["task"] == "detection" and "P9001" in r["id"]]
    assert all(sum(r["meta"]["box_difficult"]) == 0 for r in kept)
    assert sum(len(r["meta"]["boxes"]) for r in kept) < sum(len(r["meta"]["boxes"]) for r in detection)
