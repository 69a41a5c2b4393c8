"""Issue 19: `batch import` checks every result body with the model a live answer passes (and the Batch
API's collect does too), counts a line given twice once, keeps the first of two different answers and
names the second, names a cut line in a request file and goes on, and answers `--cache DIR` in one
line; no completion in the cache, however shaped, can crash a later build."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from conftest import collect_output
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.core.responses import GlobalResponse
from rsgpt4v.llm.batch_files import import_results
from rsgpt4v.llm.cache import Cache
from rsgpt4v.llm.completion import completion_problem
from rsgpt4v.llm.engine import FailureKind, Unusable, check_completion
from rsgpt4v.llm.mock import completion_for

runner = CliRunner()
GOOD = completion_for({"model": "m", "messages": []})


def _with(**change) -> dict:
    body = json.loads(json.dumps(GOOD))
    for where, value in change.items():
        if where == "choices":
            body["choices"] = value
        elif where == "usage":
            body["usage"] = value
        else:
            body["choices"][0]["message"][where] = value
    return body


HOSTILE = {
    "choices [null]": _with(choices=[None]),
    "choices []": _with(choices=[]),
    "choices a text": _with(choices="many"),
    "content a number": _with(content=123),
    "content a list": _with(content=["a"]),
    "refusal a number": _with(refusal=7),
    "message null": _with(choices=[{"index": 0, "message": None, "finish_reason": "stop"}]),
    "usage a text": _with(usage="lots"),
    "negative tokens": _with(usage={"prompt_tokens": -5, "completion_tokens": 1}),
}


def _line(key: str, body: object, status: int = 200) -> str:
    return json.dumps({"custom_id": key, "response": {"status_code": status, "body": body}, "error": None})


@pytest.mark.parametrize("name", HOSTILE)
def test_a_status_200_body_of_another_shape_is_named_and_not_cached(tmp_path: Path, name: str) -> None:
    results = tmp_path / "results.jsonl"
    results.write_text(_line("bad", HOSTILE[name]) + "\n" + _line("good", GOOD) + "\n")
    cache = Cache(tmp_path / "cache.sqlite")
    tally = import_results([results], cache, "m")
    assert (tally.answers, tally.failed) == (1, 1)
    assert cache.get("bad") is None and cache.get("good") == GOOD
    (problem,) = tally.problems
    assert problem.startswith(f"{results}:1: the response is not a chat completion (")
    assert problem.endswith("; the request is written again on the next pass")
    cache.close()


@pytest.mark.parametrize("body", [*HOSTILE.values(), [1, 2], "text", None, 5, {"choices": [{"message": {}}]}])
def test_no_completion_however_shaped_escapes_check_completion(body: object) -> None:
    with pytest.raises(Unusable) as caught:
        check_completion(body, GlobalResponse)
    assert caught.value.kind in (FailureKind.MALFORMED, FailureKind.EMPTY)


def test_answers_with_hostile_json_inside_are_unusable_not_crashes() -> None:
    for content in ("[" * 100_000, '{"caption": ' + "9" * 5000 + "}"):
        with pytest.raises(Unusable) as caught:
            check_completion(_with(content=content), GlobalResponse)
        assert caught.value.kind == FailureKind.INVALID_JSON
    assert completion_problem(GOOD) is None


def test_duplicates_count_once_and_a_conflict_keeps_the_first_answer(tmp_path: Path) -> None:
    other = _with(content=json.dumps({"caption": "another", "description": "another"}))
    first, second = tmp_path / "r1.jsonl", tmp_path / "r2.jsonl"
    first.write_text("\n".join([_line("a", GOOD), _line("a", GOOD), _line("b", GOOD)]) + "\n")
    second.write_text("\n".join([_line("b", other), _line("c", GOOD)]) + "\n")
    out = tmp_path / "out"
    out.mkdir()
    result = runner.invoke(app, ["batch", "import", str(out), str(first), str(second)])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert lines[0] == f"{second}:1: another answer to b... is already in the cache; the first one is kept"
    assert lines[-1].startswith("imported 3 answers into") and "1 already in the cache" in lines[-1]
    assert "1 conflicting with the answer in the cache (kept)" in lines[-1]
    cache = Cache(out / "cache.sqlite")
    assert cache.get("b") == GOOD
    cache.close()
    again = runner.invoke(app, ["batch", "import", str(out), str(first)])  # the same file once more: skipped
    assert again.exit_code == 0 and "imported 0 answers" in again.output
    assert again.output.startswith(f"skipped 1 result file(s) imported before: {first}")
    copy = tmp_path / "r1-again.jsonl"   # its lines in another file: each one already in the cache
    copy.write_text(first.read_text() + _line("d", GOOD) + "\n")
    third = runner.invoke(app, ["batch", "import", str(out), str(copy)])
    assert third.exit_code == 0 and "imported 1 answers" in third.output and "3 already in the cache" in third.output


def test_cache_that_is_a_folder_is_one_line(tmp_path: Path) -> None:
    results = tmp_path / "r.jsonl"
    results.write_text(_line("a", GOOD) + "\n")
    folder = tmp_path / "cachedir"
    folder.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    result = runner.invoke(app, ["batch", "import", str(out), str(results), "--cache", str(folder)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {folder}: a folder, not a cache file: give --cache a file name"]


def test_a_cut_line_in_a_request_file_is_named_and_the_import_goes_on(tmp_path: Path) -> None:
    out = tmp_path / "out"
    requests = out / "batch" / "requests"
    requests.mkdir(parents=True)
    whole = json.dumps({"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {}})
    (requests / "dota-001.jsonl").write_text(whole + "\n" + whole.replace('"a"', '"b"')[:25])
    results = tmp_path / "r.jsonl"
    results.write_text(_line("a", GOOD) + "\n" + _line("b", GOOD) + "\n")
    result = runner.invoke(app, ["batch", "import", str(out), str(results)])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 1
    assert f"{requests / 'dota-001.jsonl'}:2: truncated: the last line is cut off" in result.output
    assert "imported 2 answers" in result.output and "(1 answer requests not in the build's request files)" in \
        result.output


def test_collect_does_not_cache_a_body_of_another_shape(tmp_path: Path) -> None:
    tally, cache = collect_output(tmp_path, (_line("bad", HOSTILE["content a number"]) + "\n" + _line("good", GOOD)
                                             + "\n").encode())
    assert tally == {"answers": 1, "failed": 1, "rejected": 0}
    assert cache.get("bad") is None and cache.get("good") == GOOD
    cache.close()


def test_a_cache_full_of_malformed_answers_does_not_crash_a_build(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["build", "--no-progress", "--dry-run", "-s", "dota", "--sample", "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    db = sqlite3.connect(out / "cache.sqlite")
    keys = [row[0] for row in db.execute("SELECT key FROM responses")]
    bodies = list(HOSTILE.values())
    for i, key in enumerate(keys):  # as an older import might have left them
        db.execute("UPDATE responses SET completion = ? WHERE key = ?", (json.dumps(bodies[i % len(bodies)]), key))
    db.execute("DELETE FROM verdicts")
    db.commit()
    db.close()
    result = runner.invoke(app, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    reasons = {k: n for stage in manifest["usage"]["by_stage"].values() for k, n in stage["retry_reasons"].items()}
    assert reasons.get("malformed", 0) + reasons.get("empty", 0) >= len(keys) // 2
