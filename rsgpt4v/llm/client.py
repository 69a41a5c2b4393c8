"""The client factory: the real `openai` AsyncOpenAI client, pointed at OpenAI, a compatible server or the mock.

OpenAI, Azure OpenAI's v1 endpoint, vLLM, SGLang, Ollama, llama.cpp and LM Studio are all reached
through OPENAI_BASE_URL. The client's own retries are off: the engine owns retrying. A build that
only writes request files (`--batch-engine files`) gets an offline client: it needs no key, and a
request it tried to send would be a bug, said as such.
"""

from __future__ import annotations

import os

import httpx2
import openai

from rsgpt4v.llm.fakeserver import FakeAPI

BACKENDS = ("openai", "mock")


class MissingKeyError(Exception):
    """The openai backend was chosen without an API key in the environment."""


def _nothing_sent(request: httpx2.Request) -> httpx2.Response:
    raise RuntimeError(f"a build that writes request files sent {request.method} {request.url.path}")


def make_client(backend: str, timeout_s: float, offline: bool = False) -> openai.AsyncOpenAI:
    """The client for `backend` (`offline`: one that sends nothing and needs no key)."""
    if backend == "mock" or offline:
        transport = FakeAPI().transport() if backend == "mock" else httpx2.MockTransport(_nothing_sent)
        return openai.AsyncOpenAI(
            api_key="unused-key", base_url="http://offline.rsgpt4v.invalid/v1", max_retries=0, timeout=timeout_s,
            http_client=httpx2.AsyncClient(transport=transport),
        )
    if backend != "openai":
        raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if not os.environ.get("OPENAI_API_KEY"):
        raise MissingKeyError(
            "OPENAI_API_KEY is not set: export it (for a local server any non-empty value works), "
            "or use --dry-run to run offline with the mock"
        )
    return openai.AsyncOpenAI(max_retries=0, timeout=timeout_s)
