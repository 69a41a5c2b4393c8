"""Image identity across sources: a content digest and two perceptual hashes per image, clusters of
identical and near-identical images, and which training samples a leakage policy drops.

The same picture sits in several remote-sensing datasets (UC Merced tiles in UCM-Captions and
RSIVQA, DOTA images in RSIVQA, RSITMD overlapping RSICD), often re-encoded or resized. The SHA-256
of the file finds byte-identical copies; a 64-bit difference hash (dHash, gradients of a 9x8
greyscale thumbnail) and a 64-bit average hash (aHash, 8x8 thumbnail against its mean) find copies
that were resized, re-encoded as JPEG or slightly cropped: two images are near-identical when both
hashes are at most `bits` apart (`rsgpt4v.builder.sample_plan` finds such clusters over the whole mix).

Hashes are kept in OUT/identity.sqlite keyed by path, size and modification time, so a rerun
reads each image again only when it changed.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

_THUMB = 64  # JPEG draft size: decoding at 1/8 scale is plenty for a 9x8 thumbnail


@dataclass(frozen=True, slots=True)
class Fingerprint:
    sha256: str
    dhash: int
    ahash: int


@dataclass(frozen=True, slots=True)
class ImageRef:
    """One sample's image as a source names it: its id, and its file relative to the source's root (ids
    repeat across sources, and a source's file names across its folders)."""

    source: str
    split: str
    image_id: str
    path: str

    @property
    def key(self) -> tuple[str, str, str]:
        return self.source, self.split, self.image_id

    def as_dict(self) -> dict[str, str]:
        return {"source": self.source, "split": self.split, "image_id": self.image_id, "path": self.path}


def is_training(split: str) -> bool:
    """Splits that train a model: `train` and its unions (`trainval`); every other split evaluates."""
    return split.startswith("train")


def fingerprint(path: Path) -> Fingerprint:
    """Digest of the bytes and perceptual hashes of the pixels; OSError or PIL errors propagate."""
    data = path.read_bytes()
    with Image.open(path) as im:
        im.draft("L", (_THUMB, _THUMB))
        grey = im.convert("L")
    d = grey.resize((9, 8), Image.Resampling.BOX).tobytes()
    a = grey.resize((8, 8), Image.Resampling.BOX).tobytes()
    dhash = 0
    for row in range(8):
        for col in range(8):
            dhash = (dhash << 1) | (d[row * 9 + col] > d[row * 9 + col + 1])
    mean = sum(a) / 64
    ahash = 0
    for v in a:
        ahash = (ahash << 1) | (v > mean)
    return Fingerprint(hashlib.sha256(data).hexdigest(), dhash, ahash)


class FingerprintStore:
    """The `prints` table of OUT/identity.sqlite: fingerprints by (path, size, mtime), so unchanged
    images are not read twice. The connection's owner commits."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._db.execute("CREATE TABLE IF NOT EXISTS prints (path TEXT PRIMARY KEY, size INTEGER, mtime INTEGER, "
                         "sha256 TEXT, dhash TEXT, ahash TEXT)")

    def get(self, path: Path) -> Fingerprint:
        st = path.stat()
        row = self._db.execute("SELECT size, mtime, sha256, dhash, ahash FROM prints WHERE path = ?",
                               (str(path),)).fetchone()
        if row is not None and row[0] == st.st_size and row[1] == st.st_mtime_ns:
            return Fingerprint(row[2], int(row[3], 16), int(row[4], 16))
        fp = fingerprint(path)
        self._db.execute("INSERT OR REPLACE INTO prints VALUES (?, ?, ?, ?, ?, ?)",
                         (str(path), st.st_size, st.st_mtime_ns, fp.sha256, f"{fp.dhash:016x}", f"{fp.ahash:016x}"))
        return fp


@dataclass
class Cluster:
    """Images that are the same picture: `exact` when all share one digest, else near-identical."""

    members: list[ImageRef]
    exact: bool

    @property
    def cross_source_leak(self) -> bool:
        """A training image of one source is an evaluation image of another."""
        evaluated = {r.source for r in self.members if not is_training(r.split)}
        return any(is_training(r.split) and evaluated - {r.source} for r in self.members)

    def leaked(self) -> list[ImageRef]:
        """The training members whose picture another source evaluates on."""
        return [r for r in self.members if is_training(r.split)
                and {m.source for m in self.members if not is_training(m.split)} - {r.source}]

    def as_dict(self) -> dict[str, object]:
        splits = {(r.source, r.split) for r in self.members}
        sources = {r.source for r in self.members}
        kinds = []
        if self.cross_source_leak:
            kinds.append("cross_source_leak")
        if len(sources) < len(splits) and any(
                is_training(s) != is_training(t) for (a, s) in splits for (b, t) in splits if a == b):
            kinds.append("within_source_overlap")
        if len(splits) < len(self.members):
            kinds.append("duplicate_in_split")
        if len(sources) > 1:
            kinds.append("cross_source")
        return {"match": "exact" if self.exact else "near", "kinds": kinds,
                "members": [r.as_dict() for r in self.members]}


def leakage_report(found: Iterable[Cluster], policy: str) -> tuple[dict[str, object], set[tuple[str, str, str]]]:
    """The manifest's leakage section and the sample keys the policy drops from training."""
    listed = list(found)
    dropped: set[tuple[str, str, str]] = set()
    if policy == "drop-from-train":
        for c in listed:
            dropped.update(r.key for r in c.leaked())
    by_source: dict[str, int] = defaultdict(int)
    for source, _, _ in dropped:
        by_source[source] += 1
    rows = [c.as_dict() for c in listed]
    kinds: dict[str, int] = defaultdict(int)
    for row in rows:
        for kind in row["kinds"]:  # type: ignore[union-attr]
            kinds[kind] += 1
    return {"policy": policy, "clusters": len(rows), "by_kind": dict(sorted(kinds.items())),
            "dropped_from_train": dict(sorted(by_source.items())), "list": rows}, dropped
