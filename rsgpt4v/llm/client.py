"""The client factory: the real `openai` AsyncOpenAI client, pointed at OpenAI, a compatible server or the mock.

OpenAI, Azure OpenAI's v1 endpoint, vLLM and Ollama are all reached through OPENAI_BASE_URL. The
client's own retries are off: the engine owns retrying.
"""

from __future__ import annotations

import os

import httpx2
import openai

from rsgpt4v.llm.fakeserver import FakeAPI, Knobs
from rsgpt4v.llm.mock import Looks

BACKENDS = ("openai", "mock")


class MissingKeyError(Exception):
    """The openai backend was chosen without an API key in the environment."""


def make_client(backend: str, timeout_s: float, looks: dict[str, Looks] | None = None,
                names: dict[str, str] | None = None) -> openai.AsyncOpenAI:
    """The client for `backend`; `looks` and `names` tell the mock how the source's categories look
    and what they are called."""
    if backend == "mock":
        knobs = Knobs(looks=looks or {}, names=names or {})
        return openai.AsyncOpenAI(
            api_key="mock-key", base_url="http://mock.rsgpt4v.invalid/v1", max_retries=0, timeout=timeout_s,
            http_client=httpx2.AsyncClient(transport=FakeAPI(knobs).transport()),
        )
    if backend != "openai":
        raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if not os.environ.get("OPENAI_API_KEY"):
        raise MissingKeyError(
            "OPENAI_API_KEY is not set: export it (for a local server any non-empty value works), "
            "or use --dry-run to run offline with the mock"
        )
    return openai.AsyncOpenAI(max_retries=0, timeout=timeout_s)
