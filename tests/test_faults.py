"""A flaky, rate-limited server still yields the complete dataset; a killed build resumes without
paying twice and ends byte-identical to an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.llm.fakeserver import FakeServer, Knobs

runner = CliRunner()
SAMPLE = ["--source", "dota", "--sample", "--no-progress"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference")
    assert runner.invoke(app, ["build", *SAMPLE, "--dry-run", "--out", str(out)]).exit_code == 0
    return out


def _fast_retries(tmp_path: Path) -> Path:
    config = tmp_path / "fast.yaml"
    config.write_text("engine: {backoff_s: 0.01, transport_attempts: 12}\n")
    return config


def _ids(out: Path, split: str) -> list[tuple[str, str]]:
    return [(r["id"], r["task"]) for r in map(json.loads, (out / f"{split}.jsonl").read_text().splitlines())]


def test_5xx_and_429_answers_still_give_the_same_dataset(tmp_path: Path, reference: Path) -> None:
    """A transport fault is the same request sent again: the same answer, the same bytes."""
    out = tmp_path / "flaky"
    with FakeServer(Knobs(fail_5xx=0.2, fail_429=0.1, seed=7)) as server:
        env = {"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "sk-flaky"}
        result = runner.invoke(app, ["build", *SAMPLE, "--config", str(_fast_retries(tmp_path)), "--out", str(out)],
                               env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        stats = server.stats
    assert stats.injected_5xx > 0 and stats.injected_429 > 0
    for split in ("train", "val"):
        assert (out / f"{split}.jsonl").read_bytes() == (reference / f"{split}.jsonl").read_bytes()


def test_malformed_answers_are_asked_again_and_the_dataset_is_complete(tmp_path: Path, reference: Path) -> None:
    """A malformed answer is asked again with the problem named, which a model may answer differently
    (the mock does, as a real one would): every record is there, none failed."""
    out = tmp_path / "flaky"
    with FakeServer(Knobs(fail_5xx=0.2, fail_429=0.1, malformed=0.05, seed=7)) as server:
        env = {"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "sk-flaky"}
        result = runner.invoke(app, ["build", *SAMPLE, "--config", str(_fast_retries(tmp_path)), "--out", str(out)],
                               env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        stats = server.stats
    assert stats.injected_5xx > 0 and stats.injected_429 > 0 and stats.malformed > 0
    for split in ("train", "val"):
        assert _ids(out, split) == _ids(reference, split)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["failures"]["count"] == 0
    assert sum(u["retries"] for u in manifest["usage"]["by_stage"].values()) == stats.malformed


def _build_cmd(out: Path, config: Path) -> list[str]:
    return [sys.executable, "-m", "rsgpt4v", "build", *SAMPLE, "--concurrency", "2", "--config", str(config),
            "--out", str(out)]


def test_kill_minus_nine_then_rerun_is_identical_and_pays_only_the_rest(tmp_path: Path, reference: Path) -> None:
    out = tmp_path / "killed"
    config = _fast_retries(tmp_path)
    with FakeServer(Knobs(latency_s=0.15)) as server:
        env = {**os.environ, "OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "x"}
        proc = subprocess.Popen(_build_cmd(out, config), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while server.stats.completed < 6 and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        answered_before = server.stats.completed
        assert 6 <= answered_before < 27
        assert not (out / "train.jsonl").exists()
        rerun = subprocess.run(_build_cmd(out, config), env=env, capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr
        # answers that were cached before the kill are not paid again; at most the requests that
        # were in flight at the kill (concurrency 2) are sent twice
        assert server.stats.completed - answered_before <= 27 - answered_before + 2
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["usage"]["cache_hits"] >= answered_before - 2
    for split in ("train", "val"):
        assert (out / f"{split}.jsonl").read_bytes() == (reference / f"{split}.jsonl").read_bytes()
    assert not list(out.rglob("*.partial")) and not list(out.rglob("*.tmp"))
