"""The Batch API: requests that missed the cache are written to JSONL files, submitted, and their
results collected into the same cache, so the next build pass reads them like live answers.

State lives in OUT/batch/state.json, so any later command knows where the run stands. Request
files are split at the Batch API's limits (50,000 lines, 200 MB: base64 images inflate them).
Failed and expired requests are simply absent from the cache afterwards and are resubmitted by the
next pass; a request the API rejected as invalid (4xx) is remembered and fails its window instead.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai

from rsgpt4v.cost import PriceTable
from rsgpt4v.llm.cache import Cache
from rsgpt4v.output import write_atomic

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


class BatchState:
    """OUT/batch/state.json: submitted batches, their progress, and requests the API rejected."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / "state.json"
        data = json.loads(self.path.read_text(encoding="utf-8")) if self.path.exists() else {}
        self.batches: list[dict[str, Any]] = data.get("batches", [])
        self.rejected: dict[str, str] = data.get("rejected", {})
        self.usage: dict[str, float] = data.get("usage", {"prompt_tokens": 0, "completion_tokens": 0,
                                                         "cost_usd": 0.0, "requests": 0})

    def save(self) -> None:
        data = {"batches": self.batches, "rejected": self.rejected, "usage": self.usage}
        write_atomic(self.path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8"))

    def open_batches(self) -> list[dict[str, Any]]:
        return [b for b in self.batches if not b.get("collected")]


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


async def submit(client: openai.AsyncOpenAI, state: BatchState, queue: BatchQueue, max_lines: int,
                 max_bytes: int) -> list[dict[str, Any]]:
    """Upload the queued requests and create one batch per request file."""
    prefix = f"pass-{len({b['pass'] for b in state.batches}) + 1:03d}"
    created = []
    for path in split_request_files(queue, state.folder / "requests", prefix, max_lines, max_bytes):
        keys = [json.loads(line)["custom_id"] for line in path.read_text(encoding="utf-8").splitlines()]
        with open(path, "rb") as f:
            uploaded = await client.files.create(file=(path.name, f), purpose="batch")
        batch = await client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                            completion_window="24h")
        stages: dict[str, int] = {}
        for key in keys:
            stages[queue.stages[key]] = stages.get(queue.stages[key], 0) + 1
        entry = {"id": batch.id, "input_file_id": uploaded.id, "request_file": path.relative_to(state.folder).as_posix(),
                 "lines": len(keys), "stages": stages, "pass": prefix, "status": batch.status,
                 "submitted_at": int(time.time()), "collected": False}
        state.batches.append(entry)
        created.append(entry)
        state.save()
    return created


async def refresh(client: openai.AsyncOpenAI, state: BatchState) -> None:
    """Update the status of every batch not yet collected."""
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
    for entry in state.open_batches():
        if entry["status"] not in TERMINAL:
            continue
        for file_key in ("output_file_id", "error_file_id"):
            if not entry.get(file_key):
                continue
            content = await client.files.content(entry[file_key])
            for line in content.text.splitlines():
                if line.strip():
                    _collect_line(json.loads(line), state, cache, prices, model, tally)
        entry["collected"] = True
        state.save()
    return tally


def _collect_line(line: dict[str, Any], state: BatchState, cache: Cache, prices: PriceTable, model: str,
                  tally: dict[str, int]) -> None:
    key = line["custom_id"]
    response = line.get("response") or {}
    status = response.get("status_code")
    if status == 200:
        body = response["body"]
        cache.put(key, "batch", body.get("model", model), body)
        usage = body.get("usage") or {}
        state.usage["requests"] += 1
        state.usage["prompt_tokens"] += usage.get("prompt_tokens", 0)
        state.usage["completion_tokens"] += usage.get("completion_tokens", 0)
        state.usage["cost_usd"] += prices.dollars(model, usage.get("prompt_tokens", 0),
                                                  usage.get("completion_tokens", 0), batch=True) or 0.0
        tally["answers"] += 1
    elif status is not None and 400 <= status < 500 and status not in (408, 409, 429):
        error = (response.get("body") or {}).get("error") or {}
        state.rejected[key] = f"{status}: {error.get('message', 'rejected')}"
        tally["rejected"] += 1
    else:
        tally["failed"] += 1

