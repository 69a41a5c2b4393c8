"""The request engine: cache, then budget, then concurrency and rate limits, then retries, then the client.

Two kinds of retry, each with one owner. Transport faults (408/409/429/5xx, lost connections) are
retried here by tenacity with backoff that honours Retry-After; the openai client's own retries are
off. Unusable answers (refusal, `length` finish, invalid JSON, schema or content check failures)
get a bounded application-level retry in `Engine.ask`, each new attempt naming what was wrong;
after the last one the failure is recorded for that request, never raised.
"""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

import openai
from pydantic import BaseModel, ValidationError
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

from rsgpt4v.core.config import EngineConfig
from rsgpt4v.core.report import StageUsage
from rsgpt4v.llm.batch import BatchQueue, Deferred
from rsgpt4v.llm.cache import Cache
from rsgpt4v.llm.completion import completion_problem, token_counts
from rsgpt4v.llm.cost import ImageRule, PriceTable, estimate_prompt_tokens
from rsgpt4v.llm.json_text import NoJSONValue, first_json_value
from rsgpt4v.llm.limiter import RateLimiter
from rsgpt4v.llm.profile import BackendProfile
from rsgpt4v.llm.refusals import AdaptiveProfile, FeatureRefused, refusal_of
from rsgpt4v.llm.request import ChatRequest, cache_key_of

T = TypeVar("T", bound=BaseModel)


class FatalAPIError(Exception):
    """An API answer that no retry can fix (bad key, no quota, unknown model): the run stops."""


class ProfileRefused(FatalAPIError):
    """The server refuses what the backend profile given asks for: the run stops, naming the setting."""


class BudgetExceeded(FatalAPIError):
    """The next request could take spending past --max-cost: the run stops before sending it."""


@dataclass(frozen=True)
class Answer(Generic[T]):
    """A parsed, checked response, or the reason there is none, or (batch mode) a later answer.

    Without a usable answer, `kind` is the failure's kind and `rejected` the last answer that parsed
    but failed its check (a caller may keep the parts of it that are sound).
    """

    parsed: T | None
    failure: str | None = None
    deferred: bool = False
    kind: str | None = None
    rejected: T | None = None


class Rejection(Protocol):
    """What a check returns for an answer it rejects (the data model's `Problem` is one)."""

    @property
    def kind(self) -> str: ...

    @property
    def detail(self) -> str: ...


class FailureKind(StrEnum):
    """Why the engine could not use an answer, as the run report counts it; a check that rejects an
    answer names its own kinds (`Rejection.kind`)."""

    MALFORMED = "malformed"  # not a chat completion at all (`choices: [null]`, content a number)
    EMPTY = "empty"
    REFUSAL = "refusal"
    LENGTH = "length"
    INVALID_JSON = "invalid_json"
    SCHEMA = "schema"
    API_400 = "api_400"
    TRANSPORT = "transport"
    UNKNOWN = "unknown"


class Unusable(Exception):
    """A response that arrived but cannot be used; `kind` is what the run report counts."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, openai.APIConnectionError):
        return True
    if refusal_of(exc) is not None:
        # A chat template's refusal comes back as a 500 from llama.cpp and SGLang: sending the same
        # request again gets the same answer.
        return False
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code == 429:
            return not _insufficient_quota(exc)
        return exc.status_code in (408, 409) or exc.status_code >= 500
    return False


def _insufficient_quota(exc: openai.APIStatusError) -> bool:
    """The error's code or type says so; its message is the API's prose and decides nothing."""
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body) if isinstance(body.get("error", body), dict) else {}
    return "insufficient_quota" in (exc.code, error.get("code"), error.get("type"))


def _retry_after(exc: BaseException | None) -> float | None:
    """The wait the server asks for, in seconds: `retry-after-ms` (OpenAI, Azure) before `retry-after`."""
    if not isinstance(exc, openai.APIStatusError):
        return None
    for header, unit in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = exc.response.headers.get(header)
        try:
            seconds = float(value) / unit if value is not None else None
        except ValueError:
            continue
        if seconds is not None and math.isfinite(seconds) and seconds >= 0:
            return min(seconds, 120.0)
    return None


class _WaitRetryAfter:
    """Retry-After when the server sends one, else exponential backoff with jitter."""

    def __init__(self, first_step: float) -> None:
        self._backoff = wait_random_exponential(multiplier=first_step, max=30)

    def __call__(self, state: Any) -> float:
        told = _retry_after(state.outcome.exception() if state.outcome else None)
        return told if told is not None else self._backoff(state)


def _fatal(exc: openai.APIStatusError) -> FatalAPIError | None:
    if isinstance(exc, openai.AuthenticationError):
        return FatalAPIError("the API rejected the key (401): check OPENAI_API_KEY")
    if isinstance(exc, openai.PermissionDeniedError):
        return FatalAPIError(f"the API refused access (403): {exc.message}")
    if isinstance(exc, openai.NotFoundError):
        return FatalAPIError(f"the API does not know this model or endpoint (404): {exc.message}")
    if exc.status_code == 429 and _insufficient_quota(exc):
        return FatalAPIError("the account has no quota left (429 insufficient_quota)")
    return None


def check_completion(completion: Any, model: type[T]) -> T:
    """The parsed response of a raw completion (live, from a batch or the cache), or Unusable naming
    what is wrong with it; never another exception, whatever the completion holds."""
    if isinstance(completion, dict) and not completion.get("choices"):
        raise Unusable(FailureKind.EMPTY, "the response has no choices")
    problem = completion_problem(completion)
    if problem is not None:
        raise Unusable(FailureKind.MALFORMED, problem)
    choice = completion["choices"][0]
    message = choice["message"]
    if message.get("refusal"):
        raise Unusable(FailureKind.REFUSAL, f"the model refused: {message['refusal']}")
    if choice.get("finish_reason") == "length":
        raise Unusable(FailureKind.LENGTH, "the answer was cut off at the output token limit")
    content = message.get("content")
    if not content:
        raise Unusable(FailureKind.EMPTY, "the answer is empty")
    try:
        data = first_json_value(content)
    except NoJSONValue as exc:
        raise Unusable(FailureKind.INVALID_JSON, str(exc)) from None
    try:
        return model.model_validate(data)
    except RecursionError:
        raise Unusable(FailureKind.SCHEMA, "the answer is nested too deeply to check") from None
    except ValidationError as exc:
        raise Unusable(FailureKind.SCHEMA, f"the answer does not match the schema: {schema_errors(exc)}") from None


def schema_errors(exc: ValidationError, shown: int = 3) -> str:
    """The validation errors as the retry message quotes them: where, what, and the value found."""
    quoted = []
    for error in exc.errors()[:shown]:
        where = ".".join(str(p) for p in error["loc"]) or "the top level"
        found = "" if error["type"] == "missing" else f" (found {_short(error.get('input'))})"
        quoted.append(f"{where}: {error['msg']}{found}")
    more = exc.error_count() - shown
    return "; ".join(quoted) + (f"; and {more} more" if more > 0 else "")


def _short(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (ValueError, RecursionError):
        return "a value too deep to quote"
    return text if len(text) <= 60 else text[:57] + "..."


class Engine:
    """Sends requests through cache, limiter and retries; counts usage per stage."""

    def __init__(self, client: openai.AsyncOpenAI, cache: Cache, cfg: EngineConfig, model: str,
                 prices: PriceTable, refresh: bool = False, batch: BatchQueue | None = None,
                 rejected: dict[str, str] | None = None, server: AdaptiveProfile | None = None,
                 run: str | None = None) -> None:
        self.client = client
        # Which run this is: a failed verdict of an earlier run gets `repair_rounds` more tries, one of
        # this run does not. A batch build's passes are one run (its id is kept in the batch state).
        self.run = run or uuid.uuid4().hex
        # In batch mode: the most passes the requests deferred so far may still take, theirs included.
        self.passes_left = 0
        self.server = server or AdaptiveProfile(BackendProfile(name="auto"), given=False)
        self.batch = batch
        self.rejected = rejected or {}
        self.cache = cache
        self.cfg = cfg
        self.model = model
        self.prices = prices
        self.refresh = refresh
        self.usage: dict[str, StageUsage] = {}
        # Shown each request body as it is about to be looked up or sent (with its cache key): a build
        # that keeps them for a person to read (--save-requests).
        self.on_request: Callable[[ChatRequest, dict[str, Any], str], None] | None = None
        limits = cfg.limits_for(model)
        self.limiter = RateLimiter(limits.rpm, limits.tpm)
        # A model the config gives its own limits (`engine.limits`, the judge's say) gets its own pacing;
        # any other shares the account's.
        self._limiters: dict[str, RateLimiter] = {}
        self._slots = asyncio.Semaphore(cfg.concurrency)
        self._reserved_usd = 0.0
        self._transport_failures_in_a_row = 0
        self._inflight: dict[str, asyncio.Future[dict[str, Any]]] = {}

    def limiter_for(self, model: str) -> RateLimiter:
        if model == self.model or model not in self.cfg.limits:
            return self.limiter
        if model not in self._limiters:
            limits = self.cfg.limits_for(model)
            self._limiters[model] = RateLimiter(limits.rpm, limits.tpm)
        return self._limiters[model]

    def image_rule(self, model: str) -> ImageRule:
        """How `model` counts image tokens: the backend profile's rule for the build's model where it
        gives one (a server started with its own max_pixels), else the model family's."""
        own = self.server.profile.image_rule if model == self.model else None
        return own or self.prices.image_rule(model)

    @property
    def spent_usd(self) -> float:
        return sum(u.cost_usd for u in self.usage.values())

    def _projected_usd(self, request: ChatRequest, prompt_tokens: int) -> float:
        return self.prices.dollars(request.model, prompt_tokens, request.max_output_tokens) or 0.0

    def stage_usage(self, stage: str) -> StageUsage:
        return self.usage.setdefault(stage, StageUsage())

    async def complete(self, request: ChatRequest) -> dict[str, Any]:
        """The raw completion for a request: from the cache, or from the API (then cached).

        The request is shaped by the backend profile in force; when the server refuses a feature of
        it, the profile adapts (or the run stops, see `AdaptiveProfile`) and the request is shaped and
        sent again: a refused request was not paid for, so this costs no attempt.
        """
        usage = self.stage_usage(request.stage)
        while True:
            profile = self.server.profile
            body = await self._body(request, profile)
            key = cache_key_of(body)
            if self.on_request is not None:
                self.on_request(request, body, key)
            if not self.refresh:
                cached = self.cache.get(key)
                if cached is not None:
                    usage.cache_hits += 1
                    return cached
            if self.batch is not None:
                if key in self.rejected:
                    raise Unusable(FailureKind.API_400, f"the Batch API rejected the request ({self.rejected[key]})")
                self.batch.add(key, request.stage, body)
                raise Deferred(key)
            try:
                return await self._once(request, body, key, usage)
            except openai.APIStatusError as exc:
                refusal = refusal_of(exc)
                if refusal is None:
                    raise
                try:
                    self.server.adapt(refusal, body, profile)
                except FeatureRefused as stop:
                    raise ProfileRefused(str(stop)) from None

    @staticmethod
    async def _body(request: ChatRequest, profile: BackendProfile) -> dict[str, Any]:
        if request.images > profile.images_per_request:
            # Its one-image form is drawn and encoded on first use: off the event loop.
            return await asyncio.to_thread(request.body, profile)
        return request.body(profile)

    async def _once(self, request: ChatRequest, body: dict[str, Any], key: str, usage: StageUsage) -> dict[str, Any]:
        shared = self._inflight.get(key)
        if shared is not None:
            # The same request is already on its way (two windows asking the very same thing): one answer
            # serves both, and is paid once.
            usage.cache_hits += 1
            return await asyncio.shield(shared)
        task = self._inflight[key] = asyncio.ensure_future(self._fetch(request, body, key, usage))
        task.add_done_callback(lambda done: self._settled(key, done))
        return await asyncio.shield(task)

    async def stop(self) -> None:
        """The run is stopping (a fatal answer, the budget, Ctrl-C): cancel the requests still on their
        way and wait for them to end, so that none touches the cache after it is closed."""
        flying = list(self._inflight.values())
        for task in flying:
            task.cancel()
        await asyncio.gather(*flying, return_exceptions=True)

    def _settled(self, key: str, task: asyncio.Future[dict[str, Any]]) -> None:
        del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved here, so a failure nobody waits for any more is not logged as lost

    async def _fetch(self, request: ChatRequest, body: dict[str, Any], key: str, usage: StageUsage) -> dict[str, Any]:
        """The answer to a request that missed the cache: claimed in the cache first, so that another
        build sharing the cache and needing the same request waits for this answer (and this build for
        another's) instead of paying twice; the claim is renewed while the request runs."""
        lease = self.cfg.claim_lease_s
        while not self.cache.claim(key, lease):
            answer = await self._answer_of_another(key)
            if answer is not None:
                usage.cache_hits += 1
                return answer
        keeper = asyncio.ensure_future(self._keep_claim(key, lease))
        try:
            answered = None if self.refresh else self.cache.get(key)
            if answered is not None:  # another build answered it between our look and our claim
                usage.cache_hits += 1
                return answered
            return await self._pay(request, body, key, usage)
        finally:
            keeper.cancel()
            self.cache.release(key)

    async def _answer_of_another(self, key: str) -> dict[str, Any] | None:
        """Wait while another build holds the claim on `key`; its answer, or None when the claim ended
        (released after a failure, or lapsed with its holder) without one."""
        pause = 0.05
        while True:
            await asyncio.sleep(pause)
            pause = min(1.0, pause * 1.5)
            answer = self.cache.get(key)
            if answer is not None:
                return answer
            if not self.cache.claimed(key):
                return None

    async def _keep_claim(self, key: str, lease: float) -> None:
        while True:
            await asyncio.sleep(lease / 3)
            self.cache.renew(key, lease)

    async def _pay(self, request: ChatRequest, body: dict[str, Any], key: str, usage: StageUsage) -> dict[str, Any]:
        """Send a request that missed the cache, within budget and limits; cache and count its answer."""
        prompt_estimate = estimate_prompt_tokens(body, self.image_rule(request.model))
        projected = self._projected_usd(request, prompt_estimate)
        budget = self.cfg.max_cost_usd
        # Checked once a slot is free, so only requests on their way hold a reservation: requests
        # waiting for a slot would otherwise stop the run on money that may never be spent.
        async with self._slots:
            if budget is not None and self.spent_usd + self._reserved_usd + projected > budget:
                raise BudgetExceeded(f"stopping before --max-cost {budget:g} USD would be passed "
                                     f"(spent {self.spent_usd:.4f} USD)")
            self._reserved_usd += projected
            try:
                completion = await self._send(body, prompt_estimate + request.max_output_tokens,
                                              self.limiter_for(request.model))
            finally:
                self._reserved_usd -= projected
        usage.api_calls += 1
        counted = token_counts(completion)
        usage.prompt_tokens += counted.prompt_tokens
        usage.completion_tokens += counted.completion_tokens
        usage.cost_usd += self.prices.dollars(request.model, counted.prompt_tokens, counted.completion_tokens) or 0.0
        self.cache.put(key, request.stage, request.model, completion)
        return completion

    async def _send(self, body: dict[str, Any], tokens: int, limiter: RateLimiter) -> dict[str, Any]:
        retrying = AsyncRetrying(
            retry=retry_if_exception(_retryable),
            wait=_WaitRetryAfter(self.cfg.backoff_s),
            stop=stop_after_attempt(self.cfg.transport_attempts),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    await limiter.acquire(tokens)
                    try:
                        raw = await self.client.chat.completions.with_raw_response.create(**body)
                    except openai.RateLimitError as exc:
                        if not _insufficient_quota(exc):
                            told = _retry_after(exc)  # "retry-after: 0" is a wait of none, not a missing one
                            limiter.pause(1.0 if told is None else told)
                        raise
                    limiter.observe(raw.headers)
                    return raw.parse().model_dump(mode="json", exclude_none=False)
        except openai.APIStatusError as exc:
            fatal = _fatal(exc)
            if fatal is not None:
                raise fatal from None
            raise
        raise AssertionError("unreachable: tenacity either returns or re-raises")

    async def ask(self, build: Callable[[str | None, int], ChatRequest], response_model: type[T],
                  check: Callable[[T], Rejection | None] | None = None,
                  escalate: frozenset[str] = frozenset(), after: int = 0) -> Answer[T]:
        """Ask until a usable answer or the attempts run out.

        `build(feedback, attempt)` makes the request; from the second attempt on, `feedback` names
        what was wrong with the previous answer so the model can correct it. A failure whose kind is
        in `escalate` is returned at once, counted as a retry reason rather than a failure: the
        caller changes the request instead (a local request cut at the token limit is split), since
        sending the same request again would be cut again.

        The verdict (usable or not, after how many attempts, and why each attempt failed) is kept in
        the cache under the first attempt's key. A later run replays the cached attempts for free;
        where the verdict was a failure it then gives the request `engine.attempts` more tries,
        numbered on from the last (on up to `engine.repair_rounds` later runs), so a rerun repairs
        windows that failed on a transient fault and pays only for those.

        In batch mode a request whose answer is not in the cache is deferred; `after` is how many
        passes may follow its answer at most (later stages, splits), for `passes_left`.
        """
        feedback: str | None = None
        failure = Unusable(FailureKind.UNKNOWN, "no attempt was made")
        rejected: T | None = None
        first = build(None, 1)
        stage = first.stage
        verdict_key = first.cache_key()
        previous = None if self.refresh else self.cache.verdict(verdict_key)
        limit, rounds = self._attempt_limit(previous)
        history: list[dict[str, Any]] = []
        attempt = 0
        for attempt in range(1, limit + 1):
            request = first if attempt == 1 else build(feedback, attempt)
            if attempt > 1:
                usage = self.stage_usage(stage)
                usage.retries += 1
                usage.retry_reasons[failure.kind] += 1
            try:
                completion = await self.complete(request)
            except Deferred:
                self.passes_left = max(self.passes_left, limit - attempt + 1 + after)
                return Answer(None, deferred=True)
            except Unusable as exc:
                failure = exc
                break
            except openai.BadRequestError as exc:
                failure = Unusable(FailureKind.API_400, f"the API rejected the request (400): {exc.message}")
                break
            except (openai.APIStatusError, openai.APIConnectionError) as exc:
                self._transport_failures_in_a_row += 1
                if self._transport_failures_in_a_row >= self.cfg.stop_after_transport_failures:
                    # A server that is down would otherwise turn every remaining window into a failure.
                    raise FatalAPIError(f"{self._transport_failures_in_a_row} requests in a row failed after "
                                        f"{self.cfg.transport_attempts} tries each ({exc}): is the server up?") from None
                failure = Unusable(FailureKind.TRANSPORT,
                                   f"gave up after {self.cfg.transport_attempts} tries: {exc}")
                break
            self._transport_failures_in_a_row = 0
            try:
                parsed = check_completion(completion, response_model)
                problem = check(parsed) if check is not None else None
                if problem is None:
                    self.cache.put_verdict(verdict_key, stage, {"ok": True, "attempts": attempt, "rounds": rounds,
                                                                "history": history, "run": self.run})
                    return Answer(parsed)
                failure = Unusable(problem.kind, problem.detail)
                rejected = parsed
            except Unusable as exc:
                failure = exc
            if failure.kind in escalate:
                self.stage_usage(stage).retry_reasons[failure.kind] += 1
                return Answer(None, f"{failure.kind}: {failure.detail}", kind=failure.kind, rejected=rejected)
            history.append({"attempt": attempt, "kind": failure.kind, "detail": failure.detail})
            feedback = failure.detail
        else:
            # Every attempt gave an answer and none was usable: the verdict a later run may revisit.
            self.cache.put_verdict(verdict_key, stage, {"ok": False, "attempts": attempt, "rounds": rounds,
                                                        "history": history, "run": self.run})
        self.record_failure(stage, failure.kind)
        return Answer(None, f"{failure.kind}: {failure.detail}", kind=failure.kind, rejected=rejected)

    def record_failure(self, stage: str, kind: str) -> None:
        """Count a request given up on; callers that escalated a failure count it here if they give up."""
        self.stage_usage(stage).failures[kind] += 1

    def _attempt_limit(self, previous: dict[str, Any] | None) -> tuple[int, int]:
        """How many attempts this ask may make, and which round of asking it is."""
        if previous is None:
            return self.cfg.attempts, 1
        attempts, rounds = int(previous["attempts"]), int(previous.get("rounds", 1))
        if previous["ok"]:
            return max(attempts, self.cfg.attempts), rounds
        if previous.get("run") != self.run and rounds <= self.cfg.repair_rounds:
            return attempts + self.cfg.attempts, rounds + 1
        return attempts, rounds
