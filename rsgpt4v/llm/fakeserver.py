"""`rsgpt4v fake-server`: an OpenAI-compatible server on loopback for dry-running a real setup.

It answers chat completions with the mock model, and the files and batches endpoints the Batch API
uses, with knobs for latency, RPM/TPM limits, injected faults (429, 5xx, malformed JSON) and a model
that writes like a real one (answers of realistic length cut at the token limit, slips), so a
whole workstation configuration (concurrency, limits, retries, batch) can be exercised offline, and
tests can drive the real `openai` client against it. GET /_stats reports what it saw. `plant` appends
a sentence to every free-text field of the answers, to see what QC keeps of it. `emulate` and the
quirks make it refuse and answer as vLLM, SGLang, Ollama, llama.cpp, LM Studio, OpenAI or Azure do
(`llm/personas.py`).
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx2

from rsgpt4v.llm.cost import DEFAULT_IMAGE_RULE, estimate_prompt_tokens
from rsgpt4v.llm.mock import Style, completion_for
from rsgpt4v.llm.personas import PERSONAS, Quirks, as_read, in_prose, refusal, unconstrained


@dataclass
class Knobs:
    latency_s: float = 0.0
    rpm: float | None = None
    tpm: float | None = None
    fail_5xx: float = 0.0
    fail_429: float = 0.0
    malformed: float = 0.0
    batch_expire: float = 0.0
    batch_delay_s: float = 0.0
    seed: int = 0
    plant: str | None = None
    answer_tokens_per_object: int | None = None
    mistakes: float = 0.0
    judge_contradictions: float = 0.2
    emulate: str = "openai"
    quirks: Quirks = field(default_factory=Quirks)

    def __post_init__(self) -> None:
        if self.emulate not in PERSONAS:
            raise ValueError(f"unknown server to emulate {self.emulate!r}; choose from {', '.join(PERSONAS)}")

    @property
    def style(self) -> Style:
        return Style(tokens_per_object=self.answer_tokens_per_object, mistakes=self.mistakes,
                     judge_contradictions=self.judge_contradictions)


@dataclass
class Stats:
    requests: int = 0
    completed: int = 0
    throttled: int = 0
    injected_429: int = 0
    injected_5xx: int = 0
    malformed: int = 0
    refused: int = 0
    batches: int = 0
    batch_lines: int = 0
    first_admitted: float = 0.0
    last_admitted: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


@dataclass
class _State:
    knobs: Knobs
    stats: Stats = field(default_factory=Stats)
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Limits are enforced per second, as providers do: a bucket holding one second's worth
    # (600 RPM: 10 requests), refilled continuously.
    levels: dict[str, float] = field(default_factory=dict)
    refilled: float = field(default_factory=time.monotonic)
    lock: threading.Lock = field(default_factory=threading.Lock)
    ids: itertools.count = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.knobs.seed)

    def new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self.ids):06d}"

    def admit(self, tokens: int) -> float | None:
        """None when the request fits the buckets (and is charged), else seconds until it would."""
        now = time.monotonic()
        rates = {k: v / 60.0 for k, v in (("requests", self.knobs.rpm), ("tokens", self.knobs.tpm)) if v}
        for kind, rate in rates.items():
            capacity = max(rate, tokens) if kind == "tokens" else rate
            self.levels[kind] = min(capacity, self.levels.get(kind, capacity) + (now - self.refilled) * rate)
        self.refilled = now
        need = {"requests": 1.0, "tokens": float(tokens)}
        short = [(need[k] - self.levels[k]) / rate for k, rate in rates.items() if self.levels[k] < need[k]]
        if short:
            return max(0.05, max(short))
        for kind in rates:
            self.levels[kind] -= need[kind]
        self.stats.first_admitted = self.stats.first_admitted or now
        self.stats.last_admitted = now
        return None


def _fault(state: _State) -> str | None:
    k, r = state.knobs, state.rng.random()
    if r < k.fail_429:
        return "429"
    if r < k.fail_429 + k.fail_5xx:
        return "5xx"
    if r < k.fail_429 + k.fail_5xx + k.malformed:
        return "malformed"
    return None


# The answer fields that become record text: where a planted sentence tests what QC keeps.
_FREE_TEXT = {"description", "referring_expression", "caption", "question", "answer"}


def plant(answer: Any, sentence: str) -> Any:
    """`answer` with `sentence` appended to every free-text field, at any depth."""
    if isinstance(answer, dict):
        return {k: _appended(v, sentence) if k in _FREE_TEXT and isinstance(v, str) else plant(v, sentence)
                for k, v in answer.items()}
    if isinstance(answer, list):
        return [plant(v, sentence) for v in answer]
    return answer


def _appended(text: str, sentence: str) -> str:
    text = text.rstrip()
    return f"{text} {sentence}" if text.endswith((".", "!", "?")) else f"{text}. {sentence}"


def _error(status: int, message: str, code: str, kind: str = "invalid_request_error") -> tuple[int, dict]:
    return status, {"error": {"message": message, "type": kind, "code": code, "param": None}}


def chat(state: _State, body: dict[str, Any]) -> tuple[int, dict[str, Any], dict[str, str]]:
    """One chat completion, subject to the emulated server's refusals, limits and injected faults:
    status, body, headers."""
    persona = PERSONAS[state.knobs.emulate]
    refused = refusal(persona, state.knobs.quirks, body)
    if refused is not None:
        with state.lock:
            state.stats.requests += 1
            state.stats.refused += 1
        return *refused, {}
    tokens = estimate_prompt_tokens(body, DEFAULT_IMAGE_RULE) + int(body.get("max_completion_tokens")
                                                             or body.get("max_tokens") or 0)
    with state.lock:
        state.stats.requests += 1
        wait = state.admit(tokens)
        fault = None if wait is not None else _fault(state)
        if wait is not None:
            state.stats.throttled += 1
        elif fault == "429":
            state.stats.injected_429 += 1
        elif fault == "5xx":
            state.stats.injected_5xx += 1
        elif fault == "malformed":
            state.stats.malformed += 1
        level = state.levels.get("requests")
    rpm = state.knobs.rpm
    # OpenAI's reset header: time until the limit is back to its initial (full) state.
    reset = (rpm / 60.0 - level) / (rpm / 60.0) if rpm and level is not None else 0.0
    headers = {"x-ratelimit-limit-requests": str(int(rpm or 1_000_000)),
               "x-ratelimit-remaining-requests": str(int(level) if level is not None else 1_000_000),
               "x-ratelimit-reset-requests": f"{max(reset, 0.0):.3f}s"}
    if wait is not None:
        status, payload = _error(429, "Rate limit reached for requests", "rate_limit_exceeded", "requests")
        return status, payload, {**headers, "retry-after": f"{wait:.2f}"}
    if fault == "429":
        status, payload = _error(429, "Rate limit reached (injected)", "rate_limit_exceeded", "requests")
        return status, payload, {**headers, "retry-after": "0.1"}
    if fault == "5xx":
        status, payload = _error(503, "The server is overloaded (injected)", "server_error", "server_error")
        return status, payload, headers
    if state.knobs.latency_s:
        time.sleep(state.rng.uniform(0.5, 1.5) * state.knobs.latency_s)
    try:
        completion = completion_for(as_read(persona, state.knobs.quirks, body), state.knobs.style)
    except (OSError, ValueError) as exc:
        status, payload = _error(400, f"Invalid image: {exc}", "invalid_image")
        return status, payload, headers
    message = completion["choices"][0]["message"]
    if state.knobs.plant:
        message["content"] = json.dumps(plant(json.loads(message["content"]), state.knobs.plant), ensure_ascii=False)
    if message["content"] is not None and unconstrained(persona, state.knobs.quirks, body):
        message["content"] = in_prose(message["content"])
    if fault == "malformed":
        message["content"] = '{"objects": [{"id": 1, "colour": "whi'
    with state.lock:
        state.stats.completed += 1
    return 200, completion, headers


def _run_batch(state: _State, batch: dict[str, Any]) -> None:
    """Process a batch: answers to an output file, failures and expiries to an error file."""
    _, content = state.files[batch["input_file_id"]]
    out_lines, err_lines = [], []
    for raw in content.split(b"\n"):  # as the API splits: at "\n" only, not at a U+2028 inside a prompt
        if not raw.strip():
            continue
        line = json.loads(raw)
        with state.lock:
            state.stats.batch_lines += 1
            expire = state.rng.random() < state.knobs.batch_expire
        if expire:
            err_lines.append({"id": state.new_id("batch_req"), "custom_id": line["custom_id"], "response": None,
                              "error": {"code": "batch_expired", "message": "not completed within the window"}})
            continue
        status, body, _ = chat(state, line["body"])
        entry = {"id": state.new_id("batch_req"), "custom_id": line["custom_id"],
                 "response": {"status_code": status, "request_id": state.new_id("req"), "body": body}, "error": None}
        (out_lines if status == 200 else err_lines).append(entry)
    now = int(time.time())
    for key, lines in (("output_file_id", out_lines), ("error_file_id", err_lines)):
        if lines:
            file_id = state.new_id("file")
            state.files[file_id] = ("batch_output.jsonl", "".join(json.dumps(x) + "\n" for x in lines).encode())
            batch[key] = file_id
    batch.update(status="completed", completed_at=now, finalizing_at=now, in_progress_at=now,
                 request_counts={"total": len(out_lines) + len(err_lines), "completed": len(out_lines),
                                 "failed": len(err_lines)})


def _file_object(file_id: str, name: str, size: int, purpose: str) -> dict[str, Any]:
    return {"id": file_id, "object": "file", "bytes": size, "created_at": int(time.time()), "filename": name,
            "purpose": purpose, "status": "processed"}


def _parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    return {part.get_param("name", header="content-disposition"): (part.get_filename(), part.get_payload(decode=True))
            for part in message.iter_parts()}


Reply = tuple[int, Any, dict[str, str]]


class FakeAPI:
    """The fake OpenAI API itself, independent of transport: served over HTTP by `FakeServer`, or
    in-process through `transport()` (the mock backend)."""

    def __init__(self, knobs: Knobs | None = None) -> None:
        self.state = _State(knobs or Knobs())

    def handle(self, method: str, path: str, content_type: str, body: bytes) -> Reply:
        """Status, payload (JSON-able, or bytes for file content) and headers for one request."""
        path = path.split("?")[0].rstrip("/")
        parts = path.split("/")
        if method == "POST":
            if path.endswith("/files"):
                return self._upload(content_type, body)
            try:
                payload = json.loads(body)
            except ValueError:  # a body cut short (a client that hung up mid-request) or not JSON
                status, error = _error(400, "We could not parse the JSON body of your request.", "invalid_json")
                return status, error, {}
            if path.endswith("/chat/completions"):
                return chat(self.state, payload)
            if path.endswith("/batches"):
                return self._create_batch(payload)
        elif method == "GET":
            if path.endswith("/_stats"):
                return 200, self.state.stats.as_dict(), {}
            if path.endswith("/batches"):
                return 200, self._list_batches(), {}
            if "batches" in parts and parts[-1] in self.state.batches:
                return 200, self._batch(parts[-1]), {}
            if "files" in parts and parts[-1] == "content" and parts[-2] in self.state.files:
                return 200, self.state.files[parts[-2]][1], {}
            if "files" in parts and parts[-1] in self.state.files:
                name, content = self.state.files[parts[-1]]
                return 200, _file_object(parts[-1], name, len(content), "batch"), {}
        status, payload = _error(404, f"fake API has no {method} {path}", "not_found")
        return status, payload, {}

    def _upload(self, content_type: str, body: bytes) -> Reply:
        fields = _parse_multipart(content_type, body)
        name, content = fields["file"]
        file_id = self.state.new_id("file")
        self.state.files[file_id] = (name or "upload.jsonl", content)
        return 200, _file_object(file_id, name or "upload.jsonl", len(content), fields["purpose"][1].decode()), {}

    def _create_batch(self, request: dict[str, Any]) -> Reply:
        if request.get("input_file_id") not in self.state.files:
            status, payload = _error(404, "No such file", "file_not_found")
            return status, payload, {}
        batch = {"id": self.state.new_id("batch"), "object": "batch", "endpoint": request["endpoint"],
                 "input_file_id": request["input_file_id"], "completion_window": request["completion_window"],
                 "status": "in_progress", "created_at": int(time.time()), "metadata": request.get("metadata"),
                 "_ready_at": time.monotonic() + self.state.knobs.batch_delay_s}
        with self.state.lock:
            self.state.batches[batch["id"]] = batch
            self.state.stats.batches += 1
        return 200, self._public(batch), {}

    def _batch(self, batch_id: str) -> dict[str, Any]:
        batch = self.state.batches[batch_id]
        if batch["status"] == "in_progress" and time.monotonic() >= batch["_ready_at"]:
            _run_batch(self.state, batch)
        return self._public(batch)

    def _list_batches(self) -> dict[str, Any]:
        """Every batch, newest first, in one page (the real API pages by 20 to 100)."""
        newest = [self._batch(i) for i in sorted(self.state.batches, reverse=True)]
        return {"object": "list", "data": newest, "has_more": False,
                "first_id": newest[0]["id"] if newest else None, "last_id": newest[-1]["id"] if newest else None}

    @staticmethod
    def _public(batch: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in batch.items() if not k.startswith("_")}

    def transport(self) -> httpx2.MockTransport:
        def handler(request: httpx2.Request) -> httpx2.Response:
            status, payload, headers = self.handle(request.method, request.url.path,
                                                   request.headers.get("content-type", ""), request.content)
            if isinstance(payload, bytes):
                return httpx2.Response(status, content=payload, headers=headers)
            return httpx2.Response(status, json=payload, headers=headers)
        return httpx2.MockTransport(handler)


class _Handler(BaseHTTPRequestHandler):
    server: FakeServer

    def _reply(self, method: str) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status, payload, headers = self.server.api.handle(method, self.path, self.headers.get("Content-Type", ""), body)
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream" if isinstance(payload, bytes) else "application/json")
        self.send_header("Content-Length", str(len(raw)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(raw)

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self._reply("POST")

    def do_GET(self) -> None:  # noqa: N802
        self._reply("GET")

    def log_message(self, *args: object) -> None:
        pass


class FakeServer(ThreadingHTTPServer):
    """The fake API over HTTP; `url` is the base URL for OPENAI_BASE_URL. A context manager in tests."""

    daemon_threads = True

    def __init__(self, knobs: Knobs | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__((host, port), _Handler)
        self.api = FakeAPI(knobs)
        self.url = f"http://{host}:{self.server_address[1]}/v1"

    @property
    def stats(self) -> Stats:
        return self.api.state.stats

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up mid-answer (a build stopping, its requests cancelled) is no error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def __enter__(self) -> FakeServer:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()
