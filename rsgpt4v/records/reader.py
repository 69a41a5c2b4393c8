"""Reading record files: JSONL streamed line by line (`files.read_jsonl`) and LLaVA JSON lists, each
record with the line it starts on and, for a part that cannot be read, the reason.

A record's `meta` may be an object or, as the exports write it (one table schema for `datasets`),
a JSON string holding one: readers get the object either way.

`validate`, `stats`, `preview`, `export` and `merge` all read through `read_records`, so a bad line is
named the same way everywhere: `located(file, line, reason)` gives `file:line: reason`, where the
reason is a `files.Reason` reading "kind: detail" whose kind is a `files.ReadKind` (`invalid JSON`,
`truncated`, `not a list`, `cannot open`), so `validate` counts kinds without reading them back out of
the text. What makes a well-read record usable is the record contract (`record_model`) and what each
command needs beyond it."""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image

from rsgpt4v.core.files import ReadKind, Reason, json_detail, read_jsonl, unreadable

_WHITESPACE = re.compile(r"[ \t\n\r]*")


# (line the record starts on, the record or None, why it could not be read or None)
Entry = tuple[int | None, Any, Reason | None]


def data_files(path: Path) -> list[Path]:
    """The data files a path stands for: itself, or a folder's JSONL and JSON files but its manifest."""
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.is_file():
        return [path]
    return sorted(p for p in path.iterdir()
                  if p.is_file() and p.suffix in (".jsonl", ".json") and p.name != "manifest.json")


def read_records(path: Path) -> Iterator[Entry]:
    """Every record of a JSONL or JSON-list (`.json`) file with the line it starts on; a part that
    cannot be read comes as (line, None, reason), line None when the whole file is at fault, and the
    reading goes on where it can."""
    try:
        f = open(path, "rb")
    except OSError as exc:
        yield None, None, Reason(ReadKind.CANNOT_OPEN, str(exc.strerror or exc))
        return
    with f:
        if path.suffix == ".json":
            entries: Iterator[Entry] = _json_list(f.read())
        else:
            entries = read_jsonl(f)
        for line, record, reason in entries:
            yield line, _meta_object(record), reason


def _meta_object(record: Any) -> Any:
    """The record with a `meta` JSON string decoded, when it holds an object; else the record as is."""
    if isinstance(record, dict) and isinstance(record.get("meta"), str):
        try:
            meta = json.loads(record["meta"])
        except json.JSONDecodeError:
            return record
        if isinstance(meta, dict):
            return {**record, "meta": meta}
    return record


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages."""
    names = {dict: "object", list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return names.get(type(value), "null")


def _json_list(data: bytes) -> Iterator[Entry]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        yield None, None, Reason(ReadKind.INVALID_JSON, f"not UTF-8 text (byte {exc.start + 1})")
        return
    pos = _WHITESPACE.match(text).end()
    if not text.startswith("[", pos):
        yield _not_a_list(text)
        return
    # A file cut short no longer ends with the list's closing bracket, whatever the parser trips on.
    cut = not text.rstrip().endswith("]")
    decoder = json.JSONDecoder()
    line, counted = 1, 0
    pos = _WHITESPACE.match(text, pos + 1).end()
    while not text.startswith("]", pos):
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            yield exc.lineno, None, _list_error(cut, json_detail(exc))
            return
        except (RecursionError, ValueError) as exc:
            yield text.count("\n", 0, pos) + 1, None, Reason(ReadKind.INVALID_JSON, unreadable(exc))
            return
        line += text.count("\n", counted, pos)
        counted = pos
        yield line, value, None
        pos = _WHITESPACE.match(text, end).end()
        if text.startswith(",", pos):
            pos = _WHITESPACE.match(text, pos + 1).end()
            if text.startswith("]", pos):
                yield text.count("\n", 0, pos) + 1, None, Reason(ReadKind.INVALID_JSON,
                                                                       "a comma before the closing ']'")
                return
        elif not text.startswith("]", pos):
            yield text.count("\n", 0, pos) + 1, None, _list_error(cut, "expected ',' or ']' after a record")
            return
    rest = _WHITESPACE.match(text, pos + 1).end()
    if rest < len(text):
        yield text.count("\n", 0, rest) + 1, None, Reason(ReadKind.INVALID_JSON, "extra data after the list")


def _list_error(cut: bool, detail: str) -> Reason:
    if cut:
        return Reason(ReadKind.TRUNCATED, f"the file ends before the list is closed ({detail})")
    return Reason(ReadKind.INVALID_JSON, detail)


def _not_a_list(text: str) -> Entry:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return exc.lineno, None, Reason(ReadKind.INVALID_JSON, json_detail(exc))
    except (RecursionError, ValueError) as exc:
        return None, None, Reason(ReadKind.INVALID_JSON, unreadable(exc))
    return None, None, Reason(ReadKind.NOT_A_LIST,
                                   f"a .json file must hold a list of records, not a JSON {json_type(value)}")


# The rules every reader shares with the build: where a record's image may be, how large it may be,
# what a box is. validate names what export would refuse; preview shows what the build wrote.
# The build refuses images over image.max_pixels (configs/default.yaml); readers accept what it accepts.
MAX_PIXELS = 400_000_000


def image_outside(image: str) -> str | None:
    """Why a record's `image` is not a path inside its folder (absolute, or climbing out with `..`), or None."""
    rel = PurePosixPath(image)
    if not image or rel.is_absolute() or ".." in rel.parts or "\\" in image or re.match(r"[A-Za-z]:", image):
        return f"image {image!r} is not a path inside the folder"
    return None


def image_header(path: Path, verify: bool = False) -> tuple[int, int]:
    """Width and height from the file's header (pixels are not decoded), for images up to the build's
    pixel limit; OSError says why not (missing, unreadable, over the limit). With `verify`, the
    file's structure is checked too (still without decoding), in the same single open."""
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                size = im.size
                if verify:
                    im.verify()
                return size
    except Image.DecompressionBombError:
        raise OSError(f"more than {MAX_PIXELS:,} pixels, the build's image.max_pixels") from None
    except (SyntaxError, ValueError) as exc:
        raise OSError(str(exc)) from None


def finite_number(value: Any) -> bool:
    """A JSON number (not a boolean) that is a finite float: an integer of 400 digits is none."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def finite_box(value: Any) -> bool:
    """[x1, y1, x2, y2] of finite numbers."""
    return isinstance(value, list) and len(value) == 4 and all(finite_number(v) for v in value)
