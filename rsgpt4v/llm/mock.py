"""The offline mock model: chat completions answered like a careful model would answer them.

It is served through the real `openai` client (see `rsgpt4v.llm.fakeserver`) and reads only what a real
model would: the request, however a backend profile shaped it (no system message, the JSON Schema
in the instructions instead of `response_format`, a retry joined to the request). So a dry run
(`--dry-run`) and `rsgpt4v fake-server` are one model: the same request gets the same answer.
Its answers are grounded: it parses the object list and counts the prompt carries, so ids,
categories and counts in a dry-run dataset are right, and the dataset is a meaningful sample of
a real build. Answers are a pure function of the request, so dry-runs are reproducible.

By default its answers are short and always usable. A `Style` makes it behave like a real model:
local answers of about `tokens_per_object` output tokens per object, cut off at the request's
token limit with finish_reason "length" as the API does, and, for a fraction `mistakes` of the
answers, the slips careful models still make (an object left out, talk of the marks, a refusal).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from rsgpt4v.language.words import grid_position, plural, readable
from rsgpt4v.llm.cost import DEFAULT_IMAGE_RULE, estimate_prompt_tokens

_OBJECT_LINE = re.compile(r"^\s*(\{.*\"id\".*\})\s*,?\s*$")
# The response's schema in the instructions, when the server was not given it as response_format.
_SCHEMA_TITLE = re.compile(r'"title":\s*"(\w+)"')
# "- 14 small vehicles", "- 1 ship": a labelled count in the names the prompt uses.
_COUNT_LINE = re.compile(r"^- (\d+) ([A-Za-z][\w\- ]*)$")

# Open first questions that give nothing away, varied per request as a real model's are.
_OPENING_QUESTIONS = ("What does this scene show, and what is it likely used for?",
                      "How is the land in this image used?", "What goes on in this scene, and how can you tell?")
_COLOURS = ("white", "black", "silver", "red", "dark blue", "grey")
# Clauses a careful model adds when it looks closely, used to bring answers to a realistic length.
_DETAIL = ("with a crisp outline against the surrounding surface", "casting a short shadow towards the north-west",
           "its roof showing a faint lighter stripe along the centre line", "set slightly apart from its neighbours",
           "with its edges sharp and undamaged", "standing on a paved, light grey surface",
           "its far end slightly darker than the near end", "with no visible markings on the top surface")
_SHAPE_DETAIL = ("straight sides and squared-off ends", "a flat top with small features near one end",
                 "a uniform width along its whole length", "slightly rounded corners",
                 "a darker band across one end", "a lighter strip along one side")


# What the mock says of an object: colour ("" for one of _COLOURS), shape seen from above, state; by
# the plain name the object list gives (any other kind is "compact" and "visible").
Looks = tuple[str, str, str]
LOOKS: dict[str, Looks] = {
    "plane": ("white", "cross-shaped with swept wings", "parked at a stand"),
    "helicopter": ("dark green", "compact body with a long tail boom", "parked on a pad"),
    "ship": ("grey", "long and narrow with a pointed bow", "moored alongside"),
    "small vehicle": ("", "small rectangle", "parked"),
    "large vehicle": ("", "long rectangle", "parked"),
    "storage tank": ("white", "circular", "in use"),
    "harbour": ("light grey", "long straight pier", "in use"),
    "swimming pool": ("blue", "rectangular", "filled with water"),
}


@dataclass(frozen=True)
class Style:
    """How the mock writes: `tokens_per_object` output tokens per local object (None: short answers)
    and the fraction of answers with a realistic slip."""

    tokens_per_object: int | None = None
    mistakes: float = 0.0


def _fraction(*salt: object) -> float:
    digest = hashlib.sha256("|".join(map(str, salt)).encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32


def _elaborate(note: dict[str, Any], tokens: int) -> dict[str, Any]:
    """The note with the detail a careful answer has, about `tokens` output tokens in all (4 chars a token)."""
    target = tokens * 4
    words = note["description"].rstrip(".").split()
    extra = [c for i, c in enumerate(_DETAIL) if _fraction(note["id"], i) < 0.6]
    for clause in extra:
        if len(words) + len(clause.split()) > 38:
            break
        words += [","] + clause.split()
    note = {**note, "description": " ".join(words).replace(" ,", ",") + "."}
    shape = [note["shape"]]
    for clause in _SHAPE_DETAIL:
        if len(json.dumps(note, indent=2)) + len(", with ".join(shape)) - len(note["shape"]) >= target:
            break
        shape.append(clause)
    note["shape"] = ", with ".join(shape)
    state = note["state"]
    while len(json.dumps(note, indent=2)) < target:
        state += ", in the same position as in the rest of the scene"
        note["state"] = state
    return note


def _pick(options: tuple[str, ...], *salt: object) -> str:
    digest = hashlib.sha256("|".join(map(str, salt)).encode()).digest()
    return options[digest[0] % len(options)]


def _texts(message: dict[str, Any]) -> list[str]:
    content = message.get("content")
    if isinstance(content, str):
        return [content]
    return [p.get("text", "") for p in content or [] if p.get("type") == "text"]


def _request_text(body: dict[str, Any]) -> str:
    """The text of the request itself: the first user message's, without the instructions that open
    it when the server takes no system message (`llm/profile.py` puts them in a text part of their own)."""
    messages = body.get("messages", [])
    first = next((m for m in messages if m.get("role") == "user"), None)
    if first is None:
        return ""
    texts = _texts(first)
    if len(texts) > 1 and not any(m.get("role") == "system" for m in messages):
        texts = texts[1:]
    return "\n".join(texts)


def _schema_name(body: dict[str, Any]) -> str:
    """Which response the request asks for: its json_schema's name, else the title of the schema its
    instructions carry."""
    named = ((body.get("response_format") or {}).get("json_schema") or {}).get("name")
    if named:
        return str(named)
    for message in body.get("messages", []):
        for text in _texts(message):
            for m in _SCHEMA_TITLE.finditer(text):
                if m.group(1) in _STAGES:
                    return m.group(1)
    return ""


def _orientation(box: list[float]) -> str:
    w, h = box[2] - box[0], box[3] - box[1]
    if abs(w - h) < 0.15 * max(w, h, 1e-6):
        return "not applicable" if w < 0.02 else "diagonal"
    return "aligned east-west" if w > h else "aligned north-south"


def _local(text: str, style: Style) -> dict[str, Any]:
    objects = []
    for line in text.splitlines():
        m = _OBJECT_LINE.match(line)
        if m:
            try:
                entry = json.loads(m.group(1))
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict) and "id" in entry and "category" in entry and "box" in entry:
                objects.append(entry)
    per_category: dict[str, int] = {}
    for o in objects:
        per_category[o["category"]] = per_category.get(o["category"], 0) + 1
    notes = []
    for o in objects:
        cat, box = o["category"], o["box"]
        name = readable(cat)
        colour, shape, state = LOOKS.get(name, ("", "compact", "visible"))
        if not colour:
            colour = _pick(_COLOURS, cat, o["id"], box)
        where = grid_position((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        edge = " partly cut off by the image edge" if o.get("truncated") else ""
        neighbours = sorted((abs(p["box"][0] - box[0]) + abs(p["box"][1] - box[1]), p["id"])
                            for p in objects if p["id"] != o["id"])
        notes.append({
            "id": o["id"], "colour": colour, "shape": shape, "orientation": _orientation(box), "state": state,
            "description": f"A {colour} {name} {state} in the {where} of the image{edge}.",
            "relations": [{"target_id": pid, "relation": "near"} for _, pid in neighbours[:1]],
            "referring_expression": f"the {colour} {name} in the {where}",
            "distinctive": per_category[cat] == 1,
        })
    if style.tokens_per_object:
        notes = [_elaborate(n, style.tokens_per_object) for n in notes]
    return {"objects": notes}


def _counts(text: str) -> list[tuple[int, str]]:
    """The labelled counts of the prompt: (n, "small vehicles")."""
    return [(int(m.group(1)), m.group(2).strip()) for line in text.splitlines()
            if (m := _COUNT_LINE.match(line.strip()))]


def _plural_of(n: int, noun: str) -> str:
    return noun if n != 1 else plural(noun)


_SCENE_KINDS = [(("plane", "airport", "aircraft"), "an airport"), (("ship", "harbour", "harbor", "boat"), "a harbour"),
                (("storage tank",), "an industrial storage area"), (("vehicle", "car"), "an area with roads and parking")]


def _scene_kind(counts: list[tuple[int, str]]) -> str:
    nouns = " ".join(noun for _, noun in counts)
    return next((kind for words, kind in _SCENE_KINDS if any(w in nouns for w in words)), "a remote-sensing scene")


def _global(text: str, style: Style) -> dict[str, Any]:
    counts = _counts(text)
    kind = _scene_kind(counts)
    ground = ("The ground between them is a mix of paved surfaces and open land, and the scene is seen "
              "from directly above, so every roof, road and open space keeps its true shape.")
    if not counts:
        return {"caption": f"An aerial view of {kind}.",
                "description": f"This aerial image shows {kind} seen from directly above. No single object "
                               f"stands out from the ground cover, which is spread evenly across the image. {ground}"}
    parts = [f"{n} {noun}" for n, noun in counts]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return {
        "caption": f"An aerial view of {kind} with {listed}.",
        "description": f"This top-down image shows {kind}. It contains {listed}, laid out along the paved "
                       f"surfaces. {ground}",
    }


def _dialogue(text: str, style: Style) -> dict[str, Any]:
    counts = _counts(text)
    kind = _scene_kind(counts)
    turns = [{"question": _pick(_OPENING_QUESTIONS, text),
              "answer": f"It shows {kind}, seen from directly above. The way the objects are grouped suggests "
                        "the site is in regular use."}]
    for n, noun in counts[:2]:
        turns.append({"question": f"How many {_plural_of(n, noun)} are there, and where are they?",
                      "answer": f"There {'is' if n == 1 else 'are'} {n} {noun} in the image. They stand on the "
                                "open ground between the other features, where they can be reached easily."})
    turns.append({"question": "What does the arrangement of the objects suggest about how the site is used?",
                  "answer": f"The objects are grouped where {kind} would keep them, which suggests the site is "
                            "in regular use rather than abandoned."})
    while len(turns) < 3:
        turns.append({"question": "Why is there so much open ground in this scene?",
                      "answer": "Nothing has been built on it yet. It is probably kept free for access or for "
                                "later use."})
    return {"turns": turns[:5]}


_STAGES = {"LocalResponse": _local, "GlobalResponse": _global, "DialogueResponse": _dialogue}


def _slip(answer: dict[str, Any], schema_name: str) -> tuple[dict[str, Any], str | None]:
    """A realistic mistake in an answer: an object left out, talk of the marks, or a refusal."""
    if schema_name == "LocalResponse" and len(answer["objects"]) > 1:
        return {"objects": answer["objects"][:-1]}, None
    if schema_name == "LocalResponse" and answer["objects"]:
        note = answer["objects"][0]
        return {"objects": [{**note, "description": f"{note['description'][:-1]}, outlined by mark {note['id']}."}]}, None
    if schema_name == "GlobalResponse":
        return {**answer, "description": "According to the annotations, " + answer["description"]}, None
    return answer, "I'm sorry, I can't help with describing this image."


def completion_for(body: dict[str, Any], style: Style = Style()) -> dict[str, Any]:
    """The chat completion the mock returns for a request body."""
    schema_name = _schema_name(body)
    stage = _STAGES.get(schema_name)
    answer = stage(_request_text(body), style) if stage else {"text": "ok"}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:24]
    refusal = None
    if style.mistakes and _fraction(digest, "slip") < style.mistakes:
        answer, refusal = _slip(answer, schema_name)
    content = json.dumps(answer, ensure_ascii=False, indent=2 if style.tokens_per_object else None)
    completion_tokens = len(content) // 4 + 1
    finish = "stop"
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if limit and completion_tokens > limit:
        # The API stops writing at the limit: the JSON is cut mid-way.
        content, completion_tokens, finish = content[: limit * 4], limit, "length"
    prompt_tokens = estimate_prompt_tokens(body, DEFAULT_IMAGE_RULE)
    return {
        "id": f"chatcmpl-mock-{digest}", "object": "chat.completion", "created": 0, "model": body.get("model", ""),
        "choices": [{"index": 0, "finish_reason": finish,
                     "message": {"role": "assistant", "content": None if refusal else content, "refusal": refusal}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }
