"""Issue 11: no batch is paid twice: the intent is saved before the remote side changes, orphans are
found again, answers are collected into the cache the build uses; batch commands fail in one line."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.llm import batch as batch_module
from rsgpt4v.llm.fakeserver import FakeServer, Knobs

runner = CliRunner()
SAMPLE = ["--source", "dota", "--sample", "--limit", "2", "--no-progress"]


def _invoke(args: list[str], env: dict[str, str]):
    return runner.invoke(app, args, env=env, catch_exceptions=False)


def _submitted(output: str, stage: str) -> int:
    m = re.search(rf"submitted (\d+) requests \((\d+) {stage}\)", output)
    assert m, output
    return int(m.group(1))


def _until_done(args: list[str], env: dict[str, str]) -> str:
    for _ in range(6):
        output = _invoke(args, env).output
        if output.startswith("wrote"):
            return output
    raise AssertionError(output)


def test_batch_collect_into_the_builds_cache_is_not_paid_again(tmp_path: Path) -> None:
    out, cache = tmp_path / "out", tmp_path / "shared" / "answers.sqlite"
    with FakeServer(Knobs()) as server:
        env = {"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "x"}
        args = ["build", *SAMPLE, "--batch", "--cache", str(cache), "--out", str(out)]
        local = _submitted(_invoke(args, env).output, "local")
        collected = _invoke(["batch", "collect", "--out", str(out)], env)
        assert collected.exit_code == 0, collected.output
        assert f"collected {local} answers into {cache.resolve()}" in collected.output
        assert not (out / "cache.sqlite").exists()
        _submitted(_invoke(args, env).output, "global")
        assert server.stats.batches == 2


def test_collected_into_another_cache_is_collected_again_not_resubmitted(tmp_path: Path) -> None:
    out, cache, other = tmp_path / "out", tmp_path / "mine.sqlite", tmp_path / "elsewhere.sqlite"
    with FakeServer(Knobs()) as server:
        env = {"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "x"}
        args = ["build", *SAMPLE, "--batch", "--cache", str(cache), "--out", str(out)]
        local = _submitted(_invoke(args, env).output, "local")
        assert f"collected {local} answers" in _invoke(["batch", "collect", "--out", str(out), "--cache", str(other)],
                                                       env).output
        _submitted(_invoke(args, env).output, "global")
        assert server.stats.batches == 2
        state = json.loads((out / "batch" / "state.json").read_text())
        assert state["usage"]["requests"] == local  # paid once, counted once


def test_a_kill_between_creating_a_batch_and_saving_it_leaves_no_orphan(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "out"
    real_adopt = batch_module._adopt

    def killed(entry, remote):
        raise KeyboardInterrupt

    with FakeServer(Knobs()) as server:
        env = {"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "x"}
        args = ["build", *SAMPLE, "--batch", "--out", str(out)]
        monkeypatch.setattr(batch_module, "_adopt", killed)
        first = runner.invoke(app, args, env=env)
        assert first.exit_code == 130
        state = json.loads((out / "batch" / "state.json").read_text())
        (intent,) = state["batches"]
        assert intent["id"] is None and intent["status"] == "intent" and len(intent["sha256"]) == 64
        assert server.stats.batches == 1                      # the batch exists and is paid for
        monkeypatch.setattr(batch_module, "_adopt", real_adopt)
        output = _until_done(args, env)
        assert "0 sent" in output
        assert server.stats.batches == 3                      # local (found again), global, dialogue
        state = json.loads((out / "batch" / "state.json").read_text())
        assert server.stats.batch_lines == sum(b["lines"] for b in state["batches"])


def test_a_lost_state_file_finds_its_batches_again(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with FakeServer(Knobs(batch_delay_s=3600)) as server:
        env = {"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "x"}
        args = ["build", *SAMPLE, "--batch", "--out", str(out)]
        _invoke(args, env)
        (out / "batch" / "state.json").unlink()
        _invoke(args, env)
        assert server.stats.batches == 1
        state = json.loads((out / "batch" / "state.json").read_text())
        assert len(state["batches"]) == 1 and state["batches"][0]["id"] == "batch-000001"


def test_corrupt_state_json_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with FakeServer(Knobs()) as server:
        env = {"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "x"}
        _invoke(["build", *SAMPLE, "--batch", "--out", str(out)], env)
        (out / "batch" / "state.json").write_text('{"batches": [{"id": "b1", ')
        for args in (["batch", "status", "--out", str(out)], ["batch", "collect", "--out", str(out)],
                     ["build", *SAMPLE, "--batch", "--out", str(out)]):
            result = runner.invoke(app, args, env=env)
            assert result.exit_code == 2, result.output
            lines = result.output.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith(f"error: {out / 'batch' / 'state.json'}: unreadable"), lines
            assert "move it aside and rerun the build" in lines[0]


def test_batch_commands_with_the_server_down_are_one_line(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with FakeServer(Knobs()) as server:
        env = {"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "x"}
        _invoke(["build", *SAMPLE, "--batch", "--out", str(out)], env)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    for command in ("status", "collect"):
        result = runner.invoke(app, ["batch", command, "--out", str(out)],
                               env={"OPENAI_BASE_URL": down, "OPENAI_API_KEY": "x"})
        assert result.exit_code == 1, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: cannot reach the API"), lines
