"""Rendering records to the LLaVA conversation format, and writing the dataset folder.

OUT/<split>.jsonl, OUT/images/..., OUT/manifest.json. Every file is written beside its final name
and renamed into place when complete, so a reader never sees a torn file.
"""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path
from typing import IO, Any

from PIL import Image

from rsgpt4v.geometry import render_box
from rsgpt4v.imaging import encode
from rsgpt4v.ownership import STATE_DIR
from rsgpt4v.paths import UnsafePath, check_name, under
from rsgpt4v.schema import Record

_PLACEHOLDER = re.compile(r"<(b\d+)>")


def render(record: Record, box_format: str, width: int, height: int) -> dict[str, Any]:
    """The record as one LLaVA training example; `meta.boxes` lists its pixel boxes in text order."""
    used: list[list[float]] = []

    def fill(text: str) -> str:
        def one(m: re.Match[str]) -> str:
            box = record.boxes[m.group(1)]
            used.append(list(box))
            return render_box(box, box_format, width, height)
        return _PLACEHOLDER.sub(one, text)

    conversations = []
    for i, turn in enumerate(record.turns):
        question = fill(turn.question)
        conversations.append({"from": "human", "value": f"<image>\n{question}" if i == 0 else question})
        conversations.append({"from": "gpt", "value": fill(turn.answer)})
    meta = {"box_format": box_format, "boxes": used, **record.meta}
    return {"id": record.id, "image": record.image, "conversations": conversations, "task": record.task,
            "source": record.source, "split": record.split, "meta": meta}


def dumps(obj: Any) -> str:
    """Canonical JSON for output files: stable key order, UTF-8 text, no spaces to vary."""
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _holds(path: Path, data: bytes) -> bool:
    """Whether the file at `path` has exactly `data` (sizes first: most changes change the size)."""
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except FileNotFoundError:
        return False


class DatasetWriter:
    """Writes window images and per-split JSONL files under one output folder (or, with `discard`,
    only pretends to, for estimates).

    It remembers every file it produces; a completed pass (`close`) removes the files an earlier
    build of this folder produced and this one no longer does (a split not built any more, windows
    of a changed tiling), listed in OUT/.rsgpt4v/files.json, and never touches a file it did not write.
    """

    def __init__(self, out: Path, image_format: str, discard: bool = False) -> None:
        self.out = Path(out)
        self.image_format = image_format
        self.discard = discard
        if not discard:
            self.out.mkdir(parents=True, exist_ok=True)
        self._files: dict[str, IO[str]] = {}
        self._produced: set[str] = set()
        self._lock = threading.Lock()

    def image(self, name: str, im: Image.Image, source: Path, whole: bool) -> str:
        """Write a scene's image unless the file there already holds these exact bytes; its path relative to OUT.

        With format `auto`, a whole JPEG or PNG source image is copied byte for byte (no generation
        loss, no time spent encoding), and anything else keeps its source's kind of compression.
        Comparing content rather than existence means a source image edited since the last run gets
        its window images rewritten, not left stale beside answers about the new pixels.
        """
        suffix = source.suffix.lower()
        copy = self.image_format == "auto" and whole and suffix in (".jpg", ".jpeg", ".png")
        if copy:
            fmt = suffix.lstrip(".")
        elif self.image_format == "auto":
            fmt = "jpg" if suffix in (".jpg", ".jpeg") else "png"
        else:
            fmt = self.image_format
        rel = f"{name}.{fmt}"
        _, source_name, split, _ = name.split("/", 3)  # images/<source>/<split>/<image>
        check_name(source_name, "source")
        check_name(split, "split")
        path = under(self.out, rel)
        if not self.discard:
            data = source.read_bytes() if copy else encode(im, fmt, quality=95)
            if not _holds(path, data):
                write_atomic(path, data)
            with self._lock:
                self._produced.add(rel)
        return rel

    def write(self, split: str, line: dict[str, Any]) -> None:
        if self.discard:
            return
        f = self._files.get(split)
        if f is None:
            path = under(self.out, f"{check_name(split, 'split')}.jsonl.partial")
            f = self._files[split] = open(path, "w", encoding="utf-8", newline="\n")
        f.write(dumps(line) + "\n")

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
                path = under(self.out, rel)
            except (UnsafePath, TypeError):
                continue  # a hand-edited list does not get to delete anything outside OUT
            path.unlink(missing_ok=True)
            for folder in path.parents:
                if folder == self.out or not folder.is_relative_to(self.out / "images") or any(folder.iterdir()):
                    break
                folder.rmdir()
        write_atomic(record, (json.dumps(sorted(self._produced), indent=0) + "\n").encode("utf-8"))

    def abandon(self) -> None:
        """Drop the unfinished split files of a pass that did not complete."""
        for split, f in self._files.items():
            f.close()
            (self.out / f"{split}.jsonl.partial").unlink(missing_ok=True)
        self._files.clear()

    def manifest(self, data: dict[str, Any]) -> None:
        if self.discard:
            return
        write_atomic(self.out / "manifest.json",
                     (json.dumps(data, ensure_ascii=False, sort_keys=True, indent=2) + "\n").encode("utf-8"))
