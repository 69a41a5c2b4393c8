"""Backend profiles: what an OpenAI-compatible server accepts, and every request shaped to fit it.

A profile (configs/backends/<name>.yaml, or a file `rsgpt4v doctor --save` wrote) says how the
server takes structured output, which parameter caps the answer, how many images one request may
carry, whether it takes a system message and whether roles must alternate. The stages build one
canonical request (system, user text and images, a retry as a second user message, OpenAI's strict
`json_schema`); `BackendProfile.shape` is the one place that turns it into the body a server gets:

- without `json_schema` the response's JSON Schema itself, as JSON, goes into the instructions and
  the answer is read from the first JSON value of the text (`llm/json_text.py`);
- without a system role the instructions become the first text of the first user message;
- with alternating roles a retry's feedback joins the user message before it;
- the token limit goes under the parameter the server reads (Ollama and older llama.cpp ignore
  `max_completion_tokens` without a word; OpenAI's o-series refuse `max_tokens`).

More images than the profile allows make the request fall back to its one-image form, which the
stage that built it provides (`ChatRequest.one_image`).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rsgpt4v.core.problems import UnreadableYAML, read_yaml, validation_line, validation_problem
from rsgpt4v.core.resources import resource_dir
from rsgpt4v.llm.cost import ImageRule

StructuredOutput = Literal["json_schema_strict", "json_schema", "json_object", "none"]
TokenParam = Literal["max_completion_tokens", "max_tokens"]
# From the most to the least a server is asked to enforce: a refusal steps one down.
STRUCTURED_OUTPUTS: tuple[StructuredOutput, ...] = ("json_schema_strict", "json_schema", "json_object", "none")
# The parameter the stages write the answer's cap under; the profile renames it.
CANONICAL_TOKEN_PARAM = "max_completion_tokens"
FOLDER = "backends"


class ProfileError(Exception):
    """A backend profile that cannot be found, read or validated; the message names the file."""


class BackendProfile(BaseModel):
    """What one OpenAI-compatible server accepts (see configs/backends/ for the bundled ones)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str = ""
    structured_output: StructuredOutput = Field(
        default="json_schema_strict",
        description="json_schema_strict: OpenAI structured outputs; json_schema: the same with strict false; "
                    "json_object: JSON mode, the schema in the prompt; none: the schema in the prompt only")
    token_limit_param: TokenParam = "max_completion_tokens"
    images_per_request: int = Field(default=10, ge=1, description="the local stage sends two images (the clean "
                                                                  "and the marked window) where this allows")
    system_role: bool = True
    alternating_roles: bool = False
    image_rule: ImageRule | None = Field(default=None, description="image tokens for estimates and pacing; "
                                                                   "default: the model's rule in the price table")

    def settings(self) -> dict[str, Any]:
        """The settings that shape a request (not the name, description or estimate rule)."""
        return self.model_dump(include={"structured_output", "token_limit_param", "images_per_request",
                                        "system_role", "alternating_roles"})

    def shape(self, model: str, messages: list[dict[str, Any]], schema_name: str, schema: dict[str, Any],
              params: dict[str, Any]) -> dict[str, Any]:
        """The request body for this server from the canonical request (a system message, then user
        messages), with `schema` the response's strict JSON Schema."""
        messages = copy.deepcopy(messages)
        if self.structured_output in ("json_object", "none"):
            _add_to_instructions(messages, schema_note(schema_name, schema))
        if not self.system_role:
            messages = _without_system(messages)
        if self.alternating_roles:
            messages = _alternating(messages)
        body: dict[str, Any] = {"model": model, "messages": messages}
        if self.structured_output.startswith("json_schema"):
            body["response_format"] = {"type": "json_schema", "json_schema": {
                "name": schema_name, "schema": schema, "strict": self.structured_output == "json_schema_strict"}}
        elif self.structured_output == "json_object":
            body["response_format"] = {"type": "json_object"}
        for key, value in params.items():
            body[self.token_limit_param if key == CANONICAL_TOKEN_PARAM else key] = value
        return body


def count_images(messages: list[dict[str, Any]]) -> int:
    """The images a request's messages carry."""
    return sum(1 for m in messages if isinstance(m.get("content"), list)
               for part in m["content"] if part.get("type") == "image_url")


def schema_note(name: str, schema: dict[str, Any]) -> str:
    """The instructions' last paragraph when the server does not enforce the schema itself."""
    return (f"Answer with one JSON object and nothing else: no text before or after it. It must follow this "
            f"JSON Schema ({name}):\n{json.dumps(schema, ensure_ascii=False)}")


def _add_to_instructions(messages: list[dict[str, Any]], text: str) -> None:
    first = messages[0]
    if isinstance(first["content"], str):
        first["content"] = f"{first['content']}\n\n{text}"
    else:
        first["content"] = [*first["content"], {"type": "text", "text": text}]


def _parts(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else list(content)


def _without_system(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The system text as the first text part of the first user message (minja's polyfill does the same
    in llama.cpp); a model that reads only the request's own text finds it in the later parts."""
    system = [m for m in messages if m["role"] == "system"]
    rest = [m for m in messages if m["role"] != "system"]
    if not system:
        return rest
    instructions = [p for m in system for p in _parts(m["content"])]
    if not rest or rest[0]["role"] != "user":
        return [{"role": "user", "content": instructions}, *rest]
    return [{"role": "user", "content": instructions + _parts(rest[0]["content"])}, *rest[1:]]


def _alternating(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive messages of one role joined into one (a retry's feedback after the request it corrects)."""
    joined: list[dict[str, Any]] = []
    for message in messages:
        if joined and joined[-1]["role"] == message["role"]:
            joined[-1] = {**joined[-1], "content": _parts(joined[-1]["content"]) + _parts(message["content"])}
        else:
            joined.append(message)
    return joined


def bundled_profiles() -> dict[str, Path]:
    """The profiles shipped in configs/backends/, by name."""
    return {p.stem: p for p in sorted((resource_dir("configs") / FOLDER).glob("*.yaml"))}


def load_profile(name_or_path: str | Path) -> BackendProfile:
    """A bundled profile by name (`vllm`), or a profile file; ProfileError names the file and the key at fault."""
    bundled = bundled_profiles()
    path = bundled.get(str(name_or_path)) or Path(name_or_path)
    if not path.is_file():
        raise ProfileError(f"backend profile {str(name_or_path)!r} is neither a bundled profile "
                           f"({', '.join(bundled)}) nor a file")
    try:
        data, lines = read_yaml(path, "backend profile")
    except UnreadableYAML as exc:
        raise ProfileError(str(exc)) from None
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: a backend profile is a mapping of settings (see configs/backends/)")
    try:
        return BackendProfile.model_validate({"name": path.stem, **data})
    except ValidationError as exc:
        line = validation_line(exc, lines)
        raise ProfileError(f"{path}{f':{line}' if line else ''}: not a backend profile "
                           f"({validation_problem(exc)})") from None


def profile_yaml(profile: BackendProfile, comment: str = "") -> str:
    """A profile as the YAML file `load_profile` reads (what `doctor --save` writes)."""
    data = profile.model_dump(mode="json", exclude_none=True, exclude={"name"})
    head = "".join(f"# {line}\n" for line in comment.splitlines())
    return head + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
