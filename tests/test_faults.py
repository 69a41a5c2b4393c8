"""A flaky, rate-limited server still yields the complete dataset; a killed build resumes without
paying twice and ends byte-identical to an uninterrupted one. Nothing here depends on timing: the kill
comes at a point the fake server holds, not after a sleep."""

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
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.llm.fakeserver import FakeServer, Knobs, Stats
from rsgpt4v.tools.validate import validate

runner = CliRunner()
SAMPLE = ["--source", "dota", "--sample", "--no-progress"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference")
    assert runner.invoke(app, ["build", *SAMPLE, "--dry-run", "--out", str(out)]).exit_code == 0
    return out


def _fast_retries(tmp_path: Path) -> Path:
    """Quick retries, and claims on requests that lapse a second after a killed build (not a minute), so
    a rerun does not wait long for the answers that were on their way at the kill."""
    config = tmp_path / "fast.yaml"
    config.write_text("engine: {backoff_s: 0.01, transport_attempts: 12, claim_lease_s: 1}\n")
    return config


def _flaky_build(tmp_path: Path, knobs: Knobs) -> tuple[Path, Stats]:
    out = tmp_path / "flaky"
    with FakeServer(knobs) as server:
        env = {"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "sk-flaky"}
        result = runner.invoke(app, ["build", *SAMPLE, "--config", str(_fast_retries(tmp_path)), "--out", str(out)],
                               env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
    assert json.loads((out / "manifest.json").read_text())["failures"]["count"] == 0
    return out, server.stats


def _records(out: Path) -> dict[str, list[dict]]:
    return {split: [json.loads(line) for line in (out / f"{split}.jsonl").read_text().splitlines()]
            for split in ("train", "val")}


def test_5xx_and_429_still_give_the_very_dataset_of_a_healthy_server(tmp_path: Path, reference: Path) -> None:
    """A transport retry sends the same bytes again, so the answers, and the records, are the same."""
    out, stats = _flaky_build(tmp_path, Knobs(fail_5xx=0.2, fail_429=0.1, seed=7))
    # the faults are drawn in arrival order from a seeded stream; how many there are does not depend on the order
    assert stats.injected_5xx > 0 and stats.injected_429 > 0
    for split in ("train", "val"):
        assert (out / f"{split}.jsonl").read_bytes() == (reference / f"{split}.jsonl").read_bytes()


def test_malformed_answers_are_asked_again_and_the_dataset_is_complete(tmp_path: Path, reference: Path) -> None:
    """A malformed answer is asked again with the reason, as another request (whose answer may be worded
    otherwise, as a real model's is): every record is still there and sound. Which request gets the fault
    depends on arrival order, so only what holds for any order is asserted."""
    out, stats = _flaky_build(tmp_path, Knobs(malformed=0.1, seed=7))
    assert stats.malformed > 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert sum(u["retries"] for u in manifest["usage"]["by_stage"].values()) == stats.malformed
    assert sum(u["retry_reasons"].get("invalid_json", 0) for u in manifest["usage"]["by_stage"].values()) \
        == stats.malformed
    got, want = _records(out), _records(reference)
    assert {s: [r["id"] for r in rs] for s, rs in got.items()} == {s: [r["id"] for r in rs] for s, rs in want.items()}
    assert validate([out]).count == 0


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
    with FakeServer(Knobs()) as server:
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
