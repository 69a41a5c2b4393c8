"""One owner per output folder: a lock against a second build running at the same time, and a record
of which build the folder belongs to.

OUT/.rsgpt4v/lock is held (flock) for as long as a build runs; the operating system drops it when
the process ends, however it ends, so a killed build never leaves a stale lock. OUT/.rsgpt4v/owner.json
records what makes a build the same build: its source, root, split, adapter options and shard. A
rerun of the same build continues in the folder (that is how resuming works); a different build, or
a folder holding files rsgpt4v did not write, is refused unless the user passes --force. Changes of
config, model or --limit are the same build made again: its files are rewritten, and the dataset
writer removes the ones it no longer produces (see `rsgpt4v.records.writer.DatasetWriter.close`).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rsgpt4v.core.files import write_atomic
from rsgpt4v.core.report import ReportError, RunReport

STATE_DIR = ".rsgpt4v"
PARTS = "parts"  # a recipe build's OUT/parts/<source>/, one single-source build each
# What rsgpt4v itself puts in an output folder: anything else there means someone else's data.
_OURS = {STATE_DIR, "manifest.json", "cache.sqlite", "cache.sqlite-wal", "cache.sqlite-shm", "batch", "images",
         "marked"}


class OwnerError(Exception):
    """The folder is in use by another build, or belongs to a different one."""


def identity(source: str, root: Path, split: str | None, options: list[str] | None,
             shard: tuple[int, int] | None) -> dict[str, Any]:
    """What makes two runs the same build (and so free to share one output folder)."""
    return {"source": source, "root": str(Path(root).resolve()), "split": split,
            "options": sorted(options or []), "shard": list(shard) if shard else None}


@contextmanager
def owned(out: Path, wanted: dict[str, Any], force: bool = False) -> Iterator[None]:
    """Hold OUT's lock and make it this build's folder for the duration; OwnerError when another
    build runs there now, or (without `force`) when the folder belongs to a different build."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OwnerError(f"--out {out} is a file, not a folder; choose another --out")
    state = out / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    with open(state / "lock", "a+", encoding="utf-8") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise OwnerError(f"{out} is in use by another build ({holder}); wait for it to finish or choose "
                             "another --out") from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()}")
        lock.flush()
        if not force:
            _check(out, wanted)
        (state / "owner.json").write_text(json.dumps(wanted, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        yield


def _check(out: Path, wanted: dict[str, Any]) -> None:
    recorded = _recorded(out)
    ours = _written(out)
    strangers = sorted(p.name for p in out.iterdir()
                       if p.name not in _OURS and p.name not in ours and (recorded is None or p.suffix == ".jsonl"))
    if strangers:
        raise OwnerError(f"{out} holds files rsgpt4v build did not write ({', '.join(strangers[:5])}); "
                         "choose an empty or new --out, or pass --force to build there anyway")
    if recorded is None:
        return
    differences = [f"{key} {recorded.get(key)!r} -> {wanted[key]!r}" for key in wanted
                   if key in recorded and recorded[key] != wanted[key]]
    if differences:
        raise OwnerError(f"{out} holds another build ({'; '.join(differences)}); choose another --out, "
                         "or pass --force to replace it")


def claim(out: Path, names: list[str]) -> None:
    """List `names` (paths relative to OUT) in OUT/.rsgpt4v/files.json as this build's before they are
    written, so a rerun after a kill half-way through writing them knows them for its own."""
    path = out / STATE_DIR / "files.json"
    try:
        listed = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        listed = []
    mine = {name for name in listed if isinstance(name, str)} if isinstance(listed, list) else set()
    if not set(names) <= mine:
        write_atomic(path, (json.dumps(sorted(mine | set(names)), indent=0) + "\n").encode("utf-8"))


def _written(out: Path) -> set[str]:
    """Top-level files earlier builds wrote here: listed in files.json, or the split files a manifest
    of a build older than files.json counts."""
    try:
        listed = json.loads((out / STATE_DIR / "files.json").read_text(encoding="utf-8"))
        return {name for name in listed if isinstance(name, str) and "/" not in name}
    except (OSError, ValueError, TypeError):
        pass
    try:
        return {f"{split}.jsonl" for split in RunReport.read(out / "manifest.json").counts.by_split}
    except ReportError:
        return set()


def _recorded(out: Path) -> dict[str, Any] | None:
    """The owner of the folder: its owner.json, or for folders built before it existed, what the
    manifest says; None when no build wrote there."""
    for path in (out / STATE_DIR / "owner.json", out / "manifest.json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            raise OwnerError(f"{path}: unreadable ({exc}); choose another --out, or pass --force") from None
        if not isinstance(data, dict):
            raise OwnerError(f"{path}: not a build record; choose another --out, or pass --force")
        if path.name == "manifest.json":
            return {"source": data.get("source"),
                    "root": str(Path(data["root"]).resolve()) if isinstance(data.get("root"), str) else None}
        return data
    return None
