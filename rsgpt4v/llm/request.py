"""The one request builder: a chat request as the API body, its strict response schema, its cache key.

Live calls and Batch API lines are both made from `ChatRequest.body(profile)`: the canonical request
shaped by the server's backend profile (`llm/profile.py`), the one place every stage's request goes
through. The cache key is a hash of the body as sent with every image replaced by the digest of its
bytes, so a prompt, model, schema, parameter or profile change misses the cache for exactly the
requests it affects. `ChatRequest.cache_key()` is the key of the canonical (OpenAI-shaped) body: the
request's identity whatever server it goes to, under which its verdict is kept.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from rsgpt4v.llm.profile import CANONICAL_TOKEN_PARAM, BackendProfile, count_images

CANONICAL = BackendProfile(name="canonical")


@functools.cache
def strict_json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema in the form OpenAI strict structured outputs require (computed once
    per model; callers must not mutate it)."""
    schema = model.model_json_schema()

    def tighten(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                node["additionalProperties"] = False
                node["required"] = list(node["properties"])
            for value in node.values():
                tighten(value)
        elif isinstance(node, list):
            for value in node:
                tighten(value)

    tighten(schema)
    return schema


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _images_replaced(messages: list[dict[str, Any]], replace: Callable[[str], str]) -> list[dict[str, Any]]:
    """A copy of the messages with each image's URL replaced by `replace(url)`."""
    out = copy.deepcopy(messages)
    for message in out:
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for part in content:
            if part.get("type") == "image_url":
                part["image_url"]["url"] = replace(part["image_url"]["url"])
    return out


def _digest(url: str) -> str:
    return "sha256:" + hashlib.sha256(url.encode("ascii")).hexdigest()


def _digest_images(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages with each data-URL image replaced by a hash of its bytes (cheap keys, same identity)."""
    return _images_replaced(messages, _digest)


def readable(body: dict[str, Any]) -> dict[str, Any]:
    """A request body for a person to read: each image's data URL shortened to its type, size and
    digest (the same digest as in the cache key), everything else as sent."""
    def short(url: str) -> str:
        head, _, data = url.partition(",")
        size = len(data) * 3 // 4 - (len(data) - len(data.rstrip("=")))  # base64 padding is no byte
        return f"{head},<{size:,} bytes, {_digest(url)[:23]}...>" if data else url
    return {**body, "messages": _images_replaced(body["messages"], short)}


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion with a structured response, and where it belongs in the build.

    `messages` are canonical: a system message, the user message (text, then images), and a retry's
    feedback as a second user message. `params` name the answer's cap `max_completion_tokens`.
    `one_image` makes the same request with a single image, for a server that takes no more (the
    local stage's two windows side by side, or the marked one alone).
    """

    stage: str
    model: str
    messages: list[dict[str, Any]]
    response_model: type[BaseModel]
    params: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    one_image: Callable[[], ChatRequest] | None = field(default=None, compare=False, repr=False)

    @property
    def max_output_tokens(self) -> int:
        """The answer's token cap."""
        return int(self.params.get(CANONICAL_TOKEN_PARAM) or 0)

    @property
    def images(self) -> int:
        return count_images(self.messages)

    def fitted(self, profile: BackendProfile) -> ChatRequest:
        """This request, or its one-image form when it carries more images than the server takes."""
        if self.images <= profile.images_per_request:
            return self
        if self.one_image is None:
            raise ValueError(f"a {self.stage} request carries {self.images} images and has no one-image form")
        return self.one_image()

    def body(self, profile: BackendProfile = CANONICAL) -> dict[str, Any]:
        """The request body exactly as sent to /v1/chat/completions of a server with this profile."""
        request = self.fitted(profile)
        model = request.response_model
        return profile.shape(request.model, request.messages, model.__name__, strict_json_schema(model),
                             request.params)

    def cache_key(self) -> str:
        """The key of the canonical body (see the module docstring)."""
        return cache_key_of(self.body())


def cache_key_of(body: dict[str, Any]) -> str:
    """The cache key of a request body: its canonical JSON with images by digest, hashed."""
    keyed = {**body, "messages": _digest_images(body["messages"])}
    return hashlib.sha256(canonical_json(keyed).encode("utf-8")).hexdigest()
