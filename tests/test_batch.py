"""The Batch API path: submit, status, collect, resubmission, file splitting, against the fake server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsgpt4v.cli import app
from conftest import dota_knobs
from rsgpt4v.llm.fakeserver import FakeServer, Knobs
from rsgpt4v.llm.batch import BatchQueue, split_request_files

runner = CliRunner()
SAMPLE = ["--source", "dota", "--sample", "--limit", "2", "--no-progress"]


def _invoke(args: list[str], env: dict[str, str] | None = None):
    return runner.invoke(app, args, env=env, catch_exceptions=False)


@pytest.fixture(scope="module")
def live_reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("live")
    assert _invoke(["build", *SAMPLE, "--dry-run", "--out", str(out)]).exit_code == 0
    return out


def test_batch_passes_stage_by_stage_give_the_live_result(tmp_path: Path, live_reference: Path) -> None:
    out = tmp_path / "batch"
    config = tmp_path / "small-files.yaml"
    config.write_text("batch: {max_lines: 3}\n")
    with FakeServer(dota_knobs()) as server:
        env = {"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "sk-batch-secret"}
        args = ["build", *SAMPLE, "--batch", "--config", str(config), "--out", str(out)]
        first = _invoke(args, env)
        assert first.exit_code == 0, first.output
        assert "submitted 8 requests (8 local)" in first.output
        state = json.loads((out / "batch" / "state.json").read_text())
        assert [b["lines"] for b in state["batches"]] == [3, 3, 2]           # split at max_lines
        assert not (out / "train.jsonl").exists()
        status = _invoke(["batch", "status", "--out", str(out)], env)
        assert status.exit_code == 0 and status.output.count("completed") == 3
        collected = _invoke(["batch", "collect", "--out", str(out)], env)
        assert "collected 8 answers" in collected.output
        passes = [_invoke(args, env).output for _ in range(3)]
        assert "submitted 5 requests (5 global)" in passes[0]
        assert "submitted 5 requests (5 dialogue)" in passes[1]
        assert "wrote" in passes[2] and "0 sent, 18 from cache" in passes[2]
        assert server.stats.batch_lines == 18 and server.stats.completed == 18
    assert (out / "train.jsonl").read_bytes() == (live_reference / "train.jsonl").read_bytes()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["batch"]["usage"]["requests"] == 18
    assert manifest["batch"]["usage"]["cost_usd"] > 0
    for f in out.rglob("*"):
        if f.is_file():
            assert b"sk-batch-secret" not in f.read_bytes()


def test_expired_requests_are_resubmitted_until_done(tmp_path: Path, live_reference: Path) -> None:
    out = tmp_path / "expiring"
    with FakeServer(dota_knobs(batch_expire=0.4, seed=3)) as server:
        env = {"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "x"}
        args = ["build", *SAMPLE, "--batch", "--out", str(out)]
        for _ in range(30):
            result = _invoke(args, env)
            if result.output.startswith("wrote"):
                break
        else:
            pytest.fail("the build never completed")
        assert server.stats.batch_lines > 15                          # some requests went twice
    assert (out / "train.jsonl").read_bytes() == (live_reference / "train.jsonl").read_bytes()


def test_in_progress_batches_are_not_resubmitted(tmp_path: Path) -> None:
    out = tmp_path / "slow"
    with FakeServer(Knobs(batch_delay_s=3600)) as server:
        env = {"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "x"}
        args = ["build", *SAMPLE, "--batch", "--out", str(out)]
        assert "submitted" in _invoke(args, env).output
        again = _invoke(args, env)
        assert "still in progress" in again.output
        assert server.stats.batches == 1


def test_request_files_split_by_size(tmp_path: Path) -> None:
    queue = BatchQueue()
    for i in range(10):
        queue.add(f"{i:064d}", "local", {"model": "m", "messages": [{"role": "user", "content": "x" * 1000}]})
    line_size = len(json.dumps(queue.lines[f"{0:064d}"], sort_keys=True, separators=(",", ":"))) + 1
    files = split_request_files(queue, tmp_path, "pass-001", max_lines=50_000, max_bytes=3 * line_size + 10)
    assert [len(f.read_text().splitlines()) for f in files] == [3, 3, 3, 1]
    lines = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert [line["custom_id"] for line in lines] == sorted(queue.lines)
    assert lines[0]["url"] == "/v1/chat/completions" and lines[0]["method"] == "POST"


def test_mock_batch_needs_wait(tmp_path: Path) -> None:
    result = runner.invoke(app, ["build", *SAMPLE, "--dry-run", "--batch", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--wait" in result.output
