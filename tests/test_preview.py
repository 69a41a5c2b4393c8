"""`preview`: the static HTML gallery of a build's records, parsed with html.parser and opened in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from rsgpt4v.records.boxtext import BOX_PATTERNS, render_box
from rsgpt4v.tools.preview import PreviewReport, main_preview, preview

CHROMIUM = Path("/usr/bin/chromium")
BOX_RGB = (0xFF, 0x00, 0xD4)  # --box in the page's CSS
XSS = "<script>alert(1)</script>"


class Page(HTMLParser):
    """The records of a preview page: attributes, boxes, box references, image sources and visible text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.records: list[dict] = []
        self.scripts = 0
        self.status: dict[str, str] = {}
        self.filters: dict[str, set[str]] = {"task": set(), "source": set()}
        self.problems: list[str] = []
        self._in_problem = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        classes = a.get("class", "").split()
        if tag == "script":
            self.scripts += 1
        if a.get("id") == "status":
            self.status = a
        if tag == "input" and "data-filter" in a:
            self.filters[a["data-filter"]].add(a["value"])
        if tag == "li" and "problem" in classes:
            self._in_problem = True
            self.problems.append("")
        if tag == "article" and "record" in classes:
            self.records.append({"attrs": a, "boxes": [], "refs": [], "imgs": [], "text": "", "placeholder": False})
        elif self.records and self._open:
            rec = self.records[-1]
            if "box" in classes:
                rec["boxes"].append(a)
            if "boxref" in classes:
                rec["refs"].append(a)
            if tag == "img":
                rec["imgs"].append(a)
            if "placeholder" in classes:
                rec["placeholder"] = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "article":
            self.records[-1]["closed"] = True
        if tag == "li":
            self._in_problem = False

    def handle_data(self, data: str) -> None:
        if self._in_problem:
            self.problems[-1] += data
        elif self.records and self._open:
            self.records[-1]["text"] += data

    @property
    def _open(self) -> bool:
        return not self.records[-1].get("closed")


def _records(files: list[Path]) -> list[dict]:
    return [json.loads(line) for f in files for line in f.read_text(encoding="utf-8").splitlines()]


def _box_strings(record: dict) -> list[str]:
    pattern = BOX_PATTERNS[record["meta"]["box_format"]]
    return [m.group(0) for turn in record["conversations"] for m in pattern.finditer(turn["value"])]


def _percents(style: str) -> tuple[float, ...]:
    values = dict(re.findall(r"(left|top|width|height):(-?[\d.]+)%", style))
    return tuple(float(values[k]) for k in ("left", "top", "width", "height"))


def _corners(style: str) -> tuple[float, ...]:
    left, top, width, height = _percents(style)
    return (left, top, left + width, top + height)


def _preview(out: Path, dest: Path, **kwargs) -> tuple[PreviewReport, Page, str]:
    report = preview(out, dest, **kwargs)
    text = report.index.read_text(encoding="utf-8")
    return report, Page(text), text


@pytest.fixture(scope="module")
def built(sample_build: Path) -> Path:
    return sample_build


@pytest.fixture(scope="module")
def full(built: Path, tmp_path_factory) -> tuple[PreviewReport, Page, str]:
    return _preview(built, tmp_path_factory.mktemp("preview"))


@pytest.fixture(scope="module")
def planted(built: Path, tmp_path_factory) -> tuple[Path, Path]:
    """A copy of the build with a hostile record, a record whose meta.boxes disagree with its text, a record
    with a missing image and four bad lines appended to val.jsonl; returns the folder and the JSONL."""
    out = tmp_path_factory.mktemp("planted")
    shutil.copytree(built, out, dirs_exist_ok=True)
    jsonl = out / "val.jsonl"
    base = json.loads(jsonl.read_text(encoding="utf-8").splitlines()[0])
    hostile = {**base, "id": "planted/xss", "task": "vqa",
               "conversations": [{"from": "human", "value": "<image>\nWhat is at [0.50, 0.50, 0.60, 0.60]?"},
                                 {"from": "gpt", "value": f"A plane. {XSS} & <b>not bold</b>"}],
               "meta": {**base["meta"], "box_format": "llava", "box_space": "image", "boxes": [[0.0, 0.0, 10.0, 10.0]]}}
    missing = {**base, "id": "planted/missing", "image": "images/nowhere/gone.png"}
    lines = jsonl.read_bytes() + "\n".join([
        json.dumps(hostile), json.dumps(missing), "[1, 2, 3]", '{"id": "truncated', json.dumps({"id": "shapeless"}),
    ]).encode("utf-8") + b"\n\xff\xfe not utf-8\n"
    jsonl.write_bytes(lines)
    return out, jsonl


def test_every_record_is_shown_in_file_order_when_n_exceeds_the_total(built: Path, full) -> None:
    report, page, _ = full
    records = _records(sorted(built.glob("*.jsonl")))
    assert report.total == report.shown == len(records) == len(page.records)
    assert [r["attrs"]["data-id"] for r in page.records] == [r["id"] for r in records]
    assert [(r["attrs"]["data-task"], r["attrs"]["data-source"]) for r in page.records] == \
        [(r["task"], r["source"]) for r in records]
    assert report.bad_lines == report.missing_images == [] and page.problems == []
    assert page.filters == {"task": {r["task"] for r in records}, "source": {"dota"}}
    assert page.status["data-records"] == str(len(records))
    assert page.status["data-boxes"] == str(report.boxes) == str(sum(len(_box_strings(r)) for r in records))


def test_sample_is_seeded_deterministic_and_in_file_order(built: Path, tmp_path: Path) -> None:
    order = [r["id"] for r in _records(sorted(built.glob("*.jsonl")))]
    first, page, _ = _preview(built, tmp_path / "a", n=10, seed=3)
    again, _, _ = _preview(built, tmp_path / "b", n=10, seed=3)
    _, other_page, _ = _preview(built, tmp_path / "c", n=10, seed=4)
    assert first.index.read_bytes() == again.index.read_bytes()
    assert first.shown == 10 and first.total == len(order)
    ids = [r["attrs"]["data-id"] for r in page.records]
    assert len(ids) == 10 and ids == sorted(ids, key=order.index)
    assert ids != [r["attrs"]["data-id"] for r in other_page.records]
    copied = {p.relative_to(tmp_path / "a").as_posix() for p in (tmp_path / "a" / "images").rglob("*") if p.is_file()}
    assert copied == {img["src"] for r in page.records for img in r["imgs"]}


def test_every_image_is_copied_under_dest(built: Path, full) -> None:
    report, page, _ = full
    dest = report.index.parent
    records = {r["id"]: r for r in _records(sorted(built.glob("*.jsonl")))}
    for rec in page.records:
        (img,) = rec["imgs"]
        copy = (dest / img["src"]).resolve()
        assert copy.is_relative_to(dest.resolve()) and copy.is_file()
        source = built / records[rec["attrs"]["data-id"]]["image"]
        assert copy.read_bytes() == source.read_bytes()
        with Image.open(source) as im:
            assert (img["width"], img["height"]) == (str(im.width), str(im.height))


def test_boxes_are_decoded_from_the_text_numbered_in_order(built: Path, full) -> None:
    _, page, _ = full
    records = {r["id"]: r for r in _records(sorted(built.glob("*.jsonl")))}
    assert sum(len(r["boxes"]) for r in page.records) > 0
    for rec in page.records:
        source = records[rec["attrs"]["data-id"]]
        strings = _box_strings(source)
        numbers = [str(i) for i in range(1, len(strings) + 1)]
        assert len(rec["boxes"]) == len(strings) == int(rec["attrs"]["data-boxes"])
        assert [b["data-n"] for b in rec["boxes"]] == [r["data-n"] for r in rec["refs"]] == numbers
        with Image.open(built / source["image"]) as im:
            w, h = im.size
        # The build keeps meta.boxes in text order; llava's two decimals on the padded square of side
        # max(w, h) put each edge within half a percent of that side.
        side = max(w, h)
        for box, (x1, y1, x2, y2) in zip(rec["boxes"], source["meta"]["boxes"], strict=True):
            expected = (x1 / w * 100, y1 / h * 100, x2 / w * 100, y2 / h * 100)
            tol = (0.5 * side / w + 0.001, 0.5 * side / h + 0.001) * 2
            assert all(abs(a - b) <= t for a, b, t in zip(_corners(box["style"]), expected, tol))


@pytest.mark.parametrize("fmt", ["llava", "geochat", "qwen2vl", "qwen25vl", "pixel"])
@pytest.mark.parametrize("space", ["image", "square"])
def test_every_box_format_is_decoded_to_the_same_place(built: Path, tmp_path: Path, fmt: str, space: str) -> None:
    base = _records([built / "train.jsonl"])[0]
    with Image.open(built / base["image"]) as im:
        w, h = im.size
    pixels = [0.25 * w, 0.25 * h, 0.75 * w, 0.5 * h]
    text = render_box(tuple(pixels), fmt, w, h, space)
    record = {**base, "conversations": [{"from": "human", "value": f"<image>\nWhat is at {text}?"},
                                        {"from": "gpt", "value": "A plane."}],
              "meta": {**base["meta"], "box_format": fmt, "box_space": space, "boxes": [pixels]}}
    (tmp_path / "images").symlink_to(built / "images", target_is_directory=True)
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps(record) + "\n", encoding="utf-8")
    report, page, _ = _preview(built, tmp_path / "dest", files=[one])
    assert report.shown == 1
    (box,) = page.records[0]["boxes"]
    assert _percents(box["style"]) == pytest.approx((25.0, 25.0, 50.0, 25.0), abs=0.1)
    assert text in page.records[0]["text"]


def test_text_is_escaped_and_boxes_follow_the_text_not_meta(planted, tmp_path: Path) -> None:
    out, _ = planted
    _, page, text = _preview(out, tmp_path / "dest")
    assert XSS not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert page.scripts == 1
    (rec,) = [r for r in page.records if r["attrs"]["data-id"] == "planted/xss"]
    assert XSS in rec["text"] and "<b>not bold</b>" in rec["text"]
    (box,) = rec["boxes"]
    assert _percents(box["style"]) == pytest.approx((50.0, 50.0, 10.0, 10.0), abs=0.01)


def test_bad_lines_and_missing_images_are_reported_not_fatal(built: Path, planted, tmp_path: Path) -> None:
    out, jsonl = planted
    report, page, _ = _preview(out, tmp_path / "dest")
    first = len(jsonl.read_bytes().splitlines()) - 6
    assert report.bad_lines == [
        f"{jsonl}:{first + 3}: not an object: the record is a JSON list",
        f"{jsonl}:{first + 4}: invalid JSON: Unterminated string starting at: column 8",
        f"{jsonl}:{first + 5}: shape: no 'image'",
        f"{jsonl}:{first + 6}: invalid JSON: not UTF-8 text (byte 1 of the line)",
    ]
    assert report.missing_images == [f"{jsonl}:{first + 2}: image images/nowhere/gone.png not found"]
    assert page.problems == report.bad_lines + report.missing_images
    assert report.total == len(_records(sorted(built.glob("*.jsonl")))) + 2 == report.shown
    (gone,) = [r for r in page.records if r["attrs"]["data-id"] == "planted/missing"]
    assert gone["placeholder"] and gone["imgs"] == [] and gone["boxes"] == []
    base = json.loads(jsonl.read_bytes().splitlines()[0])
    assert len(gone["refs"]) == int(gone["attrs"]["data-boxes"]) == len(_box_strings(base))
    assert page.status["data-missing"] == "1" and page.status["data-bad-lines"] == "4"


def test_main_preview_prints_the_summary_and_exit_code(built: Path, planted, tmp_path: Path, capsys) -> None:
    assert main_preview(built, tmp_path / "clean", n=5, seed=0) == 0
    assert capsys.readouterr().out == f"wrote 5 records to {tmp_path / 'clean' / 'index.html'} " \
                                      "(0 with missing images, 0 bad lines)\n"
    out, jsonl = planted
    assert main_preview(out, tmp_path / "dirty", n=500, seed=0) == 1
    captured = capsys.readouterr()
    assert captured.out.endswith("(1 with missing images, 4 bad lines)\n")
    assert f"{jsonl}:{len(jsonl.read_bytes().splitlines()) - 3}: not an object: the record is a JSON list\n" \
        in captured.err
    assert main_preview(tmp_path / "empty", tmp_path / "x", n=5, seed=0) == 2
    assert capsys.readouterr().err == (f"error: {tmp_path / 'empty'}: no such folder, not an rsgpt4v output "
                                       "folder; give the --out folder of a build\n")


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile{len(list(tmp_path.glob('profile*')))}"
    profile.mkdir()
    return subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         f"--user-data-dir={profile}", "--virtual-time-budget=2000", *args],
        capture_output=True, text=True, timeout=600, check=True)  # a hang guard: a loaded machine is slow


def _longest_vertical_run(png: Path, rgb: tuple[int, int, int], tol: int = 10) -> int:
    """The longest run of `rgb` pixels down one column: box outlines are long, text badges short."""
    with Image.open(png) as im:
        im = im.convert("RGB")
        w, h = im.size
        px = im.load()
    best = 0
    for x in range(w):
        run = 0
        for y in range(h):
            if all(abs(c - t) <= tol for c, t in zip(px[x, y], rgb)):
                run += 1
                best = max(best, run)
            else:
                run = 0
    return best


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"headless Chromium not installed at {CHROMIUM} "
                    "(apt-get install -y chromium)")
def test_page_in_headless_chromium_loads_images_and_draws_boxes(full, tmp_path: Path) -> None:
    report, page, _ = full
    url = report.index.resolve().as_uri()
    dom = Page(_chromium(tmp_path, "--dump-dom", url).stdout)
    assert len(dom.records) == report.shown
    assert dom.status["data-images-loaded"] == str(report.shown) and dom.status["data-images-broken"] == "0"
    assert all(img.get("data-loaded") == "1" for rec in dom.records for img in rec["imgs"])
    assert dom.status["data-boxes"] == str(report.boxes) == str(sum(len(r["boxes"]) for r in dom.records))
    # The screenshot shows the first few records; one of them must carry boxes for the colour check to mean much.
    assert any(r["boxes"] for r in page.records[:4]), "no record with boxes near the top of the page"
    shot = tmp_path / "page.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,1000", url)
    with Image.open(shot) as im:
        assert im.size == (1400, 1000)
    assert _longest_vertical_run(shot, BOX_RGB) >= 30


def test_images_outside_the_folder_are_not_copied_into_the_gallery(built: Path, tmp_path: Path) -> None:
    base = _records([built / "train.jsonl"])[0]
    one = tmp_path / "one.jsonl"
    one.write_text(json.dumps({**base, "image": str(built / base["image"])}) + "\n", encoding="utf-8")
    report, page, _ = _preview(built, tmp_path / "dest", files=[one])
    assert report.missing_images == [f"{one}:1: image {built / base['image']} is outside the data folder"]
    assert page.records[0]["placeholder"] and not list((tmp_path / "dest").rglob("*.png"))
