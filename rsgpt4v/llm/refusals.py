"""A server's refusal of a request feature, recognised from its error, and the profile that avoids it.

OpenAI-compatible servers refuse what they cannot do with an error whose words, status and envelope
differ by server; the patterns below are those their sources and issue trackers show (the
references are in `llm/personas.py`, which speaks as each server). A refusal names one feature:

- `response_format`: json_schema (llama.cpp before its schema support: 'response_format type must be
  one of "text" or "json_object", but got: json_schema'; OpenAI's older models: "'response_format' of
  type 'json_schema' is not supported"; Azure before api-version 2024-08-01-preview), or
  json_object (LM Studio: "'response_format.type' must be 'json_schema' or 'text'"), or TGI's own
  shape ("Failed to deserialize ... response_format");
- `images`: more images than the server takes ("At most 1 image(s) may be provided in one prompt."
  from vLLM, "Image count 2 exceeds limit 1 per request." from SGLang, "only supports one image" from
  Ollama), or none at all ("image input is not supported" from llama.cpp without --mmproj);
- `system_role`: "System role not supported" (Gemma 1/2 chat templates);
- `alternation`: "Conversation roles must alternate user/assistant/..." (Gemma, Mistral templates,
  whatever server renders them: 400 from vLLM, 500 from llama.cpp and SGLang, 422 from TGI);
- `token_param`: "Unsupported parameter: 'max_tokens' ... Use 'max_completion_tokens' instead."
  (OpenAI's o-series and gpt-5).

`AdaptiveProfile` holds the profile requests are shaped by. Given with --backend-profile (or
`model.profile`), a refusal stops the run with one line naming the feature and the setting that
fixes it; by default (no profile) the feature is switched off for the rest of the run, each switch
is recorded for the manifest, and the refused request is sent again, as it was not paid for.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import openai

from rsgpt4v.core.report import BackendSwitch
from rsgpt4v.llm.profile import STRUCTURED_OUTPUTS, BackendProfile, bundled_profiles, count_images, load_profile

AUTO = "auto"


class Feature(StrEnum):
    RESPONSE_FORMAT = "response_format"
    IMAGES = "images"
    SYSTEM_ROLE = "system_role"
    ALTERNATION = "alternation"
    TOKEN_PARAM = "token_param"


# What each feature is called in a message, and the profile setting that turns it off.
WHAT = {Feature.RESPONSE_FORMAT: "this response_format", Feature.IMAGES: "this many images in one request",
        Feature.SYSTEM_ROLE: "a system message", Feature.ALTERNATION: "two user messages in a row",
        Feature.TOKEN_PARAM: "this token limit parameter"}
_PATTERNS: list[tuple[Feature, re.Pattern[str]]] = [(feature, re.compile(pattern, re.IGNORECASE)) for feature, pattern in [
    (Feature.TOKEN_PARAM, r"unsupported parameter: '(max_tokens|max_completion_tokens)'"),
    (Feature.RESPONSE_FORMAT, r"response_format type must be one of|'response_format\.type' must be|"
                              r"'response_format' of type '\w+' is not supported|"
                              r"response_format value as json_schema is enabled only|"
                              r"failed to deserialize.*response_format|response_format.*missing field|"
                              r"grammar is not supported|json_schema.*not supported|json_object.*not supported|"
                              r"response_format\.type\s+input should be"),
    (Feature.IMAGES, r"at most \d+ image\(s\) may be provided|you set image=\d+|image count \d+ exceeds limit|"
                     r"only supports one image|single image per message|image input is not supported|"
                     r"model does not support images|does not support (image|vision|multimodal)"),
    (Feature.SYSTEM_ROLE, r"system role not supported|system (role|message)s? (is |are )?not (supported|allowed)"),
    (Feature.ALTERNATION, r"roles must alternate|unexpected role '|expected last role|"
                          r"only user and assistant roles are supported"),
]]
_LIMIT = re.compile(r"at most (\d+) image|exceeds limit (\d+)|image=(\d+)", re.IGNORECASE)


def error_message(exc: openai.APIStatusError) -> str:
    """The server's own words. The client keeps the body's `error` member when there is one: an object
    with a `message` (OpenAI, vLLM, Ollama, llama.cpp) or a bare string (LM Studio, TGI); older vLLM and
    SGLang send the flat object with its `message`; a body that is not JSON stays text."""
    body = exc.body
    if isinstance(body, dict):
        for found in (body.get("message"), (body.get("error") or {}).get("message")
                      if isinstance(body.get("error"), dict) else body.get("error")):
            if isinstance(found, str) and found:
                return found
    if isinstance(body, str) and body.strip():
        return body
    return exc.message


@dataclass(frozen=True)
class Refusal:
    """A server's refusal of one feature of a request."""

    feature: Feature
    status: int
    message: str
    limit: int | None = None  # images: the most the server says it takes

    def quoted(self) -> str:
        text = " ".join(self.message.split())
        return f"{self.status}: {text[:200]}{'...' if len(text) > 200 else ''}"


def refusal_of(exc: BaseException) -> Refusal | None:
    """The feature a server error refuses, or None for any other error (a bad image, a lost connection)."""
    if not isinstance(exc, openai.APIStatusError) or exc.status_code not in (400, 422, 500, 501):
        return None
    message = error_message(exc)
    for feature, pattern in _PATTERNS:
        if pattern.search(message):
            limit = None
            if feature is Feature.IMAGES and (m := _LIMIT.search(message)):
                limit = int(next(g for g in m.groups() if g is not None))
            return Refusal(feature, exc.status_code, message, limit)
    return None


class FeatureRefused(Exception):
    """The server refuses a feature that the profile in force cannot do without: the run stops."""


def _roles(body: dict[str, Any]) -> list[str]:
    return [m["role"] for m in body.get("messages", [])]


class AdaptiveProfile:
    """The profile every request is shaped by, changed (or the run stopped) by a server's refusals.

    `given` profiles come from the user: a refusal stops the run naming the setting to change.
    Otherwise each refusal switches its feature off for the rest of the run (`switches`).
    """

    def __init__(self, profile: BackendProfile, given: bool, where: str = "") -> None:
        self.profile = profile
        self.given = given
        self.where = where or profile.name
        self.switches: list[BackendSwitch] = []
        self._lock = threading.Lock()

    def adapt(self, refusal: Refusal, body: dict[str, Any], shaped_by: BackendProfile) -> None:
        """Change the profile so the refused request can be sent again, or raise FeatureRefused.

        `shaped_by` is the profile `body` was shaped with: when another request's refusal changed the
        profile since, the request is simply shaped again.
        """
        with self._lock:
            if self.profile is not shaped_by:
                return
            setting, value = self._fix(refusal, body)
            if self.given:
                raise FeatureRefused(
                    f"the server refused {WHAT[refusal.feature]} ({refusal.quoted()}): set {setting}: "
                    f"{_yaml(value)} in the backend profile {self.where}, or drop the profile to let rsgpt4v "
                    "adapt (`rsgpt4v doctor` lists what the server accepts)")
            before = getattr(self.profile, setting)
            self.profile = self.profile.model_copy(update={setting: value})
            self.switches.append(BackendSwitch(feature=refusal.feature, setting=setting, before=before, after=value,
                                               because=refusal.quoted()))

    def adopt(self, found: BackendProfile, why: dict[str, str]) -> None:
        """Take the settings a probe found (`llm/doctor.py`) before any request is sent, each change
        recorded with the probe's outcome (`why`, by setting)."""
        with self._lock:
            for setting, after in found.settings().items():
                before = getattr(self.profile, setting)
                # a build sends at most two images: 10 allowed and 2 allowed are the same to it
                if (min(before, 2) if setting == "images_per_request" else before) != after:
                    self.switches.append(BackendSwitch(feature=setting, setting=setting, before=before, after=after,
                                                       because=why.get(setting, "probe")))
            self.profile = self.profile.model_copy(update=found.settings())

    def _fix(self, refusal: Refusal, body: dict[str, Any]) -> tuple[str, Any]:
        """The setting and value that avoid the refusal; FeatureRefused when none does."""
        p = self.profile
        if refusal.feature is Feature.RESPONSE_FORMAT:
            sent = (body.get("response_format") or {}).get("type", "none")
            level = STRUCTURED_OUTPUTS.index(p.structured_output)
            # json_schema refused: JSON mode, which most servers have; JSON mode refused: no response_format.
            lower = "json_object" if sent == "json_schema" else "none" if sent == "json_object" else None
            if lower is not None and STRUCTURED_OUTPUTS.index(lower) > level:
                return "structured_output", lower
        elif refusal.feature is Feature.IMAGES:
            sent = count_images(body.get("messages", []))
            allowed = refusal.limit if refusal.limit is not None else sent - 1
            if 1 <= allowed < sent:
                return "images_per_request", allowed
        elif refusal.feature is Feature.SYSTEM_ROLE:
            if p.system_role and "system" in _roles(body):
                return "system_role", False
        elif refusal.feature is Feature.ALTERNATION:
            roles = _roles(body)
            if not p.alternating_roles and any(a == b for a, b in zip(roles, roles[1:])):
                return "alternating_roles", True
            # Older Mistral templates trip over a leading system message with this same error.
            if p.system_role and "system" in roles:
                return "system_role", False
        elif refusal.feature is Feature.TOKEN_PARAM:
            other = "max_completion_tokens" if p.token_limit_param == "max_tokens" else "max_tokens"
            if p.token_limit_param in refusal.message:
                return "token_limit_param", other
        raise FeatureRefused(f"the server refused {WHAT[refusal.feature]} ({refusal.quoted()}) and no backend "
                             f"profile setting avoids it{_hint(refusal)}")


def adaptive(name_or_path: str | None) -> AdaptiveProfile:
    """The profile a run starts with: the one given (a bundled name or a file), or, with none, OpenAI's
    settings under the name `auto`, adapted as the server refuses them."""
    if name_or_path is None:
        return AdaptiveProfile(load_profile("openai").model_copy(update={"name": AUTO}), given=False)
    profile = load_profile(name_or_path)
    bundled = bundled_profiles().get(str(name_or_path))
    where = f"{profile.name} ({bundled})" if bundled is not None else str(name_or_path)
    return AdaptiveProfile(profile, given=True, where=where)


def _hint(refusal: Refusal) -> str:
    if refusal.feature is Feature.IMAGES:
        return ": the model takes no images; serve a vision model (llama.cpp: give --mmproj)"
    return ""


def _yaml(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
