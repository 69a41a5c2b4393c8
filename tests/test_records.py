"""`rsgpt4v.records.reader`: JSONL and JSON-list reading with start lines and reasons, and the same bad-line
messages from every command that reads records."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from rsgpt4v.core.files import ReadKind, Reason, located, read_jsonl
from rsgpt4v.records.reader import data_files, read_records
from rsgpt4v.tools.export import export, main_export
from rsgpt4v.tools.preview import main_preview
from rsgpt4v.tools.stats import main_stats
from rsgpt4v.tools.validate import main_validate

# Every read-level problem a JSONL file can have, each on its own line, the last one cut off.
_BROKEN_JSONL = b'{"id": "a"}\n\n\xff\xfe not utf-8\n{"id": \n[1, 2]\n{"id": "cut'
_BROKEN_REASONS = [
    (2, "invalid JSON: blank line"),
    (3, "invalid JSON: not UTF-8 text (byte 1 of the line)"),
    (4, "invalid JSON: Expecting value: column 8"),
    (6, "truncated: the last line is cut off (Unterminated string starting at: column 8)"),
]


def test_jsonl_lines_are_read_one_by_one(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(_BROKEN_JSONL)
    entries = list(read_records(path))
    assert [(line, record) for line, record, reason in entries if reason is None] == [(1, {"id": "a"}), (5, [1, 2])]
    assert [(line, str(reason)) for line, _, reason in entries if reason is not None] == _BROKEN_REASONS
    assert [reason.kind for _, _, reason in entries if reason is not None] == [ReadKind.INVALID_JSON] * 3 + [
        ReadKind.TRUNCATED]


def _shown(entries: list) -> list:
    return [(line, record, None if reason is None else str(reason)) for line, record, reason in entries]


def test_the_jsonl_reader_reads_on_after_every_kind_of_bad_line() -> None:
    """jsonlines raises for a bad line after consuming it; the reader names it by kind and goes on,
    including past values Python will not read (too deep, too long an integer) and, with
    `skip_blank`, without reporting blank lines."""
    data = _BROKEN_JSONL.replace(b"[1, 2]", b"[" * 100_000 + b"\nnull\n" + b"1" * 5000)
    entries = list(read_jsonl(io.BytesIO(data)))
    assert [(n, value) for n, value, problem in entries if problem is None] == [(1, {"id": "a"}), (6, None)]
    assert [(n, p.kind) for n, _, p in entries if p is not None] == [
        (2, ReadKind.INVALID_JSON), (3, ReadKind.INVALID_JSON), (4, ReadKind.INVALID_JSON),
        (5, ReadKind.INVALID_JSON), (7, ReadKind.INVALID_JSON), (8, ReadKind.TRUNCATED)]
    assert [str(p) for n, _, p in entries if n in (5, 7)] == ["invalid JSON: nested too deeply to read",
                                                               "invalid JSON: an integer too long to read"]
    assert [n for n, _, _ in read_jsonl(io.BytesIO(data), skip_blank=True)] == [1, 3, 4, 5, 6, 7, 8]


def test_line_separators_inside_values_do_not_split_a_record(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b'{"v": "a\\r b"}\r\n' + json.dumps({"v": "c\u2028d"}, ensure_ascii=False).encode() + b"\n")
    assert list(read_records(path)) == [(1, {"v": "a\r b"}, None), (2, {"v": "c\u2028d"}, None)]


def test_json_list_records_come_with_the_line_they_start_on(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('[\n  {"id": "a"},\n\n  {"id":\n "b"}, 3\n]\n', encoding="utf-8")
    assert list(read_records(path)) == [(2, {"id": "a"}, None), (4, {"id": "b"}, None), (5, 3, None)]


@pytest.mark.parametrize(("text", "expected"), [
    (b'[{"id": "a"},\n{"id": "b"', [(1, {"id": "a"}, None),
                                   (2, None, "truncated: the file ends before the list is closed "
                                             "(Expecting ',' delimiter: column 11)")]),
    (b'[{"id": "a"},\n]', [(1, {"id": "a"}, None), (2, None, "invalid JSON: a comma before the closing ']'")]),
    (b'[1] [2]', [(1, 1, None), (1, None, "invalid JSON: extra data after the list")]),
    (b'{"id": "a"}', [(None, None, "not a list: a .json file must hold a list of records, not a JSON object")]),
    (b'[1,\n"\xff"]', [(None, None, "invalid JSON: not UTF-8 text (byte 6)")]),
])
def test_a_json_list_that_cannot_be_read_says_where_and_why(tmp_path: Path, text: bytes, expected: list) -> None:
    path = tmp_path / "x.json"
    path.write_bytes(text)
    assert _shown(list(read_records(path))) == expected


def test_a_file_that_cannot_be_opened_is_one_problem_for_the_whole_file(tmp_path: Path) -> None:
    folder = tmp_path / "dir.jsonl"
    folder.mkdir()
    assert list(read_records(folder)) == [(None, None, Reason(ReadKind.CANNOT_OPEN, "Is a directory"))]
    assert located(folder, None, "cannot open: Is a directory") == f"{folder}: cannot open: Is a directory"
    assert located(folder, 3, "truncated: x") == f"{folder}:3: truncated: x"


def test_data_files_are_a_file_or_a_folders_data_but_its_manifest(tmp_path: Path) -> None:
    for name in ("b.jsonl", "a.json", "manifest.json", "notes.txt"):
        (tmp_path / name).write_text("[]", encoding="utf-8")
    (tmp_path / "sub.jsonl").mkdir()
    assert data_files(tmp_path) == [tmp_path / "a.json", tmp_path / "b.jsonl"]
    assert data_files(tmp_path / "notes.txt") == [tmp_path / "notes.txt"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data_files(tmp_path / "nope")


def test_every_command_names_a_bad_line_the_same_way(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    path = out / "train.jsonl"
    path.write_bytes(_BROKEN_JSONL)
    expected = [located(path, line, reason) for line, reason in _BROKEN_REASONS]
    not_an_object = located(path, 5, "not an object: the record is a JSON list")

    def problems() -> list[str]:
        """The `file:line: reason` lines a command printed to stderr about lines other than the first."""
        return [p for p in capsys.readouterr().err.splitlines() if p.startswith(f"{path}:") and
                not p.startswith(f"{path}:1:")]

    for run in (lambda: main_validate([out]), lambda: main_stats(out, as_json=True),
                lambda: main_preview(out, tmp_path / "preview", n=5, seed=0),
                lambda: main_export(out, tmp_path / "export", "llava-jsonl", None)):
        assert run() == 1
        assert problems() == [*expected[:3], not_an_object, expected[3]]
    assert export(out, tmp_path / "again", "llava-jsonl", None).bad_lines == 6
