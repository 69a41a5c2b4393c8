"""Issue 19: builds sharing one `--cache` pay each request once. A request is claimed in the cache
before it is sent; a second build that needs it waits for the answer; a claim whose holder died is
taken over: at once when it ran on this machine, else when its lease lapses."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from conftest import Scripted, completion
from pydantic import BaseModel

from rsgpt4v.core.config import load_config
from rsgpt4v.llm import cache as cache_module
from rsgpt4v.llm.cache import Cache
from rsgpt4v.llm.cost import PriceTable
from rsgpt4v.llm.engine import Engine
from rsgpt4v.llm.fakeserver import FakeServer, Knobs
from rsgpt4v.llm.request import ChatRequest

REPO = Path(__file__).resolve().parents[1]


class Caption(BaseModel):
    caption: str


def _request() -> ChatRequest:
    return ChatRequest(stage="global", model="gpt-test", messages=[{"role": "user", "content": "Caption this."}],
                       response_model=Caption, params={"temperature": 0.2})


def test_a_claim_is_exclusive_until_released_or_lapsed(tmp_path: Path, monkeypatch) -> None:
    now = [1_000.0]  # the leases' clock, moved by the test: a lapse is a step of it, not a wait
    monkeypatch.setattr(cache_module, "time", SimpleNamespace(time=lambda: now[0]))
    a, b = Cache(tmp_path / "c.sqlite"), Cache(tmp_path / "c.sqlite")
    assert a.claim("k", 60) and a.claim("k", 60)  # ours, and ours again
    assert not b.claim("k", 60) and b.claimed("k") and not a.claimed("k")
    a.release("k")
    assert b.claim("k", 0.2) and not a.claim("k", 60)
    now[0] += 0.19
    assert a.claimed("k") and not a.claim("k", 60)
    now[0] += 0.02  # b stops renewing, as a dead holder does
    assert not a.claimed("k") and a.claim("k", 60)
    a.close()
    assert b.claim("k", 60)  # closing gives up a cache's claims
    b.close()


def test_a_waiting_engine_takes_the_answer_of_the_holder(tmp_path: Path, scripted_client) -> None:
    holder = Cache(tmp_path / "c.sqlite")
    key = _request().cache_key()
    assert holder.claim(key, 60)
    handler = Scripted([(200, completion({"caption": "mine"}), {})])
    cfg = load_config(overrides={"engine": {"claim_lease_s": 60}}).engine
    engine = Engine(scripted_client(handler), Cache(tmp_path / "c.sqlite"), cfg, "gpt-4o", PriceTable.load())

    async def both() -> dict:
        waiting = asyncio.ensure_future(engine.complete(_request()))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        holder.put(key, "global", "gpt-test", completion({"caption": "theirs"}))
        holder.release(key)
        return await waiting

    answer = asyncio.run(both())
    assert json.loads(answer["choices"][0]["message"]["content"]) == {"caption": "theirs"}
    assert handler.bodies == [] and engine.usage["global"].cache_hits == 1 and engine.usage["global"].api_calls == 0


def test_a_killed_builds_claims_on_this_machine_are_taken_over_at_once(tmp_path: Path) -> None:
    """kill -9, then the same command again: the rerun does not wait out the dead build's leases."""
    key = _request().cache_key()
    died = subprocess.run([sys.executable, "-c", "import os, sys; from rsgpt4v.llm.cache import Cache; "
                           f"Cache(sys.argv[1]).claim({key!r}, 3600); os._exit(9)", str(tmp_path / "c.sqlite")],
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert died.returncode == 9
    rerun = Cache(tmp_path / "c.sqlite")
    assert not rerun.claimed(key) and rerun.claim(key, 60)


def test_a_claim_held_on_another_machine_lapses_and_the_request_is_sent(tmp_path: Path, scripted_client) -> None:
    key = _request().cache_key()
    other = Cache(tmp_path / "c.sqlite")
    other.holder = "another-host:1:0123456789ab"  # its process cannot be looked at from here
    assert other.claim(key, 1.0)
    handler = Scripted([(200, completion({"caption": "mine"}), {})])
    cfg = load_config(overrides={"engine": {"claim_lease_s": 1.0}}).engine
    engine = Engine(scripted_client(handler), Cache(tmp_path / "c.sqlite"), cfg, "gpt-4o", PriceTable.load())
    answer = asyncio.run(engine.complete(_request()))
    assert json.loads(answer["choices"][0]["message"]["content"]) == {"caption": "mine"}
    assert len(handler.bodies) == 1


def test_a_failed_holder_releases_its_claim_and_the_waiter_asks(tmp_path: Path, scripted_client) -> None:
    holder = Cache(tmp_path / "c.sqlite")
    key = _request().cache_key()
    assert holder.claim(key, 60)
    handler = Scripted([(200, completion({"caption": "mine"}), {})])
    cfg = load_config().engine
    engine = Engine(scripted_client(handler), Cache(tmp_path / "c.sqlite"), cfg, "gpt-4o", PriceTable.load())

    async def both() -> dict:
        waiting = asyncio.ensure_future(engine.complete(_request()))
        await asyncio.sleep(0.2)
        holder.release(key)  # its request failed: no answer comes
        return await waiting

    asyncio.run(both())
    assert len(handler.bodies) == 1


def test_two_builds_sharing_a_cache_pay_each_request_once(tmp_path: Path) -> None:
    """Two real processes, one cache, the fake server answering slowly: together they send what one
    build alone sends, and both write the same dataset."""
    with FakeServer(Knobs(latency_s=0.3)) as server:
        env = {**os.environ, "OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "fake", "PYTHONPATH": str(REPO)}

        def start(out: Path, cache: Path) -> subprocess.Popen:
            return subprocess.Popen([sys.executable, "-m", "rsgpt4v", "build", "--source", "dota", "--sample",
                                     "--no-progress", "--out", str(out), "--cache", str(cache)],
                                    cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        alone = start(tmp_path / "alone", tmp_path / "alone.sqlite")
        assert alone.wait(timeout=300) == 0, alone.stderr.read()
        paid_alone = server.stats.requests
        shared = tmp_path / "shared.sqlite"
        first, second = start(tmp_path / "a", shared), start(tmp_path / "b", shared)
        assert first.wait(timeout=300) == 0, first.stderr.read()
        assert second.wait(timeout=300) == 0, second.stderr.read()
        paid_together = server.stats.requests - paid_alone
    assert paid_together == paid_alone > 0
    a, b = (json.loads((tmp_path / d / "manifest.json").read_text())["usage"] for d in ("a", "b"))
    assert a["api_calls"] + b["api_calls"] == paid_alone
    assert (tmp_path / "a" / "train.jsonl").read_bytes() == (tmp_path / "b" / "train.jsonl").read_bytes() == \
        (tmp_path / "alone" / "train.jsonl").read_bytes()
