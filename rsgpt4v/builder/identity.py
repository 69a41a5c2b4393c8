"""Image identity across sources: a digest of the pixels and two perceptual hashes per image, clusters
of identical and near-identical images, and which training samples a leakage policy drops.

The same picture sits in several remote-sensing datasets (UC Merced tiles in UCM-Captions and
RSIVQA, DOTA images in RSIVQA, RSITMD overlapping RSICD), often re-encoded or resized. Every image
is hashed as the trainer will see it: opened by `imaging.images.open_image`, the build's own
reader, with the configured pixel limit, the same bit-depth stretch (so 16-bit and float imagery
is not saturated to one grey) and the same RGB conversion as the written windows. The SHA-256 of
those pixels finds identical copies; a 64-bit difference hash (dHash, gradients of a 9x8 greyscale
thumbnail) and a 64-bit average hash (aHash, 8x8 thumbnail against its mean) find copies that were
resized, re-encoded as JPEG or slightly cropped: two images are near-identical when both hashes
are at most `bits` apart and their mean colours agree (`rsgpt4v.builder.sample_plan` finds such
clusters over the whole mix).

A hash says something only where the thumbnail's values differ clearly: a flat tile, or one of
little contrast, hashes to bits decided by rounding noise (all zero for a flat tile of any colour),
and would be "near-identical" to every other such tile. When either hash has fewer than
`_MIN_BITS` clearly decided bits, the image has no perceptual hash and is matched by its pixel
digest only. An image the guard cannot open is never clustered: it is named as an input issue.

Fingerprints are kept in OUT/identity.sqlite keyed by path, size and modification time, so a rerun
reads each image again only when it changed.
"""

from __future__ import annotations

import hashlib
import sqlite3
from array import array
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageStat

from rsgpt4v.core.issue_codes import IssueCode
from rsgpt4v.imaging.images import ImageError, open_image

_STRIP_PIXELS = 4_000_000
_REDUCED = 64  # the side the image is averaged down to before the thumbnails: cheap, and sub-level exact
_MARGIN = 2.0  # grey levels (of 255) by which two thumbnail values must differ to decide a bit
_MIN_BITS = 16  # decided bits of 64 each hash needs to tell pictures apart
COLOUR_TOLERANCE = 32  # mean colours of near-identical images differ by at most this much per channel


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """`digest`: SHA-256 of the image's size and RGB pixels as the trainer sees them; `dhash` and
    `ahash` None when the thumbnail carries too little information (see the module's docstring);
    `colour` the mean colour as 0xRRGGBB."""

    digest: str
    dhash: int | None
    ahash: int | None
    colour: int = 0

    @property
    def perceptual(self) -> bool:
        return self.dhash is not None and self.ahash is not None


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


def colours_agree(a: int, b: int) -> bool:
    """Whether two 0xRRGGBB mean colours are within COLOUR_TOLERANCE in every channel."""
    return all(abs(((a >> s) & 255) - ((b >> s) & 255)) <= COLOUR_TOLERANCE for s in (0, 8, 16))


def _hashes(rgb: Image.Image) -> tuple[int | None, int | None, int]:
    """dHash and aHash of the image (None where too few bits are decided) and its mean colour."""
    factor = max(1, min(rgb.width, rgb.height) // _REDUCED)
    small = rgb.reduce(factor) if factor > 1 else rgb
    colour = 0
    for mean in ImageStat.Stat(small).mean[:3]:
        colour = (colour << 8) | min(255, round(mean))
    grey = small.convert("F")  # floats, so low contrast is not rounded into ties
    d = array("f", grey.resize((9, 8), Image.Resampling.BOX).tobytes())
    a = array("f", grey.resize((8, 8), Image.Resampling.BOX).tobytes())
    dhash = decided_d = 0
    for row in range(8):
        for col in range(8):
            left, right = d[row * 9 + col], d[row * 9 + col + 1]
            dhash = (dhash << 1) | (left > right)
            decided_d += abs(left - right) >= _MARGIN
    mean = sum(a) / 64
    ahash = decided_a = 0
    for v in a:
        ahash = (ahash << 1) | (v > mean)
        decided_a += abs(v - mean) >= _MARGIN
    if decided_d < _MIN_BITS or decided_a < _MIN_BITS:
        return None, None, colour
    return dhash, ahash, colour


def fingerprint(path: Path, max_pixels: int) -> Fingerprint:
    """The fingerprint of the image at `path` as the build opens it; ImageError says why there is none."""
    return _fingerprint_of(open_image(path, max_pixels))


def _fingerprint_of(rgb: Image.Image) -> Fingerprint:
    digest = hashlib.sha256(f"{rgb.width}x{rgb.height}\n".encode("ascii"))
    rows = max(1, _STRIP_PIXELS // rgb.width)  # in strips: a second copy of a 180 Mpx image is 540 MB
    for top in range(0, rgb.height, rows):
        digest.update(rgb.crop((0, top, rgb.width, min(rgb.height, top + rows))).tobytes())
    dhash, ahash, colour = _hashes(rgb)
    return Fingerprint(digest.hexdigest(), dhash, ahash, colour)


def _hex(value: int | None) -> str | None:
    return None if value is None else f"{value:016x}"


class FingerprintStore:
    """The `fingerprints` table of OUT/identity.sqlite: fingerprints by (path, size, mtime), so
    unchanged images are not read twice, with their pixel count, so a lower pixel limit still
    refuses them. The connection's owner commits."""

    def __init__(self, db: sqlite3.Connection, max_pixels: int) -> None:
        self._db = db
        self._max_pixels = max_pixels
        self._db.execute("DROP TABLE IF EXISTS prints")  # hashed without the bit-depth stretch: not to be trusted
        self._db.execute("CREATE TABLE IF NOT EXISTS fingerprints (path TEXT PRIMARY KEY, size INTEGER, "
                         "mtime INTEGER, pixels INTEGER, digest TEXT, dhash TEXT, ahash TEXT, colour INTEGER)")

    def get(self, path: Path) -> Fingerprint:
        """The image's fingerprint; ImageError (with the code the build would count) when it cannot be read."""
        try:
            st = path.stat()
        except FileNotFoundError:
            raise ImageError(IssueCode.IMAGE_MISSING, "image file is missing") from None
        except OSError as exc:
            raise ImageError(IssueCode.IMAGE_UNREADABLE, f"image cannot be read ({exc.strerror or exc})") from None
        row = self._db.execute("SELECT size, mtime, pixels, digest, dhash, ahash, colour FROM fingerprints "
                               "WHERE path = ?", (str(path),)).fetchone()
        if row is not None and row[0] == st.st_size and row[1] == st.st_mtime_ns and row[2] <= self._max_pixels:
            return Fingerprint(row[3], None if row[4] is None else int(row[4], 16),
                               None if row[5] is None else int(row[5], 16), row[6])
        rgb = open_image(path, self._max_pixels)
        fp, pixels = _fingerprint_of(rgb), rgb.width * rgb.height
        del rgb
        self._db.execute("INSERT OR REPLACE INTO fingerprints VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (str(path), st.st_size, st.st_mtime_ns, pixels, fp.digest, _hex(fp.dhash), _hex(fp.ahash),
                          fp.colour))
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
