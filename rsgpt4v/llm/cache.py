"""The response cache: SQLite in WAL mode, request key -> the completion the API returned.

Every response is kept, usable or not, so a rerun replays the same sequence of attempts without a
single call and writes byte-identical output. Beside them, the verdict of each request asked (usable
or not after how many attempts, and why each failed) lets a rerun give failed requests more tries
and lets `estimate` measure how often requests are asked again. A file that is not a readable cache is reported,
moved aside and rebuilt rather than trusted.

Several builds may share one cache file at once (two recipes, shards, a retry beside a first run).
Before sending a request a build claims it: a row in `claims` with the holder and a lease that the
holder renews while the request is on its way. Another build that needs the same request finds the
claim and waits for the answer instead of paying for it again; a claim whose holder died (killed,
the machine lost) expires with its lease and the next build that needs the request takes it over.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    stage TEXT NOT NULL,
    model TEXT NOT NULL,
    completion TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS verdicts (
    key TEXT PRIMARY KEY,
    stage TEXT NOT NULL,
    verdict TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires REAL NOT NULL
);
"""


class Cache:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.holder = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"  # this process's name on its claims
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "a folder, not a cache file: give --cache a file name",
                                    str(self.path))
        try:
            self._db = self._open()
        except sqlite3.OperationalError:
            raise  # cannot open or write (permissions, disk full): the file itself may be fine
        except sqlite3.DatabaseError as exc:
            aside = self.path.with_name(self.path.name + ".corrupt")
            log.warning("cache %s is not a readable SQLite cache (%s); moved to %s and rebuilt", self.path, exc, aside)
            self.path.replace(aside)
            self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        db.execute("SELECT count(*) FROM responses").fetchone()
        return db

    def get(self, key: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT completion FROM responses WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, stage: str, model: str, completion: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO responses (key, stage, model, completion) VALUES (?, ?, ?, ?)",
            (key, stage, model, json.dumps(completion, sort_keys=True)),
        )

    def verdict(self, key: str) -> dict[str, Any] | None:
        """How asking the request with this first-attempt key ended: ok, attempts, rounds, history."""
        row = self._db.execute("SELECT verdict FROM verdicts WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put_verdict(self, key: str, stage: str, verdict: dict[str, Any]) -> None:
        self._db.execute("INSERT OR REPLACE INTO verdicts (key, stage, verdict) VALUES (?, ?, ?)",
                         (key, stage, json.dumps(verdict, sort_keys=True)))

    def claim(self, key: str, lease_s: float) -> bool:
        """Take the request `key` for `lease_s` seconds: True when it is ours (free, expired, or ours
        already), False while another holder's lease runs."""
        now = time.time()
        taken = self._db.execute(
            "INSERT INTO claims (key, holder, expires) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
            "holder = excluded.holder, expires = excluded.expires WHERE claims.expires < ? OR claims.holder = ?",
            (key, self.holder, now + lease_s, now, self.holder))
        return taken.rowcount == 1

    def renew(self, key: str, lease_s: float) -> None:
        """Extend our claim on `key` (a request still on its way)."""
        self._db.execute("UPDATE claims SET expires = ? WHERE key = ? AND holder = ?",
                         (time.time() + lease_s, key, self.holder))

    def release(self, key: str) -> None:
        """Give up our claim on `key`: answered, or failed (then the next build that needs it asks)."""
        self._db.execute("DELETE FROM claims WHERE key = ? AND holder = ?", (key, self.holder))

    def claimed(self, key: str) -> bool:
        """Whether another holder's lease on `key` still runs."""
        row = self._db.execute("SELECT 1 FROM claims WHERE key = ? AND holder != ? AND expires >= ?",
                               (key, self.holder, time.time())).fetchone()
        return row is not None

    def reask_rate(self) -> float | None:
        """Attempts beyond the first per request asked, as measured by the builds this cache served;
        None when it has seen none."""
        asks, attempts = self._db.execute(
            "SELECT count(*), sum(json_extract(verdict, '$.attempts')) FROM verdicts").fetchone()
        return (attempts - asks) / asks if asks else None

    def close(self) -> None:
        try:
            self._db.execute("DELETE FROM claims WHERE holder = ?", (self.holder,))
        except sqlite3.Error:
            pass  # the claims lapse on their own; closing must not fail on a full disk
        self._db.close()
