"""The data files of the `hf` export: which form they take and why, and the Parquet shards.

With pyarrow installed (the `hf` extra) each split becomes DEST/data/<split>-NNNNN-of-NNNNN.parquet,
the names `datasets`' push_to_hub gives its shards: each shard under `max_bytes` of row data
(500 MB, push_to_hub's default max_shard_size), row groups of 64 rows, with a page index as the
Hub's viewer asks. `image` is the struct `{bytes, path}` holding the image file's own bytes, and the
schema's `huggingface` metadata marks that column as an `Image` feature, which is all `datasets`
needs to decode it (its other columns' types follow from the Arrow types). So the folder loads with
`datasets.load_dataset` from any working directory and shows pictures on the Hub; `datasets`
itself is not needed to write it.

Without pyarrow the rows go to DEST/<split>.jsonl with `image` the path of a linked copy under
DEST/images/: `load_dataset` reads it as text, and the Hub's viewer shows no pictures. A path-only
Parquet is never written: `datasets` resolves such paths against the reader's working directory, so
it loads neither from elsewhere nor on the Hub.
"""

from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rsgpt4v.core.files import dumps
from rsgpt4v.records.reader import HF_DATA

INSTALL = 'pip install "rsgpt4v[hf]"'
MAX_SHARD_BYTES = 500 * 10**6
_GROUP_ROWS = 64  # rows per row group: each carries its image's bytes, so memory stays bounded
# What `datasets` reads from a Parquet schema's metadata: only the image column needs saying.
_FEATURES = {"info": {"features": {"image": {"_type": "Image"}}}}


@dataclass(frozen=True)
class HfForm:
    """The form the hf export writes, and the sentence saying why."""

    parquet: bool
    why: str


def hf_form() -> HfForm:
    if importlib.util.find_spec("pyarrow") is not None:
        return HfForm(True, "Parquet shards with each image's bytes embedded (pyarrow is installed): the folder "
                            "loads with datasets.load_dataset from anywhere and the Hub shows its pictures")
    return HfForm(False, "JSON Lines with image paths, because pyarrow is not installed: the Hub's viewer will show "
                         f"no pictures; for Parquet with the images embedded, {INSTALL} and export again")


def hf_row(record: dict[str, Any], image: Any) -> dict[str, Any]:
    """One row of the hf export; `meta` as a JSON string (its keys vary by source and split)."""
    conversations = [{"from": t["from"], "value": t["value"]} for t in record["conversations"]]
    return {"id": record["id"], "image": image, "conversations": conversations,
            "task": record.get("task"), "source": record.get("source"), "split": record.get("split"),
            "meta": dumps(record["meta"])}


def hf_schema() -> Any:
    """The Parquet schema of every shard: `image` a {bytes, path} struct that `datasets` reads as an Image."""
    import pyarrow as pa

    text = pa.string()
    turn = pa.struct([("from", text), ("value", text)])
    image = pa.struct([("bytes", pa.binary()), ("path", text)])
    return pa.schema([("id", text), ("image", image), ("conversations", pa.list_(turn)), ("task", text),
                      ("source", text), ("split", text), ("meta", text)],
                     metadata={"huggingface": json.dumps(_FEATURES)})


def shard_glob(split: str) -> str:
    """The card's `configs` path of a split's shards, relative to DEST."""
    return f"{HF_DATA}/{split}-*.parquet"


def _row_bytes(row: dict[str, Any]) -> int:
    image = row["image"]["bytes"] if isinstance(row["image"], dict) else b""
    text = sum(len(t["from"]) + len(t["value"]) for t in row["conversations"])
    return len(image) + text + sum(len(row[k] or "") for k in ("id", "task", "source", "split", "meta"))


class ShardedParquet:
    """A split's rows as DEST/data/<split>-NNNNN-of-NNNNN.parquet, a new shard whenever the next row would
    take the current one past `max_bytes`. Shards are written under temporary names and named when the
    split is complete (only then is their number known); the split's shards of an earlier export go."""

    def __init__(self, dest: Path, split: str, max_bytes: int | None = None) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._pa, self._pq = pa, pq
        self.folder = dest / HF_DATA
        self.folder.mkdir(parents=True, exist_ok=True)
        self.split = split
        self.max_bytes = max_bytes or MAX_SHARD_BYTES
        self.schema = hf_schema()
        self._partials: list[Path] = []
        self._writer: Any = None
        self._size = 0
        self._rows: list[dict[str, Any]] = []

    def _open(self) -> None:
        self._close_shard()
        path = self.folder / f"{self.split}-{len(self._partials):05d}.parquet.partial"
        self._partials.append(path)
        self._writer = self._pq.ParquetWriter(path, self.schema, write_page_index=True)
        self._size = 0

    def add(self, row: dict[str, Any]) -> None:
        size = _row_bytes(row)
        if self._writer is None or (self._size and self._size + size > self.max_bytes):
            self._open()
        self._size += size
        self._rows.append(row)
        if len(self._rows) >= _GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            self._writer.write_table(self._pa.Table.from_pylist(self._rows, schema=self.schema))
            self._rows = []

    def _close_shard(self) -> None:
        if self._writer is not None:
            self._flush()
            self._writer.close()
            self._writer = None

    def finish(self) -> list[Path]:
        if not self._partials:
            self._open()  # a split without rows still gets one (empty) shard, so it loads as a split
        self._close_shard()
        n = len(self._partials)
        final = [self.folder / f"{self.split}-{i:05d}-of-{n:05d}.parquet" for i in range(n)]
        for old in self.folder.glob(f"{self.split}-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9].parquet"):
            if old not in final:
                old.unlink()
        for partial, path in zip(self._partials, final):
            os.replace(partial, path)
        return final

    def abandon(self) -> None:
        self._rows = []
        self._close_shard()
        for partial in self._partials:
            partial.unlink(missing_ok=True)
