"""Issue 11: a rerun gives failed windows their remaining chances and pays only for those; estimate
budgets re-asks; retry-after-ms is honoured."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import openai
import pytest
from conftest import LoopbackServer, completion
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.llm.cache import Cache
from rsgpt4v.llm.engine import _retry_after
from rsgpt4v.llm.mock import completion_for

runner = CliRunner()


def _build(out: Path, server: LoopbackServer, *extra: str):
    return runner.invoke(app, ["build", "--no-progress", "--source", "dota", "--sample", "--out", str(out),
                               "--concurrency", "2", *extra],
                         env={"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "x"}, catch_exceptions=False)


def _stage(body: dict) -> str:
    return body["response_format"]["json_schema"]["name"].removesuffix("Response").lower()


FAULTS = {
    "malformed": lambda body: completion('{"caption": "An airport', finish_reason="stop"),
    "cut_off": lambda body: completion(json.loads(completion_for(body)["choices"][0]["message"]["content"]),
                                       finish_reason="length"),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_rerun_against_a_healthy_server_repairs_failures_and_pays_only_for_them(tmp_path: Path, fault: str) -> None:
    out = tmp_path / "out"
    healthy = {"on": False}

    def answer(body: dict) -> tuple[int, dict]:
        if _stage(body) == "global" and not healthy["on"]:
            return 200, FAULTS[fault](body)
        return 200, completion_for(body)

    server = LoopbackServer(answer)
    try:
        assert _build(out, server).exit_code == 0
        first = json.loads((out / "manifest.json").read_text())
        windows = first["counts"]["windows"]
        assert first["failures"]["count"] == windows
        assert first["usage"]["by_stage"]["global"]["api_calls"] == 3 * windows
        sent_before = len(server.bodies)

        healthy["on"] = True
        assert _build(out, server).exit_code == 0
        second = json.loads((out / "manifest.json").read_text())
        rerun = server.bodies[sent_before:]
        assert second["failures"]["count"] == 0
        # Only the failed global requests were asked again (once each, as attempt 4), then their dialogues.
        assert sorted(_stage(b) for b in rerun) == ["dialogue"] * windows + ["global"] * windows
        assert all("attempt 4" in json.dumps(b["messages"][-1]) for b in rerun if _stage(b) == "global")
        assert second["usage"]["by_stage"]["local"]["api_calls"] == 0
        repaired = (out / "train.jsonl").read_bytes()

        sent_before = len(server.bodies)
        assert _build(out, server).exit_code == 0
        assert len(server.bodies) == sent_before                    # now everything replays from the cache
        assert (out / "train.jsonl").read_bytes() == repaired
    finally:
        server.close()
    cache = Cache(out / "cache.sqlite")
    verdicts = [json.loads(v) for (v,) in cache._db.execute("SELECT verdict FROM verdicts WHERE stage = 'global'")]
    cache.close()
    assert len(verdicts) == windows
    kind = "invalid_json" if fault == "malformed" else "length"
    assert all(v["ok"] and v["attempts"] == 4 and [h["kind"] for h in v["history"]] == [kind] * 3 for v in verdicts)


def test_a_request_that_keeps_failing_is_retried_on_one_rerun_only(tmp_path: Path) -> None:
    out = tmp_path / "out"
    server = LoopbackServer(lambda body: (200, completion(None, refusal="I can't help with that.")))
    try:
        _build(out, server, "--limit", "1")
        calls = [len(server.bodies)]
        for _ in range(2):
            _build(out, server, "--limit", "1")
            calls.append(len(server.bodies))
    finally:
        server.close()
    assert calls[1] - calls[0] == calls[0]      # the rerun gives each failed request `attempts` more tries
    assert calls[2] == calls[1]                 # engine.repair_rounds: 1, then the failure is final


def test_estimate_budgets_the_reask_rate_an_earlier_cache_measured(tmp_path: Path) -> None:
    out = tmp_path / "out"
    state = {"n": 0}

    def answer(body: dict) -> tuple[int, dict]:
        state["n"] += 1
        return 200, completion("not json") if state["n"] % 4 == 0 else completion_for(body)

    server = LoopbackServer(answer)
    try:
        _build(out, server, "--concurrency", "1")
    finally:
        server.close()
    cache = Cache(out / "cache.sqlite")
    rate = cache.reask_rate()
    cache.close()
    assert rate is not None and rate > 0
    plain = json.loads(runner.invoke(app, ["estimate", "--source", "dota", "--sample", "--json", "--config",
                                           str(_config(tmp_path, "engine: {reask_rate: 0}\n"))]).stdout)
    measured = json.loads(runner.invoke(app, ["estimate", "--source", "dota", "--sample", "--json", "--cache",
                                              str(out / "cache.sqlite")]).stdout)
    default = json.loads(runner.invoke(app, ["estimate", "--source", "dota", "--sample", "--json"]).stdout)
    assert measured["reask_rate"] == round(rate, 4) and default["reask_rate"] == 0.1 and plain["reask_rate"] == 0
    total = {name: t["stages"][-1] for name, t in (("plain", plain), ("measured", measured), ("default", default))}
    assert total["plain"]["reasks"] == 0 and total["plain"]["requests"] == total["measured"]["requests"]
    assert total["measured"]["usd_live"] == pytest.approx(total["plain"]["usd_live"] * (1 + rate), rel=0.01)
    assert total["default"]["usd_live"] == pytest.approx(total["plain"]["usd_live"] * 1.1, rel=0.01)


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def _rate_limited(headers: dict[str, str]) -> openai.RateLimitError:
    response = httpx2.Response(429, headers=headers, request=httpx2.Request("POST", "http://test.invalid/v1/x"))
    return openai.RateLimitError("slow down", response=response, body=None)


@pytest.mark.parametrize("headers, seconds", [
    ({"retry-after-ms": "1500"}, 1.5),
    ({"retry-after-ms": "250", "retry-after": "3"}, 0.25),
    ({"retry-after": "2"}, 2.0),
    ({"retry-after-ms": "soon", "retry-after": "2"}, 2.0),
    ({"retry-after-ms": "-5"}, None),
    ({}, None),
])
def test_retry_after_ms_is_honoured(headers: dict[str, str], seconds: float | None) -> None:
    assert _retry_after(_rate_limited(headers)) == seconds
