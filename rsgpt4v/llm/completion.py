"""The shape of a chat completion, as everything that reads one expects it: at least one choice
holding a message whose content and refusal are text or null, a finish reason, and token counts
that are counts.

One model for every way an answer arrives: a live answer (whatever the server sent), a Batch API
result, a result file of another engine (`batch import`), a completion read back from the cache. A
body of another shape (`choices: [null]`, `content: 123`, `usage: "lots"`) is named by
`completion_problem` before anything reads its fields, so no answer can crash a build, now or when
a later run reads it from the cache.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class _Part(BaseModel):
    # strict: a number is no text; unknown keys (logprobs, tool calls, a server's extras) are kept.
    model_config = ConfigDict(extra="allow", strict=True)


class Message(_Part):
    content: str | None = None
    refusal: str | None = None


class Choice(_Part):
    message: Message
    finish_reason: str | None = None


class TokenCounts(_Part):
    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)


class Completion(_Part):
    choices: list[Choice] = Field(min_length=1)
    model: str | None = None
    usage: TokenCounts | None = None


def completion_problem(body: Any) -> str | None:
    """Why `body` is not a chat completion as the build reads one, in one line; None when it is."""
    if not isinstance(body, dict):
        return f"the response is a JSON {type(body).__name__}, not a chat completion object"
    try:
        Completion.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "the response"
        return f"the response is not a chat completion ({where}: {first['msg']})"
    return None


def token_counts(body: dict[str, Any]) -> TokenCounts:
    """The completion's token counts; zeros when it has none or they are not counts."""
    usage = body.get("usage")
    try:
        return TokenCounts.model_validate(usage) if isinstance(usage, dict) else TokenCounts()
    except ValidationError:
        return TokenCounts()
