"""`rsgpt4v doctor`: what an OpenAI-compatible server accepts, found with a handful of tiny requests.

Each probe asks for one feature a build uses and nothing else: the token limit parameter (and
whether the server honours it: Ollama drops max_completion_tokens without a word, so the answer
runs past the cap), a system message, two user messages in a row, one image, two images, a
json_schema and a json_object response format. From what the server accepts comes the backend
profile that fits it (`llm/profile.py`), the bundled profile it matches, and with `--save` the
profile file a build takes with --backend-profile.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any

import openai
from PIL import Image

from rsgpt4v.llm.profile import BackendProfile, bundled_profiles, load_profile
from rsgpt4v.llm.refusals import error_message

# Asked of the token probe: a long answer, capped far below its length.
_COUNT = "Count from 1 to 100 in words, separated by commas."
_CAP = 8


class DoctorError(Exception):
    """The server cannot be probed at all (unreachable, the key refused, the model unknown)."""


@dataclass(frozen=True)
class Probe:
    """One probe's outcome: accepted, or refused with the server's status and words."""

    name: str
    accepted: bool
    detail: str = ""


def _tiny_png(colour: tuple[int, int, int]) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _user(text: str, images: int = 0) -> dict[str, Any]:
    if not images:
        return {"role": "user", "content": text}
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    parts += [{"type": "image_url", "image_url": {"url": _tiny_png((40 * i, 120, 200))}} for i in range(images)]
    return {"role": "user", "content": parts}


_SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
           "additionalProperties": False}
# name, what it means for a build, the request's own part of the body
PROBES: list[tuple[str, str, dict[str, Any]]] = [
    ("system message", "system_role", {"messages": [{"role": "system", "content": "Answer in one word."},
                                                    _user("Say ok.")]}),
    ("two user messages in a row", "alternating_roles", {"messages": [_user("Say ok."), _user("Just the word.")]}),
    ("one image", "images", {"messages": [_user("What colour is the image? One word.", images=1)]}),
    ("two images", "images", {"messages": [_user("What colours are the images? Two words.", images=2)]}),
    ("response_format json_schema", "structured_output", {
        "messages": [_user('Answer with the JSON object {"ok": true}.')],
        "response_format": {"type": "json_schema", "json_schema": {"name": "Probe", "schema": _SCHEMA,
                                                                   "strict": True}}}),
    ("response_format json_object", "structured_output", {
        "messages": [_user('Answer with the JSON object {"ok": true}.')], "response_format": {"type": "json_object"}}),
]


async def _send(client: openai.AsyncOpenAI, body: dict[str, Any]) -> tuple[Probe | None, dict[str, Any]]:
    """(None, the completion) when the server answers, else (the refusal, {})."""
    try:
        raw = await client.chat.completions.with_raw_response.create(**body)
    except openai.APIConnectionError as exc:
        raise DoctorError(f"cannot reach the server ({exc}); check OPENAI_BASE_URL") from None
    except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as exc:
        raise DoctorError(f"the server answered {exc.status_code} ({error_message(exc)}); check "
                          "OPENAI_API_KEY and --model") from None
    except openai.APIStatusError as exc:
        return Probe("", False, f"{exc.status_code}: {' '.join(error_message(exc).split())[:160]}"), {}
    return None, raw.parse().model_dump(mode="json")


async def _token_param(client: openai.AsyncOpenAI, model: str) -> tuple[str, list[Probe]]:
    """The parameter that caps the answer: the first the server both accepts and honours."""
    probes = []
    for param in ("max_completion_tokens", "max_tokens"):
        refused, completion = await _send(client, {"model": model, "messages": [_user(_COUNT)], param: _CAP})
        if refused is not None:
            probes.append(Probe(param, False, refused.detail))
            continue
        written = (completion.get("usage") or {}).get("completion_tokens") or 0
        if written > 2 * _CAP:
            probes.append(Probe(param, False, f"accepted but ignored: {written} tokens written for a cap of {_CAP}"))
            continue
        probes.append(Probe(param, True))
        return param, probes
    raise DoctorError("the server honours neither max_completion_tokens nor max_tokens: "
                      + "; ".join(f"{p.name}: {p.detail}" for p in probes))


async def diagnose(client: openai.AsyncOpenAI, model: str) -> tuple[list[Probe], BackendProfile]:
    """Every probe's outcome, and the profile that asks only for what the server accepts."""
    param, probes = await _token_param(client, model)
    accepted: dict[str, bool] = {}
    for name, _, request in PROBES:
        refused, _ = await _send(client, {"model": model, param: 16, **request})
        probes.append(Probe(name, refused is None, refused.detail if refused else ""))
        accepted[name] = refused is None
    if not accepted["one image"]:
        raise DoctorError("the server takes no image at all (" + next(p.detail for p in probes if p.name == "one image")
                          + "); serve a vision model (llama.cpp: give --mmproj)")
    structured = ("json_schema_strict" if accepted["response_format json_schema"]
                  else "json_object" if accepted["response_format json_object"] else "none")
    profile = BackendProfile(
        name="found", description=f"found by rsgpt4v doctor for {model}", structured_output=structured,
        token_limit_param=param, images_per_request=2 if accepted["two images"] else 1,
        system_role=accepted["system message"], alternating_roles=not accepted["two user messages in a row"])
    return probes, profile


# The order bundled profiles are suggested in when several fit: the best known first.
PREFERRED = ("openai", "azure", "vllm", "sglang", "ollama", "llamacpp", "lmstudio", "generic")


def _compared(profile: BackendProfile) -> dict[str, Any]:
    """The settings that shape a request; images only up to the two a build sends."""
    settings = profile.settings()
    settings["images_per_request"] = min(settings["images_per_request"], 2)
    return settings


def reasons(probes: list[Probe]) -> dict[str, str]:
    """Why each setting of the found profile is what it is: the refusals that decided it."""
    setting_of = {name: setting for name, setting, _ in PROBES}
    setting_of.update(max_completion_tokens="token_limit_param", max_tokens="token_limit_param")
    why: dict[str, str] = {}
    for p in probes:
        if not p.accepted:
            setting = "images_per_request" if setting_of[p.name] == "images" else setting_of[p.name]
            why[setting] = "; ".join(filter(None, (why.get(setting), f"probe {p.name}: {p.detail}")))
    return why


def matching(profile: BackendProfile) -> tuple[list[str], str, list[str]]:
    """The bundled profiles with the same settings as `profile`, and the closest one with the
    settings in which it differs (none when some match)."""
    found = _compared(profile)
    names = sorted(bundled_profiles(), key=lambda n: (PREFERRED.index(n) if n in PREFERRED else len(PREFERRED), n))
    differences = {}
    for name in names:
        theirs = _compared(load_profile(name))
        differences[name] = [k for k in found if found[k] != theirs[k]]
    closest = min(names, key=lambda n: len(differences[n]))
    return [n for n in names if not differences[n]], closest, differences[closest]
