"""A flaky, rate-limited server still yields the complete dataset; a killed build resumes without
paying twice and ends byte-identical to an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import dota_knobs
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.llm.fakeserver import FakeServer

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


def test_5xx_429_and_malformed_answers_still_give_the_complete_dataset(tmp_path: Path, reference: Path) -> None:
    out = tmp_path / "flaky"
    with FakeServer(dota_knobs(fail_5xx=0.2, fail_429=0.1, malformed=0.05, seed=7)) as server:
        env = {"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "sk-flaky"}
        result = runner.invoke(app, ["build", *SAMPLE, "--config", str(_fast_retries(tmp_path)), "--out", str(out)],
                               env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        stats = server.stats
    assert stats.injected_5xx > 0 and stats.injected_429 > 0 and stats.malformed > 0
    for split in ("train", "val"):
        assert (out / f"{split}.jsonl").read_bytes() == (reference / f"{split}.jsonl").read_bytes()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["failures"]["count"] == 0
    assert sum(u["retries"] for u in manifest["usage"]["by_stage"].values()) == stats.malformed


def _build_cmd(out: Path, config: Path) -> list[str]:
    return [sys.executable, "-m", "rsgpt4v", "build", *SAMPLE, "--concurrency", str(CONCURRENCY), "--config",
            str(config), "--out", str(out)]


CONCURRENCY = 2
# Only a bound on how long a test may hang: nothing is asserted about how fast anything happens.
HANG_GUARD_S = 600


class _Gate:
    """Lets the first `through` chat completions of a fake server pass and holds every later one until
    `release()`, when the held ones are answered 503 unseen (their client is gone): a build killed
    while requests are held has had exactly `through` answers, whatever the machine's load."""

    def __init__(self, server: FakeServer, through: int) -> None:
        self._handle, server.api.handle = server.api.handle, self.handle
        self._through = through
        self._arrived = 0
        self._lock = threading.Lock()
        self._open = threading.Event()

    @property
    def held(self) -> int:
        with self._lock:
            return max(0, self._arrived - self._through)

    def handle(self, method: str, path: str, content_type: str, body: bytes) -> tuple[int, object, dict]:
        if path.endswith("/chat/completions") and not self._open.is_set():
            with self._lock:
                self._arrived += 1
                hold = self._arrived > self._through
            if hold:
                self._open.wait(HANG_GUARD_S)
                return 503, {"error": {"message": "held until the client was gone", "type": "server_error"}}, {}
        return self._handle(method, path, content_type, body)

    def release(self) -> None:
        self._open.set()


def _wait_until(condition: Callable[[], bool], proc: subprocess.Popen) -> None:
    """Poll `condition` until it holds; fail at once if the build exits first (it cannot finish while
    requests are held, so it exited on an error)."""
    deadline = time.monotonic() + HANG_GUARD_S
    while not condition():
        assert proc.poll() is None, f"the build exited with {proc.returncode} before the kill"
        assert time.monotonic() < deadline, "the build hung"
        time.sleep(0.01)


def test_kill_minus_nine_then_rerun_is_identical_and_pays_only_the_rest(tmp_path: Path, reference: Path) -> None:
    out = tmp_path / "killed"
    config = _fast_retries(tmp_path)
    total = json.loads((reference / "manifest.json").read_text())["usage"]["api_calls"]
    answered = 6
    with FakeServer(dota_knobs()) as server:
        gate = _Gate(server, through=answered)
        env = {**os.environ, "OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "x"}
        proc = subprocess.Popen(_build_cmd(out, config), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            # Every slot is taken by a held request: the answers before them have all been received
            # and cached (a slot is freed only once its answer is in the cache).
            _wait_until(lambda: gate.held == CONCURRENCY and server.stats.completed == answered, proc)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            gate.release()
        assert server.stats.completed == answered
        assert not (out / "train.jsonl").exists()
        rerun = subprocess.run(_build_cmd(out, config), env=env, capture_output=True, text=True,
                               timeout=HANG_GUARD_S)
        assert rerun.returncode == 0, rerun.stderr
        # the answers cached before the kill are not paid again, and nothing else is paid twice
        assert server.stats.completed == total
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["usage"]["cache_hits"] == answered
    assert manifest["usage"]["api_calls"] == total - answered
    for split in ("train", "val"):
        assert (out / f"{split}.jsonl").read_bytes() == (reference / f"{split}.jsonl").read_bytes()
    assert not list(out.rglob("*.partial")) and not list(out.rglob("*.tmp"))
