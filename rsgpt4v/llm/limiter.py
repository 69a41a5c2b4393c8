"""Keeping requests within a provider's rate limits: requests per minute and tokens per minute.

Providers enforce per-minute limits over shorter periods (600 RPM may be checked as 10 per second),
so requests are paced evenly rather than sent a minute's worth at once. Each request is charged
its estimated tokens before it is sent. Rate-limit headers in responses tighten the pace to what the
server says, and a 429 pauses every request, not only the one that got it.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping

_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m(?!s))?(?:(\d+(?:\.\d+)?)s)?(?:(\d+(?:\.\d+)?)ms)?")


def parse_reset(value: str) -> float | None:
    """OpenAI's reset durations, `1s`, `6m0s`, `120ms`, `1h2m3.5s`, in seconds."""
    m = _DURATION.fullmatch(value.strip())
    if not m or not any(m.groups()):
        try:
            return float(value)
        except ValueError:
            return None
    h, mins, s, ms = (float(g) if g else 0.0 for g in m.groups())
    return h * 3600 + mins * 60 + s + ms / 1000


class Pacer:
    """Generic cell rate algorithm: `rate` units per second, evenly spaced, `burst` seconds of slack."""

    def __init__(self, rate: float, burst: float = 0.0) -> None:
        self.rate = rate
        self.burst = burst
        self._next = 0.0

    def reserve(self, earliest: float, units: float) -> float:
        """Book `units` at or after `earliest`; the time they may be used."""
        start = max(earliest, self._next - self.burst)
        self._next = max(self._next, start) + units / self.rate
        return start

    def hold_until(self, t: float) -> None:
        self._next = max(self._next, t)


class RateLimiter:
    """RPM and TPM pacing shared by all requests of a run; either limit may be None (unlimited)."""

    def __init__(self, rpm: float | None, tpm: float | None, headroom: float = 0.98,
                 clock=time.monotonic) -> None:
        self.clock = clock
        self.headroom = headroom
        self.requests = Pacer(rpm * headroom / 60.0) if rpm else None
        # A little token burst lets one large vision request through without starving the rest.
        self.tokens = Pacer(tpm * headroom / 60.0, burst=1.0) if tpm else None
        self._paused_until = 0.0
        self.throttled = 0

    async def acquire(self, tokens: int) -> None:
        now = self.clock()
        # Booking from the end of any pause keeps requests spaced after it instead of releasing
        # everything that queued up during it at once.
        start = max(now, self._paused_until)
        if self.requests is not None:
            start = self.requests.reserve(start, 1)
        if self.tokens is not None:
            start = self.tokens.reserve(start, tokens)
        if start > now:
            await asyncio.sleep(start - now)

    def pause(self, seconds: float) -> None:
        """After a 429: hold every request for `seconds`."""
        self.throttled += 1
        until = self.clock() + seconds
        self._paused_until = max(self._paused_until, until)
        for pacer in (self.requests, self.tokens):
            if pacer is not None:
                pacer.hold_until(until)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Adopt the server's view: a lower limit than configured, or an exhausted window."""
        for kind, pacer in (("requests", self.requests), ("tokens", self.tokens)):
            limit = _number(headers.get(f"x-ratelimit-limit-{kind}"))
            if limit and pacer is not None and limit * self.headroom / 60.0 < pacer.rate:
                pacer.rate = limit * self.headroom / 60.0
            remaining = _number(headers.get(f"x-ratelimit-remaining-{kind}"))
            reset = parse_reset(headers.get(f"x-ratelimit-reset-{kind}", ""))
            if remaining is not None and remaining < 1 and reset:
                # An empty window refills gradually: wait for one request's share of it, not all.
                share = 60.0 / limit if limit and kind == "requests" else reset
                self._paused_until = max(self._paused_until, self.clock() + min(reset, share))


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
