"""Rendering records to the LLaVA conversation format, and writing the dataset folder.

OUT/<split>.jsonl, OUT/images/..., OUT/manifest.json. Every file is written beside its final name
and renamed into place when complete, so a reader never sees a torn file.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import IO, Any

from PIL import Image

from rsgpt4v.geometry import render_box
from rsgpt4v.imaging import encode
from rsgpt4v.paths import check_name, under
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


class DatasetWriter:
    """Writes window images and per-split JSONL files under one output folder (or, with `discard`,
    only pretends to, for estimates)."""

    def __init__(self, out: Path, image_format: str, discard: bool = False) -> None:
        self.out = Path(out)
        self.image_format = image_format
        self.discard = discard
        if not discard:
            self.out.mkdir(parents=True, exist_ok=True)
        self._files: dict[str, IO[str]] = {}

    def image(self, name: str, im: Image.Image, source: Path, whole: bool) -> str:
        """Write a scene's image (unless already complete from an earlier run); its path relative to OUT.

        With format `auto`, a whole JPEG or PNG source image is copied byte for byte (no generation
        loss, no time spent encoding), and anything else keeps its source's kind of compression.
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
        if not self.discard and not path.exists():
            write_atomic(path, source.read_bytes() if copy else encode(im, fmt, quality=95))
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
        """Move the finished split files into place; the splits written."""
        for split, f in self._files.items():
            f.close()
            os.replace(self.out / f"{split}.jsonl.partial", self.out / f"{split}.jsonl")
        splits = sorted(self._files)
        self._files.clear()
        return splits

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
