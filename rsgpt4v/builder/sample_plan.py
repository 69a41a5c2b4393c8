"""The recipe's plan of every sample, kept in OUT/identity.sqlite so the planning pass holds no
per-image state in memory: a row per listed sample (source, split, image id, its file relative to the
source's root, fingerprint or why the image cannot be read, seeded draw, cluster, why it is left
out), the clusters of the same picture found by SQL over hash slices, and the decisions (leakage
drops, splits, fraction, max_images) taken as SQL updates. The build asks it, one indexed lookup per sample, whether a
source builds that sample, and which images the guard could not read (each named as an input issue).

Near-identical images are found by multi-index hashing: cut each 64-bit hash into `bits + 1`
slices; two hashes at most `bits` apart agree on at least one slice of each, so only images sharing
a dHash slice and an aHash slice are compared. For each pair of slice positions the images are
streamed in the order of that pair's slice values and each run of equal values compared pair by
pair: one representative per distinct digest, about n^2 / 400 comparisons at the default 8 bits
instead of n^2 / 2, and memory for one run at a time plus the images that match. Images without a
perceptual hash (too little information in it) are matched by their digest only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from itertools import groupby
from pathlib import Path

from rsgpt4v.builder.identity import Cluster, Fingerprint, FingerprintStore, ImageRef, colours_agree
from rsgpt4v.core.issue_codes import IssueCode
from rsgpt4v.imaging.images import ImageError

_SIGN = 1 << 63
_WORD = (1 << 64) - 1
NOT_LISTED = "not listed when the recipe was planned"


def _signed(value: int | None) -> int | None:
    """A 64-bit hash as SQLite's signed INTEGER."""
    return value - (1 << 64) if value is not None and value >= _SIGN else value


def _slices(bits: int) -> list[tuple[int, int]]:
    """`bits + 1` (shift, mask) slices covering the 64 bits: two hashes at most `bits` apart agree on one."""
    n = bits + 1
    bounds = [round(i * 64 / n) for i in range(n + 1)]
    return [(lo, (1 << (hi - lo)) - 1) for lo, hi in zip(bounds, bounds[1:])]


class _Union:
    """Union-find over the images that matched another one; any other image is its own root."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, i: int) -> int:
        while (up := self.parent.get(i, i)) != i:
            self.parent[i] = self.parent.get(up, up)
            i = up
        return i

    def join(self, i: int, j: int) -> None:
        a, b = self.find(i), self.find(j)
        if a != b:
            self.parent[max(a, b)] = min(a, b)
            self.parent.setdefault(min(a, b), min(a, b))


class SamplePlan:
    """OUT/identity.sqlite opened for one planning pass: its fingerprint cache (`prints`) and the
    table of this run's samples, rebuilt on every run."""

    def __init__(self, path: Path, max_pixels: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("BEGIN")
        self.prints = FingerprintStore(self._db, max_pixels)
        self._db.execute("DROP TABLE IF EXISTS samples")
        self._db.execute("CREATE TABLE samples (seq INTEGER PRIMARY KEY, source TEXT, split TEXT, image_id TEXT, "
                         "path TEXT, digest TEXT, dhash INTEGER, ahash INTEGER, colour INTEGER, draw REAL, "
                         "cluster INTEGER, leaked INTEGER DEFAULT 0, reason TEXT, unread_code TEXT, unread TEXT)")

    def add(self, ref: ImageRef, fp: Fingerprint | ImageError | None, draw: float) -> None:
        """One listed sample, in listing order; an ImageError (or None) when its image cannot be read."""
        if isinstance(fp, Fingerprint):
            prints = (fp.digest, _signed(fp.dhash), _signed(fp.ahash), fp.colour, None, None)
        elif isinstance(fp, ImageError):
            prints = (None, None, None, None, str(fp.code), str(fp))
        else:
            prints = (None,) * 6
        self._db.execute("INSERT INTO samples (source, split, image_id, path, digest, dhash, ahash, colour, "
                         "unread_code, unread, draw) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (*ref.key, ref.path, *prints, draw))

    def listed(self) -> None:
        """Every sample added: keep the fingerprints read so far, index the table for the clustering and
        the lookups that follow."""
        self._db.execute("COMMIT")
        self._db.execute("BEGIN")
        self._db.execute("CREATE INDEX samples_key ON samples (source, split, image_id)")
        self._db.execute("CREATE INDEX samples_digest ON samples (digest)")

    def splits(self, source: str) -> list[str]:
        """The splits `source` listed samples in."""
        return [row[0] for row in self._db.execute("SELECT DISTINCT split FROM samples WHERE source = ? ORDER BY split",
                                                   (source,))]

    def counts(self) -> tuple[int, int]:
        """(samples listed, samples whose image was fingerprinted)."""
        return self._db.execute("SELECT COUNT(*), COUNT(digest) FROM samples").fetchone()

    def _near_matches(self, bits: int) -> _Union:
        """The distinct digests' representatives joined when both hashes are at most `bits` apart and
        their mean colours agree; images without a perceptual hash take no part."""
        self._db.execute("DROP TABLE IF EXISTS temp.reps")
        self._db.execute("CREATE TEMP TABLE reps AS SELECT MIN(seq) AS rep, dhash, ahash, colour FROM samples "
                         "WHERE digest IS NOT NULL AND dhash IS NOT NULL GROUP BY digest")
        union = _Union()
        slices = _slices(bits)
        for d_shift, d_mask in slices:
            for a_shift, a_mask in slices:
                rows = self._db.execute("SELECT (dhash >> ?) & ?, (ahash >> ?) & ?, rep, dhash, ahash, colour "
                                        "FROM temp.reps ORDER BY 1, 2, 3", (d_shift, d_mask, a_shift, a_mask))
                for _, run in groupby(rows, key=lambda row: (row[0], row[1])):
                    bucket = [(rep, dh & _WORD, ah & _WORD, c) for _, _, rep, dh, ah, c in run]
                    for x, (i, di, ai, ci) in enumerate(bucket):
                        for j, dj, aj, cj in bucket[x + 1:]:
                            if ((di ^ dj).bit_count() <= bits and (ai ^ aj).bit_count() <= bits
                                    and colours_agree(ci, cj) and union.find(i) != union.find(j)):
                                union.join(i, j)
        self._db.execute("DROP TABLE temp.reps")
        return union

    def clusters(self, bits: int) -> list[Cluster]:
        """Groups of two or more samples that show the same picture (the same digest, or hashes at most
        `bits` apart and colours that agree), ordered by their first sample in listing order, members
        in listing order. A sample whose image could not be read is in none."""
        db = self._db
        db.execute("UPDATE samples SET cluster = NULL")
        db.execute("UPDATE samples SET cluster = (SELECT MIN(seq) FROM samples AS same "
                   "WHERE same.digest = samples.digest) "
                   "WHERE digest IN (SELECT digest FROM samples GROUP BY digest HAVING COUNT(*) > 1)")
        union = self._near_matches(bits)
        for rep in sorted(union.parent):
            db.execute("UPDATE samples SET cluster = ? WHERE digest = (SELECT digest FROM samples WHERE seq = ?)",
                       (union.find(rep), rep))
        rows = db.execute("SELECT cluster, source, split, image_id, path, digest FROM samples "
                          "WHERE cluster IS NOT NULL ORDER BY cluster, seq")
        found = []
        for _, members in groupby(rows, key=lambda row: row[0]):
            listed = list(members)
            found.append(Cluster([ImageRef(*row[1:5]) for row in listed], len({row[5] for row in listed}) == 1))
        return found

    def drop(self, keys: Iterable[tuple[str, str, str]]) -> None:
        """Mark these samples as training copies of another source's evaluation image."""
        self._db.executemany("UPDATE samples SET leaked = 1 WHERE source = ? AND split = ? AND image_id = ?", keys)

    def decide(self, source: str, splits: list[str] | None, fraction: float, max_images: int | None) -> None:
        """Which of `source`'s samples it builds; each other one gets the first reason that applies:
        its split is not wanted, leakage, its seeded draw is not under `fraction`, or it is past the
        `max_images` lowest draws."""
        db = self._db
        if splits is not None:
            db.execute(f"UPDATE samples SET reason = 'split not in the recipe' WHERE source = ? "
                       f"AND split NOT IN ({', '.join('?' * len(splits))})", (source, *splits))
        db.execute("UPDATE samples SET reason = 'leakage: evaluation image of another source' "
                   "WHERE source = ? AND reason IS NULL AND leaked", (source,))
        db.execute("UPDATE samples SET reason = 'not drawn (fraction)' WHERE source = ? AND reason IS NULL "
                   "AND draw >= ?", (source, fraction))
        if max_images is not None:
            db.execute("UPDATE samples SET reason = 'not drawn (max_images)' WHERE seq IN (SELECT seq FROM samples "
                       "WHERE source = ? AND reason IS NULL ORDER BY draw, split, image_id LIMIT -1 OFFSET ?)",
                       (source, max_images))

    def unreadable(self, key: tuple[str, str, str]) -> ImageError | None:
        """Why the guard could not read the sample's image, or None."""
        row = self._db.execute("SELECT unread_code, unread FROM samples WHERE source = ? AND split = ? AND "
                               "image_id = ? AND unread IS NOT NULL LIMIT 1", key).fetchone()
        return None if row is None else ImageError(IssueCode(row[0]), row[1])

    def chosen(self, source: str) -> int:
        """Distinct samples `source` builds."""
        return self._db.execute("SELECT COUNT(*) FROM (SELECT DISTINCT split, image_id FROM samples "
                                "WHERE source = ? AND reason IS NULL)", (source,)).fetchone()[0]

    def left_out(self, key: tuple[str, str, str]) -> str | None:
        """None when the sample is built, else why not."""
        row = self._db.execute("SELECT reason FROM samples WHERE source = ? AND split = ? AND image_id = ? "
                               "ORDER BY reason IS NOT NULL LIMIT 1", key).fetchone()
        return NOT_LISTED if row is None else row[0]

    def close(self) -> None:
        if self._db.in_transaction:
            self._db.execute("COMMIT")
        self._db.close()
