"""Shared test helpers: paths to the real-data fixtures and a client over a scripted transport.

For the source adapter tests: writers of tiny input files and an end-to-end `rsgpt4v build --dry-run`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from PIL import Image
from typer.testing import CliRunner, Result

from rsgpt4v.cli import app
from rsgpt4v.core.schema import Issue, Sample
from rsgpt4v.llm.fakeserver import FakeServer, Knobs

# beside the repository as CI lays it out; RSGPT4V_REAL_FIXTURES points a worktree elsewhere at them
REAL = Path(os.environ.get("RSGPT4V_REAL_FIXTURES")
            or Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "real")

# Every build of the suite (in process or in a child process) is strict: a record that fails after
# the model answered stops the build with exit 2 instead of becoming a record_failed issue, so a bug
# fails its test. The tests of that isolation remove this for themselves (tests/test_isolation.py).
os.environ["RSGPT4V_STRICT"] = "1"


@pytest.fixture
def real_dir() -> Path:
    if not REAL.is_dir():
        pytest.skip(f"real-data fixtures not present at {REAL}")
    return REAL


def completion(content: object, finish_reason: str = "stop", refusal: str | None = None) -> dict:
    text = content if isinstance(content, str) or content is None else json.dumps(content)
    return {"id": "c", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "finish_reason": finish_reason,
                         "message": {"role": "assistant", "content": text, "refusal": refusal}}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}}


class Scripted:
    """A transport handler answering from a list of (status, json, headers) and recording request bodies."""

    def __init__(self, answers: list[tuple[int, object, dict[str, str]]]) -> None:
        self.answers = list(answers)
        self.bodies: list[dict] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.bodies.append(json.loads(request.content))
        status, body, headers = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return httpx2.Response(status, json=body, headers=headers)


@pytest.fixture
def scripted_client() -> Callable[[Scripted], openai.AsyncOpenAI]:
    def make(handler: Scripted) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(api_key="sk-test-secret", base_url="http://test.invalid/v1", max_retries=0,
                                  http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)))
    return make


@contextmanager
def serving(knobs: Knobs) -> Iterator[tuple[FakeServer, list[dict[str, Any]]]]:
    """`rsgpt4v fake-server` on loopback, and the chat request bodies it answered (not those it refused)."""
    with FakeServer(knobs) as server:
        bodies: list[dict[str, Any]] = []
        handle = server.api.handle

        def recording(method: str, path: str, content_type: str, body: bytes) -> Any:
            reply = handle(method, path, content_type, body)
            if path.endswith("/chat/completions") and reply[0] == 200:
                bodies.append(json.loads(body))
            return reply

        server.api.handle = recording  # type: ignore[method-assign]
        yield server, bodies


class LoopbackServer:
    """An OpenAI-compatible HTTP server on 127.0.0.1 answering with `answer(body) -> (status, json)`."""

    def __init__(self, answer: Callable[[dict], tuple[int, dict]]) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.bodies: list[dict] = []
        self.headers: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.bodies.append(body)
                server.headers.append({k.lower(): v for k, v in self.headers.items()})
                status, payload = answer(body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def loopback_build(root: Path, out: Path, answer: Callable[[dict], tuple[int, dict]], *extra: str
                   ) -> tuple[dict, list[dict], LoopbackServer]:
    """`rsgpt4v build --source dota --root <root> --backend openai` against a loopback server answering
    with `answer`; the manifest, the records and the server (with the bodies it was sent)."""
    server = LoopbackServer(answer)
    try:
        result = CliRunner().invoke(app, ["build", "--no-progress", "--source", "dota", "--root", str(root),
                                          "--backend", "openai", "--out", str(out), *extra],
                                    env={"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "sk-loopback"},
                                    catch_exceptions=False)
    finally:
        server.close()
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for f in sorted(out.glob("*.jsonl")) for line in f.read_text().splitlines()]
    return json.loads((out / "manifest.json").read_text()), records, server


# ---- source adapters -------------------------------------------------------------------------

def write_image(path: Path, size: tuple[int, int] = (8, 8)) -> Path:
    """A tiny image at `path`, in the format its suffix names: adapters only check that it exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 90, 90)).save(path)
    return path


def write_json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return path


def split_out(items: list[Sample | Issue]) -> tuple[list[Sample], list[Issue]]:
    return [i for i in items if isinstance(i, Sample)], [i for i in items if isinstance(i, Issue)]


def dry_run(source: str, root: Path, out: Path, *extra: str, tasks: set[str] = frozenset()
            ) -> tuple[Result, list[dict], dict]:
    """`rsgpt4v build --dry-run --source <source> --root <root> --out <out> <extra>`, which must succeed and
    write records of at least `tasks` that `rsgpt4v validate` passes; the CLI result, the records of
    all *.jsonl files and the manifest."""
    from rsgpt4v.tools.validate import validate

    result = CliRunner().invoke(app, ["build", "--no-progress", "--source", source, "--root", str(root),
                                      "--dry-run", "--out", str(out), *extra], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for f in sorted(out.glob("*.jsonl")) for line in f.read_text().splitlines()]
    assert all((out / r["image"]).is_file() for r in records)
    report = validate([out])
    assert report.count == 0, [str(v) for v in report.violations]
    assert tasks <= {r["task"] for r in records}, {r["task"] for r in records}
    return result, records, json.loads((out / "manifest.json").read_text())


@pytest.fixture(scope="session")
def sample_build(tmp_path_factory) -> Path:
    """A dry-run build of the bundled sample, shared by the tests that only read it."""
    out = tmp_path_factory.mktemp("sample") / "out"
    result = CliRunner().invoke(app, ["build", "--source", "dota", "--sample", "--dry-run", "--no-progress",
                                      "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out


def collect_output(tmp_path: Path, output: bytes) -> tuple[dict[str, int], object]:
    """`collect` of one finished Batch API batch whose output file holds `output`, into a fresh cache
    under `tmp_path`: its tally and the (open) cache."""
    import asyncio

    from rsgpt4v.llm.batch import BatchState, collect
    from rsgpt4v.llm.cache import Cache
    from rsgpt4v.llm.cost import PriceTable

    batch = {"id": "batch_1", "object": "batch", "endpoint": "/v1/chat/completions", "completion_window": "24h",
             "input_file_id": "file_in", "output_file_id": "file_out", "status": "completed", "created_at": 1}

    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path.endswith("/files/file_out/content"):
            return httpx2.Response(200, content=output)
        assert request.url.path.endswith("/batches/batch_1"), request.url
        return httpx2.Response(200, json=batch)

    client = openai.AsyncOpenAI(api_key="sk-test", base_url="http://test.invalid/v1", max_retries=0,
                                http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)))
    cache = Cache(tmp_path / "cache.sqlite")
    state = BatchState(tmp_path / "batch", cache.path)
    state.batches.append({"id": "batch_1", "status": "in_progress", "collected": False, "pass": "pass-001"})
    return asyncio.run(collect(client, state, cache, PriceTable.load(), "gpt-4o")), cache
