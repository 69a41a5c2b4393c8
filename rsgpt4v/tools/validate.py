"""Check LLaVA-format training data before it goes to a trainer: ours or any other tool's.

A file is JSONL (one record per line, read line by line, so size does not matter), a JSON list of
records when its name ends in `.json`, or an hf export's Parquet split (`rsgpt4v export --format hf`:
its rows are checked as records, an `image` that carries its bytes by decoding them); a folder stands
for its `*.jsonl`, `*.json` (but `manifest.json`) and `*.parquet` files and those of its `data/`
folder, and a folder holding none of them is an error, not a clean pass. Every problem a trainer or a reviewer would trip on becomes a `Violation`
named by file and line: unreadable lines, records of the wrong shape, roles out of order, a
misplaced `<image>` token, missing or damaged images, duplicate ids, boxes outside their format's
range (or, in `box_space: square`, on the padding around the image) or not matching `meta.boxes`,
empty values, and refusals or talk about the input in answers.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from rsgpt4v.core.files import ReadKind, Reason, located
from rsgpt4v.imaging.window import inside
from rsgpt4v.records.boxtext import Flavour, flavour
from rsgpt4v.records.model import RecordKind, box_text_fault, check_record
from rsgpt4v.records.reader import (
    data_files,
    finite_box,
    image_header,
    image_outside,
    image_root,
    json_type,
    read_records,
)

REFUSAL_PHRASES: tuple[str, ...] = (
    "i'm sorry", "i am sorry", "i cannot", "i can't assist", "as an ai", "as a language model",
    "unable to assist", "i apologize", "the provided annotations", "bounding box coordinates provided",
)


class Kind(StrEnum):
    """What `validate` finds wrong with a well-read record beyond the record contract, as the summary
    counts it (a record file's unreadable parts count by their `ReadKind`, faults against the contract
    by their `RecordKind`)."""

    DUPLICATE_ID = "duplicate id"
    IMAGE_OUTSIDE = "image outside the folder"
    IMAGE_MISSING = "image missing"
    IMAGE_UNREADABLE = "image unreadable"
    REFUSAL = "refusal/meta-talk"
    BOX_ON_PADDING = "box on the padding"
    BOX_OUT_OF_RANGE = "box out of range"
    BOX_INVERTED = "box inverted"
    BOX_COUNT = "box count"
    BOX_NOT_FINITE = "box not finite"


@dataclass(frozen=True)
class Violation:
    """One problem; `line` is None when the whole file is at fault. `reason` reads "kind: detail"."""

    file: Path
    line: int | None
    kind: Kind | RecordKind | ReadKind
    detail: str

    @property
    def reason(self) -> str:
        return f"{self.kind}: {self.detail}"

    def __str__(self) -> str:
        return located(self.file, self.line, self.reason)


@dataclass
class Report:
    """What `validate` found; `violations` keeps the first `max_kept`, `by_kind` counts them all."""

    files: int = 0
    records: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    violations: list[Violation] = field(default_factory=list)

    @property
    def count(self) -> int:
        return sum(self.by_kind.values())

    def summary(self) -> str:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(self.by_kind.items(), key=lambda kv: (-kv[1], kv[0])))
        tail = f" ({kinds})" if kinds else ""
        return f"checked {self.records} records in {self.files} files: {self.count} violations{tail}"


def _phrase_pattern(phrases: Iterable[str]) -> re.Pattern[str]:
    terms = sorted({re.escape(p.strip().lower()) for p in phrases if p.strip()}, key=len, reverse=True)
    # Not \b: a phrase may begin or end with punctuation.
    return re.compile(r"(?<!\w)(?:" + "|".join(terms) + r")(?!\w)")


@dataclass(frozen=True)
class _ImageCheck:
    """One image file's verdict: `problem` is (kind, what follows the image's name), `size` its width and height."""

    problem: tuple[Kind, str] | None = None
    size: tuple[int, int] | None = None


def _check_image(path: Path | bytes) -> _ImageCheck:
    """An image file, or the bytes an hf export's row carries."""
    if isinstance(path, bytes):
        path = io.BytesIO(path)
    elif not path.is_file():
        return _ImageCheck((Kind.IMAGE_MISSING, " not found"))
    try:
        size = image_header(path, verify=True)
    except Exception as exc:  # PIL signals a damaged file with many exception types
        return _ImageCheck((Kind.IMAGE_UNREADABLE, f" ({type(exc).__name__}: {exc})"))
    return _ImageCheck(size=size)


class _Validator:
    """The state one validation shares across files: ids seen, images checked, the report."""

    def __init__(self, phrases: Sequence[str], max_kept: int | None) -> None:
        self.refusal = _phrase_pattern(phrases)
        self.max_kept = max_kept
        self.report = Report()
        self.ids: dict[str, tuple[Path, int | None]] = {}  # where each id was first seen
        self.images: dict[str, _ImageCheck] = {}

    def add(self, file: Path, line: int | None, finding: Reason) -> None:
        v = Violation(file, line, finding.kind, finding.detail)
        self.report.by_kind[v.kind] += 1
        if self.max_kept is None or len(self.report.violations) < self.max_kept:
            self.report.violations.append(v)

    def file(self, path: Path) -> None:
        self.report.files += 1
        for line, record, problem in read_records(path):
            self.report.records += 1
            findings = [problem] if problem else self.record(path, line, record)
            for finding in findings:
                self.add(path, line, finding)

    def record(self, path: Path, line: int | None, rec: Any) -> list[Reason]:
        embedded = None
        if isinstance(rec, dict) and isinstance(rec.get("image"), dict):
            # an hf export's `Image` feature: {"bytes", "path"}, the bytes standing for the file
            embedded = rec["image"].get("bytes")
            rec = {**rec, "image": rec["image"].get("path")}
        verdict = check_record(rec)
        reasons = list(verdict.faults)
        if not isinstance(rec, dict):
            return reasons
        if isinstance(rec.get("id"), str):
            reasons += self._unique(rec["id"], path, line)
        image = rec.get("image") if isinstance(rec.get("image"), str) else None
        size = None
        outside = image_outside(image) if image is not None else None
        if outside:
            reasons.append(Reason(Kind.IMAGE_OUTSIDE, outside))
        elif image is not None:
            check = self._image(path, image, embedded)
            size = check.size
            if check.problem:
                kind, detail = check.problem
                reasons.append(Reason(kind, f"{image}{detail}"))
        if verdict.turns is None:
            return reasons
        reasons += self._refusals(verdict.turns)
        if isinstance(rec.get("meta"), dict):
            reasons += _boxes(rec["meta"], [t["value"] for t in verdict.turns], size)
        return reasons

    def _unique(self, rid: str, path: Path, line: int | None) -> list[Reason]:
        if rid in self.ids:
            first, first_line = self.ids[rid]
            return [Reason(Kind.DUPLICATE_ID, f"{rid!r} (first at {first}:{first_line})")]
        self.ids[rid] = (path, line)
        return []

    def _image(self, path: Path, image: str, embedded: bytes | None = None) -> _ImageCheck:
        if embedded is not None:
            key = hashlib.blake2b(embedded, digest_size=16).hexdigest()
            if key not in self.images:
                self.images[key] = _check_image(embedded)
            return self.images[key]
        # String paths, not Path objects: this runs once per record. An absolute `image` replaces the folder.
        key = os.path.normpath(os.path.join(os.path.abspath(image_root(path)), image))
        if key not in self.images:
            self.images[key] = _check_image(Path(key))
        return self.images[key]

    def _refusals(self, turns: list[dict[str, str]]) -> list[Reason]:
        reasons = []
        for i, t in enumerate(turns, 1):
            if t["from"] != "gpt":
                continue
            m = self.refusal.search(t["value"].lower().replace("\u2019", "'"))
            if m:
                reasons.append(Reason(Kind.REFUSAL, f"turn {i} (gpt) says {m.group(0)!r}"))
        return reasons


def _boxes(meta: dict[str, Any], values: list[str], size: tuple[int, int] | None) -> list[Reason]:
    """Box strings of `meta.box_format` inside their range and ordered, as many as `meta.boxes`."""
    fmt = meta.get("box_format")
    if fmt is None:
        return []
    fault = box_text_fault(meta)
    if fault:
        return [fault]
    f = flavour(fmt)
    found = [(i, m) for i, v in enumerate(values, 1) for m in f.pattern.finditer(v)]
    if f.limit is not None:
        xmax = ymax = f.limit
        bounds = f"0..{xmax:g}"
    elif size is not None:
        xmax, ymax = size
        bounds = f"the {xmax}x{ymax} image"
    else:
        xmax = ymax = float("inf")
        bounds = "0 and up"
    image_area = _image_area(f, meta, size)
    reasons = []
    for turn, m in found:
        x1, y1, x2, y2 = (float(v) for v in m.groups()[:4])
        # A turned GeoChat rectangle may reach past the frame; an unturned one is the box itself.
        turned = f.overhang and int(m.group(5)) != 0
        if image_area is not None and not _inside((x1 + x2) / 2, (y1 + y2) / 2, image_area):
            reasons.append(Reason(Kind.BOX_ON_PADDING, f"{m.group(0)} in turn {turn} is centred outside the image "
                                                        f"on LLaVA's padded square ({fmt}, box_space square)"))
        elif turned and not (0 <= (x1 + x2) / 2 <= xmax and 0 <= (y1 + y2) / 2 <= ymax):
            reasons.append(Reason(Kind.BOX_OUT_OF_RANGE, f"{m.group(0)} in turn {turn} is centred outside {bounds} "
                                                          f"({fmt})"))
        elif not turned and not inside((min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)), xmax, ymax):
            reasons.append(Reason(Kind.BOX_OUT_OF_RANGE, f"{m.group(0)} in turn {turn} is outside {bounds} ({fmt})"))
        elif x1 > x2 or y1 > y2:
            reasons.append(Reason(Kind.BOX_INVERTED, f"{m.group(0)} in turn {turn} has x1 > x2 or y1 > y2"))
        elif f.name == "geochat" and not -90 <= int(m.group(5)) <= 90:
            reasons.append(Reason(Kind.BOX_OUT_OF_RANGE,
                                   f"{m.group(0)} in turn {turn} has an angle outside -90..90 (geochat)"))
    boxes = meta.get("boxes")
    if boxes is not None and not isinstance(boxes, list):
        reasons.append(Reason(RecordKind.SHAPE, f"meta.boxes is a JSON {json_type(boxes)}, not a list"))
    elif boxes is not None and len(boxes) != len(found):
        reasons.append(Reason(Kind.BOX_COUNT, f"{len(found)} {fmt} boxes in the text, {len(boxes)} in meta.boxes"))
    elif boxes is not None and not all(finite_box(b) for b in boxes):
        reasons.append(Reason(Kind.BOX_NOT_FINITE, "meta.boxes holds a box that is not four finite numbers"))
    return reasons


def _image_area(f: Flavour, meta: dict[str, Any], size: tuple[int, int] | None) -> tuple[float, ...] | None:
    """Where the image lies on LLaVA's padded square, in the flavour's units, give or take one grid step;
    None unless the record's boxes are in square space and the image's size is known."""
    if size is None or not f.padded or f.limit is None or meta.get("box_space") != "square":
        return None
    frame = f.frame(*size, "square")
    u1, v1 = frame.to_unit(0, 0)
    u2, v2 = frame.to_unit(*size)
    step = 0.01  # llava's two decimals and geochat's 0..100 grid alike
    return tuple(v * f.limit for v in (u1 - step, v1 - step, u2 + step, v2 + step))


def _inside(x: float, y: float, area: tuple[float, ...]) -> bool:
    return area[0] <= x <= area[2] and area[1] <= y <= area[3]


def validate(paths: Sequence[Path], extra_phrases: Iterable[str] = (), max_kept: int | None = None) -> Report:
    """Check every record of the files (folders: their data files); ids must be unique across all of
    them. `extra_phrases` add to `REFUSAL_PHRASES`; `max_kept` bounds the violations kept in memory.
    A path that does not exist raises FileNotFoundError before anything is read."""
    # A file named twice (itself and through its folder) is read once: its ids are not duplicates.
    files: dict[Path, Path] = {}
    for p in paths:
        for f in data_files(Path(p)):
            files.setdefault(f.resolve(), f)
    checker = _Validator([*REFUSAL_PHRASES, *extra_phrases], max_kept)
    for f in files.values():
        checker.file(f)
    return checker.report


def main_validate(paths: list[Path], max_shown: int = 50) -> int:
    """The `validate` command: violations as FILE:LINE: reason on stderr, like the other commands'
    problems, and a summary line on stdout; exit code 0 clean, 1 violations, 2 a path that does not exist
    or a folder without record files."""
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        for p in missing:
            print(f"error: {p} does not exist", file=sys.stderr)
        return 2
    empty = [p for p in paths if Path(p).is_dir() and not data_files(Path(p))]
    if empty:
        print(f"error: {empty[0]}: no record files in it (*.jsonl, *.json, *.parquet, data/*.parquet); give a "
              "build or export folder, or the record files themselves", file=sys.stderr)
        return 2
    report = validate(paths, max_kept=max_shown)
    for v in report.violations:
        print(v, file=sys.stderr)
    if report.count > len(report.violations):
        print(f"... {report.count - len(report.violations)} more", file=sys.stderr)
    print(report.summary())
    return 1 if report.count else 0
