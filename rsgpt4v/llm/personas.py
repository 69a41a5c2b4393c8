"""How the fake server answers as each OpenAI-compatible server does: refusals, their words and envelopes.

`rsgpt4v fake-server --emulate NAME` speaks as one server; the quirks (`--no-json-schema`,
`--no-json-object`, `--prose`, `--max-images N`, `--strict-roles`) add the refusals a real setup
meets: an older build without json_schema, a model that wraps its JSON in prose and fences, a server
started to take one image per prompt, a chat template (Gemma's, Mistral's) that takes no system
message and wants roles to alternate. Each persona refuses in its own server's words, status and
error envelope, as its source code or its issue tracker shows them:

- openai: 400 `{"error": {"message", "type": "invalid_request_error", "param", "code"}}`; json_schema on
  a model without structured outputs: "Invalid parameter: 'response_format' of type 'json_schema' is
  not supported with this model..." (quoted in several projects' issues, for gpt-4 and
  gpt-4o-audio-preview).
- azure: OpenAI's envelope; Azure's own errors `{"error": {"code": "BadRequest", "message"}}`, e.g.
  "response_format value as json_schema is enabled only for api versions 2024-08-01-preview and later".
- vllm: 400 `{"error": {"message", "type": "BadRequestError", "param", "code": 400}}`
  (vllm-project/vllm `vllm/entrypoints/utils.py::create_error_response`, since v0.10.1, PR 22099);
  chat-template errors re-raised with their text twice (`f"{e} {e.__cause__}"` in serving_chat, seen
  in OpenSecretCloud/opensecret issue 120); before json_schema joined its ResponseFormat literal
  (vllm issue 7656) a pydantic 400.
- sglang: the flat `{"object": "error", "message", "type", "param", "code"}`
  (sgl-project/sglang `python/sglang/srt/entrypoints/openai/serving_base.py`); template errors become
  500 "Internal server error: ..."; "Image count 3 exceeds limit 2 per request."
  (`tokenizer_manager.py::_validate_mm_limits`).
- ollama: 400 `{"error": {"message", "type": "invalid_request_error", "param": null, "code": null}}`
  (ollama/ollama `openai/openai.go`); reads max_tokens only; json_schema ignored before v0.5.0 (PR
  7900); "this model only supports one image while more than one image requested" as a 500
  (`server/prompt.go`).
- llamacpp: `{"error": {"code", "message", "type"}}` with the code as HTTP status (ggml-org/llama.cpp
  `tools/server/server-common.cpp`); builds before json_schema support answered 500 'response_format
  type must be one of "text" or "json_object", but got: json_schema' (llama.cpp issue 9522); a system
  message is folded into the first user turn (minja's `polyfill_system_role`); alternation errors are
  500 "... Jinja Exception: ..." (nextai-translator issue 34).
- lmstudio: 400 `{"error": "<message>"}`, a bare string; json_object refused always ("'response_format.type'
  must be 'json_schema' or 'text'", lmstudio-bug-tracker issues 169, 189 and 307); jinja errors
  "Error rendering prompt with jinja template: ..." (lmstudio-bug-tracker issue 842).

Where a server has no documented words for a quirk (an image limit on OpenAI or llama.cpp, for
instance) the persona uses vLLM's, and the code says so.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rsgpt4v.llm.profile import count_images

Reply = tuple[int, dict[str, Any]]
# The chat templates' own words (google/gemma-2-9b-it and gemma-3 tokenizer_config.json, the Mistral
# and Mixtral templates): Gemma 1/2 refuse a system role; Gemma, Mistral and Mixtral templates raise
# the second when two messages of one role follow each other.
SYSTEM_REFUSED = "System role not supported"
ALTERNATE = "Conversation roles must alternate user/assistant/user/assistant/..."
# vLLM v0.8+ (vllm/multimodal/processing/context.py::BaseProcessingInfo.validate_num_items).
VLLM_IMAGES = "At most {limit} image(s) may be provided in one prompt."
# vLLM before json_schema joined its ResponseFormat literal (issue vllm#7656): pydantic's 400.
PYDANTIC_FORMAT = ("1 validation error for ChatCompletionRequest\nresponse_format.type\n  Input should be 'text' "
                   "or 'json_object' [type=literal_error, input_value='json_schema', input_type=str]")


@dataclass(frozen=True)
class Quirks:
    """What the server refuses or does beyond its persona's defaults."""

    no_json_schema: bool = False
    no_json_object: bool = False
    prose: bool = False
    max_images: int | None = None
    strict_roles: bool = False


def _openai_error(status: int, message: str, param: str | None = None) -> Reply:
    return status, {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}}


def _vllm_error(status: int, message: str, param: str | None = None) -> Reply:
    kind = "BadRequestError" if status == 400 else "InternalServerError"
    return status, {"error": {"message": message, "type": kind, "param": param, "code": status}}


def _flat_error(status: int, message: str, param: str | None = None) -> Reply:
    kind = "BadRequestError" if status == 400 else "InternalServerError"
    return status, {"object": "error", "message": message, "type": kind, "param": param, "code": status}


def _ollama_error(status: int, message: str, param: str | None = None) -> Reply:
    kind = "invalid_request_error" if status == 400 else "api_error"
    return status, {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _llamacpp_error(status: int, message: str, param: str | None = None) -> Reply:
    kind = "invalid_request_error" if status == 400 else "server_error"
    return status, {"error": {"code": status, "message": message, "type": kind}}


def _lmstudio_error(status: int, message: str, param: str | None = None) -> Reply:
    return status, {"error": message}


@dataclass(frozen=True)
class Persona:
    """One server's ways: its error envelope and what it says (status, words) for each refusal.

    `says` maps a refusal (json_schema, json_object, images, system, alternation) to its status and
    text; `{limit}` and `{count}` are filled in. A refusal missing from `says` is one the server never
    makes: `ignores_json_schema` (answers unconstrained), `folds_system` (the system text joins the
    first user turn).
    """

    name: str
    error: Callable[[int, str, str | None], Reply]
    says: dict[str, tuple[int, str]]
    reads: tuple[str, ...] = ("max_completion_tokens", "max_tokens")
    refuses_json_object: bool = False
    ignores_json_schema: bool = False
    folds_system: bool = False
    param: dict[str, str] = field(default_factory=dict)


_OPENAI_SAYS = {
    "json_schema": (400, "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this "
                         "model. Learn more about supported models at the Structured Outputs guide: "
                         "https://platform.openai.com/docs/guides/structured-outputs"),
    "json_object": (400, "Invalid parameter: 'response_format' of type 'json_object' is not supported with this "
                         "model."),
    # OpenAI documents no image-count error (500 images are allowed): vLLM's words.
    "images": (400, VLLM_IMAGES),
    "system": (400, SYSTEM_REFUSED),
    "alternation": (400, ALTERNATE),
}

PERSONAS: dict[str, Persona] = {p.name: p for p in [
    Persona("openai", _openai_error, _OPENAI_SAYS, param={"json_schema": "response_format"}),
    Persona("azure", _openai_error, {
        **_OPENAI_SAYS,
        "json_schema": (400, "response_format value as json_schema is enabled only for api versions "
                             "2024-08-01-preview and later")}),
    Persona("vllm", _vllm_error, {
        "json_schema": (400, PYDANTIC_FORMAT),
        "images": (400, VLLM_IMAGES),
        "system": (400, f"{SYSTEM_REFUSED} {SYSTEM_REFUSED}"),
        "alternation": (400, f"{ALTERNATE} {ALTERNATE}")}, param={"images": "image"}),
    Persona("sglang", _flat_error, {
        "json_schema": (400, PYDANTIC_FORMAT),
        "images": (400, "Image count {count} exceeds limit {limit} per request."),
        "system": (500, f"Internal server error: {SYSTEM_REFUSED}"),
        "alternation": (500, f"Internal server error: {ALTERNATE}")}),
    Persona("ollama", _ollama_error, {
        "images": (500, "this model only supports one image while more than one image requested"),
        "system": (500, f"chat template prompt error: {SYSTEM_REFUSED}"),
        "alternation": (500, f"chat template prompt error: {ALTERNATE}")},
        reads=("max_tokens",), ignores_json_schema=True),
    Persona("llamacpp", _llamacpp_error, {
        "json_schema": (500, 'response_format type must be one of "text" or "json_object", but got: json_schema'),
        # llama-server has no per-request image count: vLLM's words.
        "images": (400, VLLM_IMAGES),
        "alternation": (500, "\n------------\nWhile executing CallExpression at line 19, column 27 in source:\n"
                             "...% 2 == 0) -%}\n        {{ raise_exception(\"Conversation roles must alternate user..."
                             f"\n                                           ^\nError: Jinja Exception: {ALTERNATE}")},
        folds_system=True),
    Persona("lmstudio", _lmstudio_error, {
        # LM Studio before 0.3.0 had no json_schema; its words for that are not recorded: the json_object ones.
        "json_schema": (400, "'response_format.type' must be 'text'"),
        "json_object": (400, "'response_format.type' must be 'json_schema' or 'text'"),
        "images": (400, VLLM_IMAGES),
        "system": (400, f'Error rendering prompt with jinja template: "{SYSTEM_REFUSED}".\n\nThis is usually an '
                        "issue with the model's prompt template."),
        "alternation": (400, f'Error rendering prompt with jinja template: "{ALTERNATE}".\n\nThis is usually an '
                             "issue with the model's prompt template.")},
        reads=("max_tokens",), refuses_json_object=True),
]}


def _refused(persona: Persona, quirks: Quirks, body: dict[str, Any]) -> tuple[str, int] | None:
    """Which refusal the request meets, and the image limit where that is it."""
    kind = (body.get("response_format") or {}).get("type")
    if kind == "json_schema" and quirks.no_json_schema and not persona.ignores_json_schema:
        return "json_schema", 0
    if kind == "json_object" and (quirks.no_json_object or persona.refuses_json_object):
        return "json_object", 0
    if quirks.max_images is not None and count_images(body.get("messages", [])) > quirks.max_images:
        return "images", quirks.max_images
    if quirks.strict_roles:
        roles = [m.get("role") for m in body.get("messages", [])]
        if "system" in roles and not persona.folds_system:
            return "system", 0
        talk = [r for r in roles if r != "system"]
        if any(a == b for a, b in zip(talk, talk[1:])):
            return "alternation", 0
    return None


def refusal(persona: Persona, quirks: Quirks, body: dict[str, Any]) -> Reply | None:
    """The error reply this server gives the request, or None when it takes it."""
    found = _refused(persona, quirks, body)
    if found is None:
        return None
    what, limit = found
    status, text = persona.says.get(what, _OPENAI_SAYS[what])
    text = text.replace("{limit}", str(limit)).replace("{count}", str(count_images(body.get("messages", []))))
    return persona.error(status, text, persona.param.get(what))


def as_read(persona: Persona, quirks: Quirks, body: dict[str, Any]) -> dict[str, Any]:
    """The request as the server's model sees it: the token parameters it does not read dropped
    (Ollama drops max_completion_tokens without a word)."""
    return {k: v for k, v in body.items()
            if k not in ("max_completion_tokens", "max_tokens") or k in persona.reads}


def unconstrained(persona: Persona, quirks: Quirks, body: dict[str, Any]) -> bool:
    """Whether the model writes as it likes (prose around the JSON): the quirk says so, or no
    json_schema reached a server that enforces one."""
    kind = (body.get("response_format") or {}).get("type")
    ignored = kind == "json_schema" and quirks.no_json_schema and persona.ignores_json_schema
    return quirks.prose or ignored


_OPENERS = ("Here is the answer in the requested format:", "Sure! Below is the JSON you asked for.",
            "I looked at the image carefully. The result:")
_CLOSERS = ("Let me know if you need anything else.", "I hope this helps.",
            "Each entry follows the schema {as asked}.")


def in_prose(content: str) -> str:
    """`content` as a model without constrained decoding writes it: a sentence, a ```json fence, a
    closing remark (one with braces of its own), picked by a hash so reruns are identical."""
    digest = hashlib.sha256(content.encode("utf-8")).digest()
    return (f"{_OPENERS[digest[0] % len(_OPENERS)]}\n\n```json\n{content}\n```\n\n"
            f"{_CLOSERS[digest[1] % len(_CLOSERS)]}")
