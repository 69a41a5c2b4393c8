"""The Batch API: requests that missed the cache are written to JSONL files, submitted, and their
results collected into the same cache, so the next build pass reads them like live answers.

State lives in OUT/batch/state.json, so any later command knows where the run stands. Request
files are split at the Batch API's limits (50,000 lines, 200 MB: base64 images inflate them).
Failed and expired requests are simply absent from the cache afterwards and are resubmitted by the
next pass; a request the API rejected as invalid (4xx) is remembered and fails its window instead.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai

from rsgpt4v.core.files import Reason, read_jsonl, write_atomic
from rsgpt4v.llm.cache import Cache
from rsgpt4v.llm.completion import completion_problem, token_counts
from rsgpt4v.llm.cost import PriceTable

TERMINAL = ("completed", "failed", "expired", "cancelled")


class Deferred(Exception):
    """The request was queued for the Batch API; its answer arrives in a later pass."""


@dataclass
class BatchQueue:
    """Requests of this pass that need the Batch API, keyed by cache key (one line each)."""

    lines: dict[str, dict[str, Any]] = field(default_factory=dict)
    stages: dict[str, str] = field(default_factory=dict)

    def add(self, key: str, stage: str, body: dict[str, Any]) -> None:
        self.lines[key] = {"custom_id": key, "method": "POST", "url": "/v1/chat/completions", "body": body}
        self.stages[key] = stage


class BatchStateError(Exception):
    """OUT/batch/state.json cannot be read; the message says what to do."""


class BatchState:
    """OUT/batch/state.json: submitted batches, their progress, and requests the API rejected.

    `cache` is the response cache of the build the batches belong to: a batch counts as collected
    only once its answers are in that cache, so collecting into another one does not lose them.
    """

    def __init__(self, folder: Path, cache: Path | None = None) -> None:
        self.folder = Path(folder)
        self.path = self.folder / "state.json"
        try:
            data = json.loads(self.path.read_text(encoding="utf-8")) if self.path.exists() else {}
        except (OSError, ValueError, RecursionError) as exc:
            raise BatchStateError(f"{self.path}: unreadable ({exc.__class__.__name__}: {exc}); move it aside and "
                                  "rerun the build: it finds its batches again by listing them from the API") from None
        if not isinstance(data, dict) or not isinstance(data.get("batches", []), list) \
                or not all(isinstance(b, dict) for b in data.get("batches", [])):
            raise BatchStateError(f"{self.path}: not a batch state file; move it aside and rerun the build: it finds "
                                  "its batches again by listing them from the API")
        self.batches: list[dict[str, Any]] = data.get("batches", [])
        self.rejected: dict[str, str] = data.get("rejected", {})
        self.usage: dict[str, float] = data.get("usage", {"prompt_tokens": 0, "completion_tokens": 0,
                                                         "cost_usd": 0.0, "requests": 0})
        self.cache: str | None = str(Path(cache).resolve()) if cache is not None else data.get("cache")
        # What a probe found the server accepts (settings and why), so later passes need not ask again.
        self.server: dict[str, Any] | None = data.get("server")
        # The build run the passes belong to (see Engine.run): a new one after a complete build.
        self.run: str | None = data.get("run")

    def save(self) -> None:
        data = {"batches": self.batches, "rejected": self.rejected, "usage": self.usage, "cache": self.cache,
                "server": self.server, "run": self.run}
        write_atomic(self.path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8"))

    def open_batches(self) -> list[dict[str, Any]]:
        """Batches whose answers are not yet in the build's cache (or intents not yet confirmed)."""
        return [b for b in self.batches if not self._collected(b)]

    def _collected(self, entry: dict[str, Any]) -> bool:
        into = entry.get("collected_into")
        if into is None or self.cache is None:
            return bool(entry.get("collected"))
        return self.cache in into


def split_request_files(queue: BatchQueue, folder: Path, prefix: str, max_lines: int, max_bytes: int) -> list[Path]:
    """Write the queue as JSONL files no longer than `max_lines` lines or `max_bytes` bytes each."""
    folder.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    chunk: list[bytes] = []
    size = 0

    def flush() -> None:
        nonlocal chunk, size
        if chunk:
            path = folder / f"{prefix}-{len(files) + 1:03d}.jsonl"
            write_atomic(path, b"".join(chunk))
            files.append(path)
            chunk, size = [], 0

    for key in sorted(queue.lines):
        data = (json.dumps(queue.lines[key], sort_keys=True, separators=(",", ":")) + "\n").encode("utf-8")
        if chunk and (len(chunk) >= max_lines or size + len(data) > max_bytes):
            flush()
        chunk.append(data)
        size += len(data)
    flush()
    return files


def request_id(path: Path, number: int, line: Any, problem: Reason | None) -> str:
    """The custom_id of one line of a request file this package wrote; ValueError naming the line
    when it has none."""
    if problem is None and isinstance(line, dict) and isinstance(line.get("custom_id"), str):
        return line["custom_id"]
    raise ValueError(f"{path}:{number}: {problem or 'not a request with a custom_id'}")


async def submit(client: openai.AsyncOpenAI, state: BatchState, queue: BatchQueue, max_lines: int,
                 max_bytes: int) -> list[dict[str, Any]]:
    """Upload the queued requests and create one batch per request file.

    The intent (request file and its hash) is saved before anything changes on the remote side, and
    the batch carries the hash in its metadata: a run killed between creating a batch and saving its
    id leaves a batch the next run finds again (`refresh`) instead of paying for it twice. A request
    file whose hash matches a batch already on the account (state.json lost) adopts that batch.
    """
    prefix = f"pass-{len({b['pass'] for b in state.batches}) + 1:03d}"
    created = []
    known = {b["id"] for b in state.batches if b.get("id")}
    for path in split_request_files(queue, state.folder / "requests", prefix, max_lines, max_bytes):
        data = path.read_bytes()
        keys = [request_id(path, *line) for line in read_jsonl(io.BytesIO(data))]
        stages: dict[str, int] = {}
        for key in keys:
            stages[queue.stages[key]] = stages.get(queue.stages[key], 0) + 1
        entry: dict[str, Any] = {"id": None, "request_file": path.relative_to(state.folder).as_posix(),
                                 "sha256": hashlib.sha256(data).hexdigest(), "lines": len(keys), "stages": stages,
                                 "pass": prefix, "status": "intent", "submitted_at": int(time.time()),
                                 "collected": False}
        state.batches.append(entry)
        state.save()
        remote = await _find_remote(client, entry, known)
        if remote is None:
            with open(path, "rb") as f:
                uploaded = await client.files.create(file=(path.name, f), purpose="batch")
            entry["input_file_id"] = uploaded.id
            state.save()
            remote = await client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                                 completion_window="24h", metadata={_SHA_KEY: entry["sha256"]})
        _adopt(entry, remote)
        known.add(remote.id)
        created.append(entry)
        state.save()
    return created


_SHA_KEY = "rsgpt4v_request_sha256"
_REUSABLE = ("validating", "in_progress", "finalizing", "completed")
_LOOK_BACK_S = 7 * 24 * 3600


async def _find_remote(client: openai.AsyncOpenAI, entry: dict[str, Any], known: set[str]) -> Any | None:
    """The account's batch made from this entry's request file (same hash in its metadata, or the
    same uploaded file), still usable and not already recorded; None when there is none."""
    oldest = entry["submitted_at"] - _LOOK_BACK_S
    async for batch in client.batches.list(limit=100):
        if batch.created_at < oldest:
            break
        if batch.id in known or batch.status not in _REUSABLE:
            continue
        if (batch.metadata or {}).get(_SHA_KEY) == entry["sha256"] or \
                (entry.get("input_file_id") and batch.input_file_id == entry["input_file_id"]):
            return batch
    return None


def _adopt(entry: dict[str, Any], batch: Any) -> None:
    entry.update(id=batch.id, input_file_id=batch.input_file_id, status=batch.status)


async def refresh(client: openai.AsyncOpenAI, state: BatchState) -> None:
    """Update the status of every batch not yet collected; settle intents a killed run left behind
    (the batch found on the account, or the intent dropped so its requests go in the next pass)."""
    known = {b["id"] for b in state.batches if b.get("id")}
    for entry in [b for b in state.batches if b.get("id") is None]:
        remote = await _find_remote(client, entry, known)
        if remote is None:
            state.batches.remove(entry)
        else:
            _adopt(entry, remote)
            known.add(remote.id)
        state.save()
    for entry in state.open_batches():
        batch = await client.batches.retrieve(entry["id"])
        entry["status"] = batch.status
        entry["output_file_id"] = batch.output_file_id
        entry["error_file_id"] = batch.error_file_id
        if batch.request_counts is not None:
            entry["counts"] = {"total": batch.request_counts.total, "completed": batch.request_counts.completed,
                               "failed": batch.request_counts.failed}
    state.save()


async def collect(client: openai.AsyncOpenAI, state: BatchState, cache: Cache, prices: PriceTable,
                  model: str) -> dict[str, int]:
    """Results of every finished batch into the cache; counts of answers, failures and rejections."""
    await refresh(client, state)
    tally = {"answers": 0, "failed": 0, "rejected": 0}
    into = str(cache.path.resolve())
    for entry in state.open_batches():
        if entry["status"] not in TERMINAL:
            continue
        first = not entry.get("collected")  # paid once: usage counts the first collection only
        for file_key in ("output_file_id", "error_file_id"):
            if not entry.get(file_key):
                continue
            content = await client.files.content(entry[file_key])
            for _, line, problem in read_jsonl(io.BytesIO(content.content), skip_blank=True):
                if problem is None and isinstance(line, dict) and isinstance(line.get("custom_id"), str):
                    _collect_line(line, state, cache, prices, model, tally, first)
                else:
                    tally["failed"] += 1  # its request is not in the cache, so the next pass asks again
        entry["collected"] = True
        entry["collected_into"] = sorted({*entry.get("collected_into", []), into})
        state.save()
    return tally


def _collect_line(line: dict[str, Any], state: BatchState, cache: Cache, prices: PriceTable, model: str,
                  tally: dict[str, int], count_usage: bool) -> None:
    key = line["custom_id"]
    response = line.get("response") if isinstance(line.get("response"), dict) else {}
    status = response.get("status_code")
    body = response.get("body")
    if status == 200 and completion_problem(body) is None:
        cache.put(key, "batch", body.get("model") or model, body)
        tally["answers"] += 1
        if not count_usage:
            return
        counted = token_counts(body)
        state.usage["requests"] += 1
        state.usage["prompt_tokens"] += counted.prompt_tokens
        state.usage["completion_tokens"] += counted.completion_tokens
        # Priced as the model that answered: a judge's answers at the judge's prices.
        state.usage["cost_usd"] += prices.dollars(body.get("model") or model, counted.prompt_tokens,
                                                  counted.completion_tokens, batch=True) or 0.0
    elif isinstance(status, int) and 400 <= status < 500 and status not in (408, 409, 429):
        error = body.get("error") if isinstance(body, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        state.rejected[key] = f"{status}: {message or 'rejected'}"
        tally["rejected"] += 1
    else:
        tally["failed"] += 1  # not an answer (or not one the build can read): asked again next pass

