"""The engine against scripted HTTP answers, through the real openai client."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from conftest import Scripted, completion
from pydantic import BaseModel

from rsgpt4v.core.config import load_config
from rsgpt4v.core.schema import Problem
from rsgpt4v.llm.cache import Cache
from rsgpt4v.llm.cost import PriceTable
from rsgpt4v.llm.engine import Engine, FatalAPIError
from rsgpt4v.llm.request import ChatRequest


class Caption(BaseModel):
    caption: str


def _engine(client, tmp_path: Path, **cfg) -> Engine:
    engine_cfg = load_config(overrides={"engine": cfg}).engine
    return Engine(client, Cache(tmp_path / "cache.sqlite"), engine_cfg, "gpt-4o", PriceTable.load())


def _build(feedback: str | None, attempt: int) -> ChatRequest:
    messages = [{"role": "user", "content": [
        {"type": "text", "text": "Caption this."},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}}]}]
    if feedback:
        messages.append({"role": "user", "content": f"attempt {attempt}: {feedback}"})
    return ChatRequest(stage="global", model="gpt-test", messages=messages, response_model=Caption,
                       params={"temperature": 0.2})


def _ask(engine: Engine, check=None):
    return asyncio.run(engine.ask(_build, Caption, check))


def test_sends_strict_schema_and_data_url_and_parses(tmp_path, scripted_client) -> None:
    handler = Scripted([(200, completion({"caption": "An airport."}), {})])
    engine = _engine(scripted_client(handler), tmp_path)
    answer = _ask(engine)
    assert answer.parsed == Caption(caption="An airport.")
    body = handler.bodies[0]
    assert body["model"] == "gpt-test"
    assert body["response_format"]["type"] == "json_schema"
    schema = body["response_format"]["json_schema"]
    assert schema["strict"] is True and schema["name"] == "Caption"
    assert schema["schema"]["additionalProperties"] is False
    assert schema["schema"]["required"] == ["caption"]
    assert body["messages"][0]["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")


def test_5xx_and_429_are_retried_then_succeed(tmp_path, scripted_client) -> None:
    handler = Scripted([
        (500, {"error": {"message": "boom"}}, {"retry-after": "0"}),
        (429, {"error": {"message": "slow down", "code": "rate_limit_exceeded"}}, {"retry-after": "0"}),
        (200, completion({"caption": "ok"}), {}),
    ])
    engine = _engine(scripted_client(handler), tmp_path)
    assert _ask(engine).parsed == Caption(caption="ok")
    assert len(handler.bodies) == 3
    assert engine.usage["global"].api_calls == 1


def test_401_and_insufficient_quota_stop_the_run(tmp_path, scripted_client) -> None:
    for status, body in [(401, {"error": {"message": "bad key"}}),
                         (429, {"error": {"message": "quota", "code": "insufficient_quota"}})]:
        engine = _engine(scripted_client(Scripted([(status, body, {})])), tmp_path)
        with pytest.raises(FatalAPIError):
            _ask(engine)


def test_quota_is_read_from_the_error_code_or_type_not_its_message(tmp_path, scripted_client) -> None:
    by_type = {"error": {"message": "You exceeded your current quota.", "type": "insufficient_quota"}}
    engine = _engine(scripted_client(Scripted([(429, by_type, {})])), tmp_path)
    with pytest.raises(FatalAPIError, match="no quota left"):
        _ask(engine)
    # A rate limit whose prose happens to name the quota is still a rate limit: waited out and retried.
    handler = Scripted([
        (429, {"error": {"message": "not an insufficient_quota case", "code": "rate_limit_exceeded"}},
         {"retry-after": "0"}),
        (200, completion({"caption": "An airport."}), {}),
    ])
    assert _ask(_engine(scripted_client(handler), tmp_path / "b")).parsed.caption == "An airport."
    assert len(handler.bodies) == 2


def test_400_fails_that_request_only(tmp_path, scripted_client) -> None:
    handler = Scripted([(400, {"error": {"message": "invalid image"}}, {})])
    engine = _engine(scripted_client(handler), tmp_path)
    answer = _ask(engine)
    assert answer.parsed is None and answer.failure.startswith("api_400")
    assert len(handler.bodies) == 1
    assert engine.usage["global"].failures == {"api_400": 1}


@pytest.mark.parametrize("bad, kind", [
    (completion(None, refusal="I can't help with that."), "refusal"),
    (completion('{"caption": "cut', finish_reason="length"), "length"),
    (completion("{not json"), "invalid_json"),
    (completion({"title": "x"}), "schema"),
])
def test_unusable_answers_are_retried_with_feedback(tmp_path, scripted_client, bad, kind) -> None:
    handler = Scripted([(200, bad, {}), (200, completion({"caption": "fixed"}), {})])
    engine = _engine(scripted_client(handler), tmp_path)
    assert _ask(engine).parsed == Caption(caption="fixed")
    retry_message = handler.bodies[1]["messages"][-1]["content"]
    assert retry_message.startswith("attempt 2: ")
    assert engine.usage["global"].retries == 1


def test_bounded_attempts_then_recorded_failure(tmp_path, scripted_client) -> None:
    handler = Scripted([(200, completion({"caption": ""}), {})])
    engine = _engine(scripted_client(handler), tmp_path, attempts=3)
    answer = _ask(engine, check=lambda c: Problem("empty", "the caption is empty") if not c.caption else None)
    assert answer.parsed is None
    assert answer.failure == "empty: the caption is empty"
    assert len(handler.bodies) == 3
    assert engine.usage["global"].failures == {"empty": 1}
    assert engine.usage["global"].retry_reasons == {"empty": 2}


def test_rerun_is_served_from_cache(tmp_path, scripted_client) -> None:
    handler = Scripted([(200, completion({"caption": "cached"}), {})])
    _ask(_engine(scripted_client(handler), tmp_path))
    again = _engine(scripted_client(handler), tmp_path)
    assert _ask(again).parsed == Caption(caption="cached")
    assert len(handler.bodies) == 1
    assert again.usage["global"].cache_hits == 1 and again.usage["global"].api_calls == 0
    assert b"sk-test-secret" not in (tmp_path / "cache.sqlite").read_bytes()


def test_cache_key_tracks_what_shapes_the_answer() -> None:
    base = _build(None, 1)
    assert base.cache_key() == _build(None, 1).cache_key()
    changed = [
        ChatRequest(stage="global", model="other", messages=base.messages, response_model=Caption),
        ChatRequest(stage="global", model="gpt-test", messages=base.messages, response_model=Caption,
                    params={"temperature": 0.3}),
        _build("bad", 2),
    ]
    assert len({base.cache_key(), *(c.cache_key() for c in changed)}) == 4


def test_corrupt_cache_is_moved_aside_and_rebuilt(tmp_path) -> None:
    path = tmp_path / "cache.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    cache = Cache(path)
    cache.put("k", "global", "m", {"x": 1})
    assert cache.get("k") == {"x": 1}
    assert (tmp_path / "cache.sqlite.corrupt").exists()


def test_max_cost_stops_before_the_request_that_would_pass_it(tmp_path, scripted_client) -> None:
    from rsgpt4v.llm.engine import BudgetExceeded

    handler = Scripted([(200, completion({"caption": "one"}), {})])
    engine = _engine(scripted_client(handler), tmp_path, max_cost_usd=0.003)

    def priced(extra: str):
        def build(feedback, attempt):
            request = _build(feedback, attempt)
            return ChatRequest(stage="global", model="gpt-4o", response_model=Caption,
                               messages=request.messages + [{"role": "user", "content": extra}])
        return build

    assert asyncio.run(engine.ask(priced("first"), Caption)).parsed == Caption(caption="one")
    assert engine.spent_usd == pytest.approx((100 * 2.5 + 10 * 10.0) / 1e6)
    other = priced("x" * 4000)

    with pytest.raises(BudgetExceeded, match="max-cost 0.003 USD"):
        asyncio.run(engine.ask(other, Caption))
    assert len(handler.bodies) == 1


@pytest.mark.parametrize("told, pause", [({"retry-after": "0"}, 0.0), ({"retry-after-ms": "0"}, 0.0), ({}, 1.0)])
def test_429_pauses_the_limiter_as_long_as_the_server_says(tmp_path, scripted_client, monkeypatch, told: dict,
                                                           pause: float) -> None:
    handler = Scripted([(429, {"error": {"message": "slow", "code": "rate_limit_exceeded"}}, told),
                        (200, completion({"caption": "ok"}), {"x-ratelimit-remaining-requests": "5"})])
    engine = _engine(scripted_client(handler), tmp_path)
    pauses: list[float] = []
    monkeypatch.setattr(engine.limiter, "pause", pauses.append)  # the pause asked for, not waited out
    assert _ask(engine).parsed == Caption(caption="ok")
    assert pauses == [pause]


def test_a_server_that_stays_down_stops_the_run(tmp_path, scripted_client) -> None:
    handler = Scripted([(503, {"error": {"message": "down"}}, {"retry-after": "0"})])
    engine = _engine(scripted_client(handler), tmp_path, transport_attempts=2, stop_after_transport_failures=3)
    for _ in range(2):
        assert _ask(engine).failure.startswith("transport")        # one window fails, the run goes on
    with pytest.raises(FatalAPIError, match="3 requests in a row failed"):
        _ask(engine)
    assert len(handler.bodies) == 6
