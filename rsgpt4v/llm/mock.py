"""The offline mock model: chat completions answered like a careful model would answer them.

It is served through the real `openai` client (see `rsgpt4v.fakeserver`) and reads only what a real
model would: the request.
Its answers are grounded: it parses the object list and counts the prompt carries, so ids,
categories and counts in a dry-run dataset are right, and the dataset is a meaningful sample of
a real build. Answers are a pure function of the request, so dry-runs are reproducible.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from rsgpt4v.cost import ImageRule, estimate_prompt_tokens
from rsgpt4v.language import grid_position
from rsgpt4v.naming import display, listing

_OBJECT_LINE = re.compile(r"^\s*(\{.*\"id\".*\})\s*,?\s*$")
_COUNT_LINE = re.compile(r"^- (\d+) ([A-Za-z][\w\- ]*)$")

_LOOKS = {
    "plane": ("white", "cross-shaped with swept wings", "parked at a stand"),
    "helicopter": ("dark green", "compact body with a long tail boom", "parked on a pad"),
    "ship": ("grey", "long and narrow with a pointed bow", "moored alongside"),
    "small-vehicle": ("dark", "small rectangle", "parked"),
    "large-vehicle": ("white", "long rectangle", "parked"),
    "storage-tank": ("white", "circular", "in use"),
    "harbor": ("light grey", "long straight pier", "in use"),
    "swimming-pool": ("blue", "rectangular", "filled with water"),
}
_VEHICLE_COLOURS = ("white", "black", "silver", "red", "dark blue", "grey")
# Open first questions that give nothing away, varied per request as a real model's are.
_OPENING_QUESTIONS = ("What does this scene show, and what is it likely used for?",
                      "How is the land in this image used?", "What goes on in this scene, and how can you tell?")


def _pick(options: tuple[str, ...], *salt: object) -> str:
    digest = hashlib.sha256("|".join(map(str, salt)).encode()).digest()
    return options[digest[0] % len(options)]


def _first_user_text(body: dict[str, Any]) -> str:
    for message in body.get("messages", []):
        if message.get("role") != "user":
            continue
        content = message["content"]
        if isinstance(content, str):
            return content
        return "\n".join(p.get("text", "") for p in content if p.get("type") == "text")
    return ""


def _orientation(box: list[float]) -> str:
    w, h = box[2] - box[0], box[3] - box[1]
    if abs(w - h) < 0.15 * max(w, h, 1e-6):
        return "not applicable" if w < 0.02 else "diagonal"
    return "aligned east-west" if w > h else "aligned north-south"


def _local(text: str) -> dict[str, Any]:
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
        colour, shape, state = _LOOKS.get(cat, ("", "compact", "visible"))
        if not colour or cat.endswith("vehicle"):
            colour = _pick(_VEHICLE_COLOURS, cat, o["id"], box)
        name = display(cat).singular
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
    return {"objects": notes}


def _counts(text: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in text.splitlines():
        m = _COUNT_LINE.match(line.strip())
        if m:
            counts[m.group(2).strip()] = int(m.group(1))
    return counts


def _scene_kind(counts: dict[str, int]) -> str:
    if "plane" in counts or "airport" in counts:
        return "an airport"
    if "ship" in counts or "harbor" in counts:
        return "a harbour"
    if "storage-tank" in counts:
        return "an industrial storage area"
    if any(c.endswith("vehicle") for c in counts):
        return "an area with roads and parking"
    return "a remote-sensing scene"


def _global(text: str) -> dict[str, Any]:
    counts = _counts(text)
    kind = _scene_kind(counts)
    ground = ("The ground between them is a mix of paved surfaces and open land, and the scene is seen "
              "from directly above, so every roof, road and open space keeps its true shape.")
    if not counts:
        return {"caption": f"An aerial view of {kind}.",
                "description": f"This aerial image shows {kind} seen from directly above. No single object "
                               f"stands out from the ground cover, which is spread evenly across the image. {ground}"}
    listed = listing(counts)
    return {
        "caption": f"An aerial view of {kind} with {listed}.",
        "description": f"This top-down image shows {kind}. It contains {listed}, laid out along the paved "
                       f"surfaces. {ground}",
    }


def _dialogue(text: str) -> dict[str, Any]:
    counts = _counts(text)
    kind = _scene_kind(counts)
    turns = [{"question": _pick(_OPENING_QUESTIONS, text),
              "answer": f"It shows {kind}, seen from directly above. The way the objects are grouped suggests "
                        "the site is in regular use."}]
    for cat, n in list(counts.items())[:2]:
        name = display(cat)
        turns.append({"question": f"How many {name.plural} are there, and where are they?",
                      "answer": f"There {'is' if n == 1 else 'are'} {name.counted(n)} in the image. They stand on the "
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


def completion_for(body: dict[str, Any]) -> dict[str, Any]:
    """The chat completion the mock returns for a request body."""
    schema_name = body.get("response_format", {}).get("json_schema", {}).get("name", "")
    answer = _STAGES.get(schema_name, lambda _t: {"text": "ok"})(_first_user_text(body))
    content = json.dumps(answer, ensure_ascii=False)
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:24]
    completion_tokens = len(content) // 4 + 1
    prompt_tokens = estimate_prompt_tokens(body, ImageRule())
    return {
        "id": f"chatcmpl-mock-{digest}", "object": "chat.completion", "created": 0, "model": body.get("model", ""),
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content, "refusal": None}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }
