"""Files written whole: beside their name first, then renamed into place; images linked or copied the same way."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import jsonlines


def dumps(obj: Any) -> str:
    """Canonical JSON for output files: stable key order, UTF-8 text, no spaces to vary."""
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def jsonl_writer(path: Path) -> jsonlines.Writer:
    """The one JSON Lines writer of every output file (build, export, merge): one canonical line per
    object, streamed, so output is byte-identical between runs and never held in memory."""
    return jsonlines.open(path, mode="w", dumps=dumps)


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _same_file(src: Path, dst: Path) -> bool:
    try:
        a, b = src.stat(), dst.stat()
    except FileNotFoundError:
        return False
    # A hard link is the same inode; a copy2 copy keeps size and mtime (rsync's quick check).
    return (a.st_ino, a.st_dev) == (b.st_ino, b.st_dev) or (a.st_size, a.st_mtime_ns) == (b.st_size, b.st_mtime_ns)


def place_file(src: Path, dst: Path) -> bool:
    """`src` at `dst` as a hard link (a copy across file systems) unless the same file is already
    there; whether anything was written. Used wherever output images are gathered (export, merge,
    preview), so every folder they make stands alone."""
    if _same_file(src, dst):
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)
    return True
