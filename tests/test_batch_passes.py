"""The files engine's write-run-import loop: no key needed, retries of one stage ride in the same pass as
the next stage's first requests, every pass says how many passes may still come (and the count
holds), a batch build's passes are one run (a failure is not repaired by its next pass), and
`batch import` skips result files it imported before."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.llm.mock import Style, completion_for

SAMPLE = ("--source", "dota", "--sample", "--no-progress", "--batch", "--batch-engine", "files")


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.output


def _answer(requests: Path, results: Path, style: Style) -> Counter[str]:
    """What `vllm run-batch` writes for a request file, answered by the mock in `style`; stages counted."""
    stages: Counter[str] = Counter()
    lines = []
    for raw in requests.read_text(encoding="utf-8").splitlines():
        request = json.loads(raw)
        stages[request["body"]["response_format"]["json_schema"]["name"]] += 1
        lines.append(json.dumps({"custom_id": request["custom_id"], "error": None,
                                 "response": {"status_code": 200, "body": completion_for(request["body"], style)}}))
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return stages


def _bound(output: str) -> int:
    line = next(x for x in output.splitlines() if x.startswith("at most "))
    return int(line.split()[2])


def test_the_files_loop_needs_no_key_and_keeps_its_word_on_the_passes_left(tmp_path: Path) -> None:
    out = tmp_path / "out"
    no_key = {"OPENAI_API_KEY": "", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}   # nothing may be sent
    style = Style(mistakes=0.35)
    passes: list[Counter[str]] = []
    bounds: list[int] = []
    for n in range(20):
        code, output = _run("build", *SAMPLE, "--out", str(out), env=no_key)
        assert code == 0, output
        manifest = json.loads((out / "manifest.json").read_text())
        if manifest["status"] == "complete":
            break
        bounds.append(_bound(output))
        assert manifest["batch"]["passes_left"] == bounds[-1]
        results = []
        stages: Counter[str] = Counter()
        for requests in sorted((out / "batch" / "requests").glob("*.jsonl")):
            results.append(out / "batch" / "results" / f"pass{n}-{requests.name}")
            stages += _answer(requests, results[-1], style)
        passes.append(stages)
        code, output = _run("batch", "import", str(out), *map(str, results))
        assert code == 0, output
    else:
        raise AssertionError("the loop did not end")
    # the bound each pass printed held: no more passes came than it said, and it never grew
    assert all(len(passes) - i <= bound for i, bound in enumerate(bounds))
    assert bounds == sorted(bounds, reverse=True)
    # retries of one stage and the next stage's first requests shared passes
    assert any(len(stages) > 1 for stages in passes)
    # a batch build's passes are one run: a request is asked at most engine.attempts (3) times
    assert manifest["usage"]["by_stage"]["local"]["retries"] > 0
    assert len(passes) <= 3 * 3 + 3 * 4          # three stages, and the splits of a local request of <= 14 objects


def test_batch_import_skips_result_files_it_imported_before(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, output = _run("build", *SAMPLE, "--dry-run", "--out", str(out))
    assert code == 0, output
    requests = sorted((out / "batch" / "requests").glob("*.jsonl"))
    results = [tmp_path / "results" / f.name for f in requests]
    for f, r in zip(requests, results):
        _answer(f, r, Style())
    code, first = _run("batch", "import", str(out), *map(str, results))
    assert code == 0 and "imported 13 answers" in first and "skipped" not in first
    copy = tmp_path / "results" / "again-under-another-name.jsonl"
    copy.write_bytes(results[0].read_bytes())
    code, second = _run("batch", "import", str(out), *map(str, results), str(copy))
    assert code == 0, second
    assert second.startswith(f"skipped {len(results) + 1} result file(s) imported before: {results[0]}")
    assert str(copy) in second.splitlines()[0]
    assert "imported 0 answers" in second
