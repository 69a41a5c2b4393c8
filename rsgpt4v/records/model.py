"""The output record contract: what one line of a dataset is, as the build writes it and every
reader (validate, export, preview, stats, merge) expects it.

A record is a JSON object with a string `id` and `image`, `conversations` of alternating
`human`/`gpt` turns (`{"from", "value"}`, non-empty text, starting with `human` and ending with
`gpt`) whose `<image>` token appears once, in the first human turn (the build writes it at the
start), and optionally the strings `task`, `source`, `split` and a `meta` object (which the exports
write as a JSON string holding one; `records.read_records` hands it over decoded). Other tools'
LLaVA files without task, source, split or meta meet the contract too.

`check_record` is the one verdict: each fault a `Reason` of a `RecordKind` (`not an object`, `shape`,
`empty value`, `roles`, `image token`) and a detail, reading "kind: detail" in one line, worded the
same for every command; a command that counts faults counts their kinds, never their text. Beside
it, `box_text_fault` says whether a record's box text can be read (a known `meta.box_format` and
`meta.box_space`), for the commands that read boxes; image files and sizes each command checks itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rsgpt4v.core.files import Reason
from rsgpt4v.records.boxtext import FLAVOURS, SPACES, flavour
from rsgpt4v.records.reader import json_type

IMAGE_TOKEN = "<image>"
ROLES = ("human", "gpt")


class RecordKind(StrEnum):
    """Which part of the contract a record breaks, or (`box format`) why its box text cannot be read."""

    NOT_AN_OBJECT = "not an object"
    SHAPE = "shape"
    EMPTY_VALUE = "empty value"
    ROLES = "roles"
    IMAGE_TOKEN = "image token"
    BOX_FORMAT = "box format"


class Turn(BaseModel):
    """One turn of a conversation; `from` is a Python keyword, hence `speaker`."""

    model_config = ConfigDict(strict=True, populate_by_name=True)

    speaker: str = Field(alias="from")
    value: str


class OutputRecord(BaseModel):
    """One training example; keys beyond these are allowed (other tools add their own)."""

    model_config = ConfigDict(strict=True)

    id: str
    image: str
    conversations: list[Turn] = Field(min_length=1)
    task: str | None = None
    source: str | None = None
    split: str | None = None
    meta: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """What `check_record` found: the faults, and the conversation when its turns are well formed
    (each an object with string `from` and `value`), which the commands' own checks then read."""

    faults: list[Reason]
    turns: list[dict[str, str]] | None


def check_record(record: Any) -> Verdict:
    """Everything that keeps a parsed record from meeting the contract, one fault each."""
    if not isinstance(record, dict):
        return Verdict([Reason(RecordKind.NOT_AN_OBJECT, f"the record is a JSON {json_type(record)}")], None)
    try:
        OutputRecord.model_validate(record)
    except ValidationError as exc:
        errors = exc.errors()
    else:
        errors = []
    faults = _shape(errors)
    faults += [Reason(RecordKind.EMPTY_VALUE, f"{key!r} is empty") for key in ("id", "image")
               if isinstance(record.get(key), str) and not record[key].strip()]
    if any(e["loc"][0] == "conversations" for e in errors):
        return Verdict(faults, None)
    turns = record["conversations"]
    faults += _roles(turns)
    if isinstance(record.get("image"), str):
        faults += _image_token(turns)
    faults += [Reason(RecordKind.EMPTY_VALUE, f"turn {i} ({t['from']}) is empty")
               for i, t in enumerate(turns, 1) if not t["value"].strip()]
    return Verdict(faults, turns)


def record_problems(record: Any) -> list[str]:
    """The contract's faults of a parsed record as "kind: detail" lines; [] when it meets the contract."""
    return [str(f) for f in check_record(record).faults]


def first_problem(record: Any) -> str | None:
    """The first of `record_problems`, for the commands that skip a record on its first fault."""
    faults = check_record(record).faults
    return str(faults[0]) if faults else None


def box_text_fault(meta: dict[str, Any] | None) -> Reason | None:
    """Why a record's box text cannot be read, or None: what the commands that read boxes (export,
    preview, validate) need beyond the contract, a known `meta.box_format` and `meta.box_space`
    (default `image`)."""
    fmt = (meta or {}).get("box_format")
    if fmt is None:
        return Reason(RecordKind.BOX_FORMAT, "no meta.box_format: the flavour of the box text is not known")
    try:
        flavour(fmt)
    except ValueError:
        return Reason(RecordKind.BOX_FORMAT, f"meta.box_format {fmt!r} is not one of {', '.join(FLAVOURS)}")
    space = (meta or {}).get("box_space", "image")
    if space not in SPACES:
        return Reason(RecordKind.BOX_FORMAT, f"meta.box_space {space!r} is not one of {', '.join(SPACES)}")
    return None


def _shape(errors: list[Any]) -> list[Reason]:
    """Pydantic's errors as the contract's faults, one per key and one per broken turn."""
    faults: list[Reason] = []
    for e in errors:
        key, rest = e["loc"][0], e["loc"][1:]
        if key == "conversations" and rest:
            detail = f"turn {int(rest[0]) + 1} must be an object with string 'from' and 'value'"
        elif e["type"] == "missing":
            detail = f"no {key!r}"
        elif key == "conversations":
            detail = "'conversations' must be a non-empty list"
        elif key == "meta" and isinstance(e["input"], str):
            detail = "'meta' is a JSON string that does not hold an object"
        elif key == "meta":
            detail = f"'meta' is a JSON {json_type(e['input'])}, not an object"
        else:
            detail = f"{key!r} is a JSON {json_type(e['input'])}, not a string"
        fault = Reason(RecordKind.SHAPE, detail)
        if fault not in faults:
            faults.append(fault)
    return faults


def _roles(turns: list[dict[str, str]]) -> list[Reason]:
    """The first turn out of the human, gpt, human, gpt ... order, or a conversation ending on a question."""
    for i, t in enumerate(turns):
        expected = ROLES[i % 2]
        if t["from"] != expected:
            return [Reason(RecordKind.ROLES, f"turn {i + 1} is from {t['from']!r}, expected {expected!r}")]
    if len(turns) % 2:
        return [Reason(RecordKind.ROLES,
                       f"the last turn ({len(turns)}) is from 'human'; a conversation ends with 'gpt'")]
    return []


def _image_token(turns: list[dict[str, str]]) -> list[Reason]:
    """`<image>` once, in the first human turn (a conversation without human turns fails `_roles` instead)."""
    counts = {i: t["value"].count(IMAGE_TOKEN) for i, t in enumerate(turns, 1) if IMAGE_TOKEN in t["value"]}
    total = sum(counts.values())
    if total == 0:
        return [Reason(RecordKind.IMAGE_TOKEN, f"no {IMAGE_TOKEN} though the record has an image")]
    in_answers = [i for i in counts if turns[i - 1]["from"] == "gpt"]
    if in_answers:
        return [Reason(RecordKind.IMAGE_TOKEN, f"{IMAGE_TOKEN} in a gpt turn (turn {in_answers[0]})")]
    if total > 1:
        turns_with = ", ".join(map(str, counts))
        return [Reason(RecordKind.IMAGE_TOKEN, f"{IMAGE_TOKEN} appears {total} times (turns {turns_with})")]
    first_human = next((i for i, t in enumerate(turns, 1) if t["from"] == "human"), None)
    (where,) = counts
    if first_human is not None and where != first_human:
        return [Reason(RecordKind.IMAGE_TOKEN,
                      f"{IMAGE_TOKEN} is in turn {where}, not in the first human turn ({first_human})")]
    return []
