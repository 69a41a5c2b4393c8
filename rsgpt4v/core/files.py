"""JSON Lines in and out through `jsonlines` (one canonical writer, one streaming reader); files
written whole: beside their name first, then renamed into place; images linked or copied the same way.

The reader is the one of every JSONL file the package reads (build output, batch request and
result files): a line that cannot be read comes as (line, None, reason), the reason a `ReadKind`
(`invalid JSON`, `truncated`) with a detail, reading "kind: detail", and reading goes on with the
next line.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import jsonlines


class ReadKind(StrEnum):
    """Why a JSON Lines line, or part of a JSON file, is no value."""

    CANNOT_OPEN = "cannot open"
    INVALID_JSON = "invalid JSON"
    TRUNCATED = "truncated"
    NOT_A_LIST = "not a list"
    INVALID_PARQUET = "invalid Parquet"


@dataclass(frozen=True)
class Reason:
    """Why something read is not what it should be: a `kind` that reports count (an enum's member,
    never parsed back out of text) and a `detail` for people; reads "kind: detail"."""

    kind: StrEnum
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


# (line number, the value or None, why the line could not be read or None)
Line = tuple[int, Any, Reason | None]


def located(file: Path | str, line: int | None, reason: str | Reason) -> str:
    """`file:line: reason`, or `file: reason` when the whole file is at fault."""
    where = f"{file}:{line}" if line is not None else str(file)
    return f"{where}: {reason}"


def dumps(obj: Any) -> str:
    """Canonical JSON for output files: stable key order, UTF-8 text, no spaces to vary."""
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _named(exc: OSError, path: Path) -> OSError:
    """The error with the file it is about: a failed write (disk full) comes without one."""
    if exc.filename is not None:
        return exc
    return type(exc)(exc.errno, exc.strerror or str(exc), str(path))


class _Writer(jsonlines.Writer):
    """jsonlines' writer whose write errors (a full disk) name the file: Python's carry no file name."""

    def __init__(self, path: Path) -> None:
        super().__init__(open(path, "w", encoding="utf-8"), dumps=dumps)
        self._should_close_fp = True
        self.path = path

    def write(self, obj: Any) -> int:
        try:
            return super().write(obj)
        except OSError as exc:
            raise _named(exc, self.path) from None

    def close(self) -> None:
        try:
            super().close()
        except OSError as exc:
            raise _named(exc, self.path) from None


def jsonl_writer(path: Path) -> jsonlines.Writer:
    """The one JSON Lines writer of every output file (build, export, merge): one canonical line per
    object, streamed, so output is byte-identical between runs and never held in memory."""
    return _Writer(path)


def loads(line: str) -> Any:
    """One line's JSON value, read without its line break, so an error at the end of the line points
    there and not at a line 2."""
    return json.loads(line.rstrip("\r\n"))


class _Lines:
    """The lines of a binary stream, counted, with the last one kept whole (jsonlines keeps a
    stripped copy only, and whether it ended in a newline tells a truncated file)."""

    def __init__(self, lines: Iterable[bytes]) -> None:
        self._lines = iter(lines)
        self.last = b""
        self.number = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> bytes:
        self.last = next(self._lines)
        self.number += 1
        return self.last


def read_jsonl(lines: Iterable[bytes], skip_blank: bool = False) -> Iterator[Line]:
    """Every line of JSON Lines given as bytes (a file opened "rb", which splits at "\n" only, so "\r"
    or U+2028 inside a value does not split a record) as (line number, value, None); a line that
    cannot be read as (line number, None, problem), and the reading goes on. Blank lines are
    skipped with `skip_blank`, else reported."""
    counted = _Lines(lines)
    reader = jsonlines.Reader(counted, loads=loads)
    while True:
        try:
            value = reader.read(allow_none=True, skip_empty=skip_blank)
        except EOFError:
            return
        except jsonlines.InvalidLineError as exc:
            yield counted.number, None, _invalid(counted.last, exc.__cause__)
        except RecursionError as exc:
            yield counted.number, None, Reason(ReadKind.INVALID_JSON, unreadable(exc))
        else:
            yield counted.number, value, None


def _invalid(raw: bytes, cause: BaseException | None) -> Reason:
    if isinstance(cause, UnicodeDecodeError):
        return Reason(ReadKind.INVALID_JSON, f"not UTF-8 text (byte {cause.start + 1} of the line)")
    if not raw.strip():
        return Reason(ReadKind.INVALID_JSON, "blank line")
    if isinstance(cause, json.JSONDecodeError):
        if not raw.endswith(b"\n"):
            return Reason(ReadKind.TRUNCATED, f"the last line is cut off ({json_detail(cause)})")
        return Reason(ReadKind.INVALID_JSON, json_detail(cause))
    return Reason(ReadKind.INVALID_JSON, unreadable(cause))


def json_detail(exc: json.JSONDecodeError) -> str:
    """Where and why JSON could not be read: "message: column N"."""
    return f"{exc.msg}: column {exc.colno}"


def unreadable(exc: BaseException | None) -> str:
    """Why valid JSON syntax is still no value in Python: nesting past the recursion limit, or an
    integer of more than 4300 digits."""
    return "nested too deeply to read" if isinstance(exc, RecursionError) else "an integer too long to read"


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _beside(path: Path) -> Path:
    """A temporary name in `path`'s folder: short whatever the final name's length (a name near the
    file system's 255-byte limit plus ".tmp" would not fit), and the same for the same final name."""
    return path.with_name(f".{hashlib.sha256(path.name.encode('utf-8', 'surrogateescape')).hexdigest()[:16]}.tmp")


def write_atomic(path: Path, data: bytes) -> None:
    """`data` at `path`, written beside it and renamed into place; an OSError names `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _beside(path)
    try:
        tmp.write_bytes(data)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _named(exc, path) from None
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
    preview), so every folder they make stands alone: a symbolic link is placed as the file it points at."""
    src = Path(os.path.realpath(src))
    if _same_file(src, dst):
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = _beside(dst)
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        try:
            shutil.copy2(src, tmp)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise _named(exc, dst) from None
    os.replace(tmp, dst)
    return True
