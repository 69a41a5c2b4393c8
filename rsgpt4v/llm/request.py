"""The one request builder: a chat request as the API body, its strict response schema, its cache key.

Live calls and Batch API lines are both made from `ChatRequest.body()`, and the cache key is a hash
of that body with every image replaced by the digest of its bytes, so a prompt, model, schema or
parameter change misses the cache for exactly the requests it affects.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel


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


def _digest_images(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages with each data-URL image replaced by a hash of its bytes (cheap keys, same identity)."""
    out = copy.deepcopy(messages)
    for message in out:
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for part in content:
            if part.get("type") == "image_url":
                url = part["image_url"]["url"]
                part["image_url"]["url"] = "sha256:" + hashlib.sha256(url.encode("ascii")).hexdigest()
    return out


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion with a structured response, and where it belongs in the build."""

    stage: str
    model: str
    messages: list[dict[str, Any]]
    response_model: type[BaseModel]
    params: dict[str, Any] = field(default_factory=dict)
    label: str = ""

    def response_format(self) -> dict[str, Any]:
        return {
            "type": "json_schema",
            "json_schema": {
                "name": self.response_model.__name__,
                "schema": strict_json_schema(self.response_model),
                "strict": True,
            },
        }

    @property
    def max_output_tokens(self) -> int:
        """The answer's token cap, whichever parameter name the server was given it under."""
        return int(self.params.get("max_completion_tokens") or self.params.get("max_tokens") or 0)

    def body(self) -> dict[str, Any]:
        """The request body exactly as sent to /v1/chat/completions."""
        return {"model": self.model, "messages": self.messages, "response_format": self.response_format(),
                **self.params}

    def cache_key(self) -> str:
        return cache_key_of(self.body())


def cache_key_of(body: dict[str, Any]) -> str:
    """The cache key of a request body: its canonical JSON with images by digest, hashed."""
    keyed = {**body, "messages": _digest_images(body["messages"])}
    return hashlib.sha256(canonical_json(keyed).encode("utf-8")).hexdigest()
