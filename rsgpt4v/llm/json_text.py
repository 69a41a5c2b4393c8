"""The JSON in a model's answer: the first complete JSON value in the text, fenced or not.

A server without structured outputs (or one that ignores them) returns what the model writes:
often a sentence, a ```json fence, the object, and a closing remark. The answer is the first
complete value that opens with `{` (or `[` where asked), read by the standard JSON decoder; the
caller then validates it with the response's pydantic model, so there is one parse however the
server was asked.

Braces in prose before the answer ("the set {a, b}") are skipped: a balanced run of text that is not
JSON is passed over whole. A value that opens and never closes is unfinished: its text runs to the
end, so nothing after it can be the answer.
"""

from __future__ import annotations

import json
from typing import Any


class NoJSONValue(ValueError):
    """The text holds no complete JSON value of the kind asked for; the message says why."""


def first_json_value(text: str, opening: str = "{") -> Any:
    """The first complete JSON value in `text` that opens with one of the characters in `opening`.

    NoJSONValue when there is none: the text has no such opening character, the first value that
    opens is cut off, or every balanced candidate is invalid JSON (the first one's error is named).
    """
    decoder = json.JSONDecoder()
    first_error: str | None = None
    start = _next_opening(text, 0, opening)
    if start < 0:
        raise NoJSONValue(f"the answer holds no JSON value (no {' or '.join(map(repr, opening))})")
    while start >= 0:
        end = _closing(text, start)
        if end < 0:
            raise NoJSONValue(f"the JSON value starting at char {start} is not finished")
        try:
            value, stop = decoder.raw_decode(text[: end + 1], start)
        except json.JSONDecodeError as exc:
            first_error = first_error or f"{exc.msg} at char {exc.pos}"
            start = _next_opening(text, end + 1, opening)
            continue
        except (ValueError, RecursionError):
            raise NoJSONValue("the answer's JSON is nested too deeply or holds an integer too long to read") from None
        if stop == end + 1:
            return value
        start = _next_opening(text, start + 1, opening)
    raise NoJSONValue(f"the answer is not valid JSON ({first_error})")


def _next_opening(text: str, start: int, opening: str) -> int:
    found = [i for i in (text.find(c, start) for c in opening) if i >= 0]
    return min(found) if found else -1


def _closing(text: str, start: int) -> int:
    """Where the bracket at `start` closes, skipping brackets inside JSON strings; -1 when it never does."""
    depth = 0
    in_string = escaped = False
    for i in range(start, len(text)):
        c = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
            if depth == 0:
                return i
    return -1
