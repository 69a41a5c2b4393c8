"""Rate pacing, 429 pauses and header re-sync, on a fake clock (no real waiting, no timing asserts)."""

from __future__ import annotations

import asyncio

import pytest

from rsgpt4v.llm import limiter as limiter_module
from rsgpt4v.llm.limiter import Pacer, RateLimiter, parse_reset


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def fake(monkeypatch) -> FakeTime:
    t = FakeTime()
    monkeypatch.setattr(limiter_module.asyncio, "sleep", t.sleep)
    return t


def _acquire_all(lim: RateLimiter, n: int, tokens: int = 1) -> None:
    async def run() -> None:
        for _ in range(n):
            await lim.acquire(tokens)
    asyncio.run(run())


def test_requests_are_spread_evenly_not_burst(fake: FakeTime) -> None:
    lim = RateLimiter(rpm=600, tpm=None, headroom=1.0, clock=fake.clock)
    _acquire_all(lim, 5)
    # 600 RPM = one every 0.1 s: the first goes at once, the others are booked 0.1 s apart.
    assert fake.waits == pytest.approx([0.1, 0.2, 0.3, 0.4])


def test_token_limit_paces_large_requests(fake: FakeTime) -> None:
    lim = RateLimiter(rpm=None, tpm=60_000, headroom=1.0, clock=fake.clock)   # 1,000 tokens per second
    _acquire_all(lim, 3, tokens=2_000)
    # one second of burst allowance, then two seconds per 2,000-token request
    assert fake.waits == pytest.approx([1.0, 3.0])


def test_headroom_keeps_below_the_ceiling(fake: FakeTime) -> None:
    lim = RateLimiter(rpm=600, tpm=None, headroom=0.95, clock=fake.clock)
    _acquire_all(lim, 2)
    assert fake.waits == pytest.approx([60 / (600 * 0.95)])


def test_a_429_pauses_every_request(fake: FakeTime) -> None:
    lim = RateLimiter(rpm=None, tpm=None, clock=fake.clock)
    lim.pause(2.5)
    _acquire_all(lim, 2)
    assert fake.waits == pytest.approx([2.5, 2.5])
    assert lim.throttled == 1


def test_after_a_pause_requests_stay_spaced(fake: FakeTime) -> None:
    lim = RateLimiter(rpm=600, tpm=None, headroom=1.0, clock=fake.clock)
    lim.pause(2.0)
    _acquire_all(lim, 3)
    assert fake.waits == pytest.approx([2.0, 2.1, 2.2])


def test_headers_lower_the_rate_and_pause_an_exhausted_window(fake: FakeTime) -> None:
    lim = RateLimiter(rpm=6000, tpm=None, headroom=1.0, clock=fake.clock)
    lim.observe({"x-ratelimit-limit-requests": "600", "x-ratelimit-remaining-requests": "0",
                 "x-ratelimit-reset-requests": "1.5s"})
    assert lim.requests.rate == pytest.approx(10.0)
    _acquire_all(lim, 2)
    # an exhausted window waits for one request's share (60 s / 600), then paces at 10 per second
    assert fake.waits == pytest.approx([0.1, 0.2])


@pytest.mark.parametrize("text, seconds", [("1s", 1.0), ("6m0s", 360.0), ("120ms", 0.12), ("1h2m3.5s", 3723.5),
                                           ("0.5", 0.5), ("soon", None)])
def test_parse_reset(text: str, seconds: float | None) -> None:
    assert parse_reset(text) == (pytest.approx(seconds) if seconds is not None else None)


def test_pacer_burst_allows_early_units() -> None:
    p = Pacer(rate=1.0, burst=2.0)
    assert [p.reserve(0.0, 1) for _ in range(4)] == [0.0, 0.0, 0.0, 1.0]
    assert p.reserve(10.0, 1) == 10.0          # idle time is not banked beyond the burst
