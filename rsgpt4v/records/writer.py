"""Rendering records to the LLaVA conversation format, and writing the dataset folder.

OUT/<split>.jsonl, OUT/images/..., OUT/manifest.json. Every file is written beside its final name
and renamed into place when complete, so a reader never sees a torn file.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import jsonlines
from PIL import Image

from rsgpt4v.core.files import jsonl_writer, write_atomic
from rsgpt4v.core.ownership import STATE_DIR
from rsgpt4v.core.paths import UnsafePath, check_name, fitted, under
from rsgpt4v.core.report import RunReport
from rsgpt4v.core.schema import Record, RecordBox
from rsgpt4v.imaging.cutter import WRITTEN_JPEG_QUALITY, WindowOut, holds
from rsgpt4v.imaging.images import encode
from rsgpt4v.records.boxtext import MENTION_TASKS, fill, flavour
from rsgpt4v.records.model import IMAGE_TOKEN, record_problems

# Records a model did not write say so: every record of a build has the same meta keys, so a table
# reader (Hugging Face `datasets`) infers one schema for the whole file.
_META_DEFAULTS = {"model": None, "prompt_sha": None}


# Beside files.json: each window file's key (what its bytes were made from) and size.
IMAGE_KEYS = "images.json"


def _read_keys(path: Path) -> dict[str, tuple[str, int]]:
    """The window keys an earlier run kept; none when the file is missing or not as written."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {rel: (v[0], v[1]) for rel, v in data.items()
            if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) and isinstance(v[1], int)}


class ContractError(Exception):
    """A rendered record that breaks the output record contract: a bug in the build, never written."""


def render(record: Record, box_format: str, width: int, height: int, box_space: str) -> dict[str, Any]:
    """The record as one LLaVA training example for a `width` x `height` image, boxes written in
    `box_format` in the frame of `box_space`.

    Every record is checked against the output record contract (`record_model`) before it is
    returned, so a fault in rendering stops the build instead of reaching the data.

    `meta` records the flavour and frame of the text and, per box in text order, the pixel box, the
    polygon it came from, its category (in a grounded description: its phrase) and DOTA-style
    difficulty, so any flavour can be written again from `meta` alone (`rsgpt4v export`).
    """
    f = flavour(box_format)
    frame = f.frame(width, height, box_space)
    mention = record.task in MENTION_TASKS
    used: list[RecordBox] = []
    conversations = []
    for i, turn in enumerate(record.turns):
        question = fill(turn.question, record.boxes, f, frame, False, used)
        conversations.append({"from": "human", "value": f"{IMAGE_TOKEN}\n{question}" if i == 0 else question})
        conversations.append({"from": "gpt", "value": fill(turn.answer, record.boxes, f, frame, True, used, mention)})
    meta = {**_META_DEFAULTS, **box_meta(used, f.name, frame.space), **record.meta}
    line = {"id": record.id, "image": record.image, "conversations": conversations, "task": record.task,
            "source": record.source, "split": record.split, "meta": meta}
    problems = record_problems(line)
    if problems:
        raise ContractError(f"record {record.id!r} breaks the output record contract: {'; '.join(problems)}")
    return line


def box_meta(boxes: list[RecordBox], box_format: str, box_space: str) -> dict[str, Any]:
    """The `meta` keys describing a record's boxes, in text order (lists of one length, empty or not)."""
    return {"box_format": box_format, "box_space": box_space,
            "boxes": [list(b.box) for b in boxes],
            "box_polygons": [[list(p) for p in (b.polygon or _corners(b.box))] for b in boxes],
            "box_labels": [b.label for b in boxes],
            "box_difficult": [b.difficult for b in boxes]}


def meta_boxes(meta: dict[str, Any]) -> list[RecordBox]:
    """The boxes `box_meta` wrote, back as RecordBox; ValueError when the lists disagree.

    Records of other tools (or older builds) with only `meta.boxes` get no polygon and the label
    "object".
    """
    boxes = meta.get("boxes")
    n = len(boxes) if isinstance(boxes, list) else 0
    labels = meta.get("box_labels", ["object"] * n)
    polygons = meta.get("box_polygons", [None] * n)
    difficult = meta.get("box_difficult", [0] * n)
    for key, values in (("box_labels", labels), ("box_polygons", polygons), ("box_difficult", difficult)):
        if not isinstance(values, list) or len(values) != n:
            raise ValueError(f"meta.{key} does not list one entry per box of meta.boxes ({n})")
    try:
        return [RecordBox(box=tuple(b), polygon=tuple(tuple(p) for p in poly) if poly else None, label=label,
                          difficult=d) for b, poly, label, d in zip(boxes, polygons, labels, difficult)]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"meta box data of the wrong shape ({str(exc).splitlines()[0]})") from None


def _corners(box: tuple[float, float, float, float]) -> list[tuple[float, float]]:
    x1, y1, x2, y2 = box
    return [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]


class DatasetWriter:
    """Writes window images and per-split JSONL files under one output folder (or, with `discard`,
    only pretends to, for estimates).

    It remembers every file it produces; a completed pass (`close`) removes the files an earlier
    build of this folder produced and this one no longer does (a split not built any more, windows
    of a changed tiling), listed in OUT/.rsgpt4v/files.json, and never touches a file it did not write.
    """

    def __init__(self, out: Path, image_format: str, discard: bool = False, within: Path | None = None) -> None:
        self.out = Path(out)
        self.within = Path(within) if within is not None else self.out
        self.image_format = image_format
        self.discard = discard
        if not discard:
            self.out.mkdir(parents=True, exist_ok=True)
        self._files: dict[str, jsonlines.Writer] = {}
        self._produced: set[str] = set()
        self._lock = threading.Lock()
        self._keys = {} if discard else _read_keys(self.out / STATE_DIR / IMAGE_KEYS)
        self._new_keys: dict[str, tuple[str, int]] = {}

    def plan(self, name: str, source: Path, window: tuple[int, int, int, int], whole: bool) -> WindowOut:
        """Where a scene's image goes and as what; its path relative to OUT is `rel(plan)`.

        With format `auto`, a whole JPEG or PNG source image is copied byte for byte (no generation
        loss, no time spent encoding) unless it has more than 8 bits per band (the image side then
        writes it stretched, in its own format), and anything else keeps its source's kind of
        compression. The image side leaves a file alone only when the key recorded beside it says it
        came from the same source bytes with the same settings, so a source image edited since the
        last run gets its window images rewritten, not left stale beside answers about the new pixels.
        """
        suffix = source.suffix.lower()
        copy = self.image_format == "auto" and whole and suffix in (".jpg", ".jpeg", ".png")
        if copy:
            ext = suffix.lstrip(".")
        elif self.image_format == "auto":
            ext = "jpg" if suffix in (".jpg", ".jpeg") else "png"
        else:
            ext = self.image_format
        rel = f"{name}.{ext}"
        _, source_name, split, _ = name.split("/", 3)  # images/<source>/<split>/<image>
        check_name(source_name, "source")
        check_name(split, "split")
        path = under(self.out, rel, self.within)
        if self.discard:
            return WindowOut(window, None, ext)
        return WindowOut(window, path, "copy" if copy else ext, self._keys.get(rel))

    def rel(self, plan: WindowOut) -> str:
        assert plan.path is not None, "a discarding writer plans no files"
        return plan.path.relative_to(self.out).as_posix()

    def written(self, plan: WindowOut, key: str, size: int) -> None:
        """Record a window file the image side wrote (or found current), with its key and size."""
        if plan.path is None:
            return
        rel = self.rel(plan)
        with self._lock:
            self._produced.add(rel)
            self._new_keys[rel] = (key, size)

    def image(self, name: str, im: Image.Image, source: Path) -> str:
        """Write an image made in this process (a marked image) as a window of `source` unless the
        file already holds these exact bytes; its path relative to OUT."""
        plan = self.plan(name, source, (0, 0, im.width, im.height), whole=False)
        if plan.path is None:
            return f"{name}.{plan.fmt}"
        data = encode(im, plan.fmt, quality=WRITTEN_JPEG_QUALITY)
        if not holds(plan.path, data):
            write_atomic(plan.path, data)
        with self._lock:
            self._produced.add(self.rel(plan))
        return self.rel(plan)

    def request(self, window: str, stage: str, key: str, body: dict[str, Any]) -> None:
        """Keep a request body (already made readable) as OUT/requests/<window>/<stage>-<key>.json,
        where `window` is the scene's key (source/split/image/window)."""
        if self.discard:
            return
        rel = fitted(f"requests/{window}/{check_name(stage, 'stage')}-{key[:12]}.json")
        data = (json.dumps(body, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
        path = under(self.out, rel, self.within)
        if not holds(path, data):
            write_atomic(path, data)
        with self._lock:
            self._produced.add(rel)

    def write(self, split: str, line: dict[str, Any]) -> None:
        if self.discard:
            return
        f = self._files.get(split)
        if f is None:
            path = under(self.out, f"{check_name(split, 'split')}.jsonl.partial", self.within)
            f = self._files[split] = jsonl_writer(path)
        f.write(line)

    def close(self) -> list[str]:
        """Move the finished split files into place and remove what the folder's earlier builds
        produced and this one does not; the splits written."""
        for split, f in self._files.items():
            f.close()
            os.replace(self.out / f"{split}.jsonl.partial", self.out / f"{split}.jsonl")
            self._produced.add(f"{split}.jsonl")
        splits = sorted(self._files)
        self._files.clear()
        if not self.discard:
            self._sweep()
        return splits

    def _sweep(self) -> None:
        record = self.out / STATE_DIR / "files.json"
        try:
            earlier = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            earlier = []
        for rel in sorted(set(earlier) - self._produced) if isinstance(earlier, list) else []:
            try:
                path = under(self.out, rel, self.within)
            except (UnsafePath, TypeError):
                continue  # a hand-edited list does not get to delete anything outside OUT
            path.unlink(missing_ok=True)
            for folder in path.parents:
                # a recipe part's images/ is a link to the recipe's: emptied, it stays
                if folder == self.out or not folder.is_relative_to(self.out / "images") or folder.is_symlink() \
                        or any(folder.iterdir()):
                    break
                folder.rmdir()
        write_atomic(record, (json.dumps(sorted(self._produced), indent=0) + "\n").encode("utf-8"))
        self._save_keys(self._new_keys)

    def _save_keys(self, keys: dict[str, tuple[str, int]]) -> None:
        """Keep the keys of the window files for the next run's image side: a completed pass's own, or
        (a pass that did not complete) those with the earlier ones it did not reach."""
        data = {rel: list(v) for rel, v in sorted(keys.items())}
        write_atomic(self.out / STATE_DIR / IMAGE_KEYS, (json.dumps(data, indent=0) + "\n").encode("utf-8"))

    def abandon(self) -> None:
        """Drop the unfinished split files of a pass that did not complete."""
        for split, f in self._files.items():
            f.close()
            (self.out / f"{split}.jsonl.partial").unlink(missing_ok=True)
        self._files.clear()
        if not self.discard:
            self._save_keys({**self._keys, **self._new_keys})

    def manifest(self, report: RunReport) -> None:
        if not self.discard:
            report.write(self.out / "manifest.json")
