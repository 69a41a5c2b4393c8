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
token limit with finish_reason "length" as the API does, dialogues that open as real models open
them (most first questions name the main kind of object, a few hold their own answer), and, for a
fraction `mistakes` of the answers, the slips careful models still make (an object left out, talk
of the marks, a refusal, a verdict left out).

As a judge it reads the labels and the numbered statements, as a judge that cannot see would: a
statement whose number for a labelled kind disagrees with the count, or that puts its object on a
side of the image the object list does not, is contradicted; otherwise a statement is supported,
but for a seeded share `judge_contradictions` of the requests one statement is contradicted (so the
way back to a stage is taken in dry runs) and a few are not visible.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from rsgpt4v.language.words import grid_position, plural, read_number, readable
from rsgpt4v.llm.cost import DEFAULT_IMAGE_RULE, estimate_prompt_tokens

_OBJECT_LINE = re.compile(r"^\s*(\{.*\"id\".*\})\s*,?\s*$")
# The response's schema in the instructions, when the server was not given it as response_format.
_SCHEMA_TITLE = re.compile(r'"title":\s*"(\w+)"')
# "- 14 small vehicles", "- 1 ship": a labelled count in the names the prompt uses.
_COUNT_LINE = re.compile(r"^- (\d+) ([A-Za-z][\w\- ]*)$")
# "- [3] plane (top left; white; ...): A white ...": a noted object of the global prompt, with its id.
_NOTE_LINE = re.compile(r"^- \[(\d+)\] ([^(\[\]]+) \(([^;)]*)")

# Open first questions that give nothing away, varied per request as a real model's are.
_OPENING_QUESTIONS = ("What does this scene show, and what is it likely used for?",
                      "How is the land in this image used?", "What goes on in this scene, and how can you tell?")
# How models that write like real ones open a dialogue ({noun}: the most numerous labelled kind, {kind}:
# the scene): most name what they ask about and answer with a reason; one of these holds its own answer.
_REALISTIC_OPENINGS = (
    ("Why are the {noun} grouped the way they are?",
     "They stand close together where the paved ground gives them room, which keeps the lanes between them clear."),
    ("What does the layout of this site suggest about how it is used?",
     "It is {kind} in regular use: the objects stand in orderly groups with open lanes between them."),
    ("How could a vehicle reach the {noun} from the edge of the image?",
     "By the paved lanes that run between the groups, which are wide enough to drive along."),
    ("What activity is most likely going on here?",
     "It is {kind} where objects are kept between uses; nothing suggests they are being moved right now."),
    ("Why is there so much open space around the {noun}?",
     "The open ground leaves room to move them in and out and to reach each one without moving the others."),
    ("How are the {noun} arranged, and what does that suggest?",
     "They stand in loose groups with space between them, which suggests they are placed for easy access."),
    ("What could make this site busier than it is now?",
     "More of them would fit on the open paved ground, so the site could take more without new building."),
    ("Why would the {noun} be placed close to the paved areas?",
     "Paved ground is firm and level and easy to reach, which is what objects in frequent use need."),
    ("How does the land around the {noun} appear to be used?",
     "Most of it is paved and kept open, probably for access, with open land at the edges."),
    ("Why are the {noun} spread across the image rather than kept in one place?",
     "Each group can then be reached on its own, which suggests the site serves several uses at once."),
    ("How is this scene organised?", "It is {kind}: groups of objects stand on paved ground, separated by open lanes."),
    ("What would a visitor notice first from above?",
     "The groups of objects on the paved ground stand out against the open land around them."),
    ("What kind of site holds all these {noun}?", "It is {kind} where {noun} are kept."),
)
# "3. (about object [12]) A white ship ...": a numbered statement of the judge's prompt.
_STATEMENT = re.compile(r"^(\d+)\. (?:\(about object \[(\d+)\]\) )?(.+)$")
# "- [12] ship: box [0.10, 0.20, 0.15, 0.30], top left": an object of the judge's prompt and where it is.
_PLACED = re.compile(r"^- \[(\d+)\] [^:]+: box \[[^\]]*\], (.+)$")
# Words for a side of the image, as (axis, side).
_SIDE_WORDS = {"top": ("row", "top"), "upper": ("row", "top"), "north": ("row", "top"), "northern": ("row", "top"),
               "bottom": ("row", "bottom"), "lower": ("row", "bottom"), "south": ("row", "bottom"),
               "southern": ("row", "bottom"), "left": ("col", "left"), "west": ("col", "left"),
               "western": ("col", "left"), "right": ("col", "right"), "east": ("col", "right"),
               "eastern": ("col", "right")}
# A compass word that gives a direction, not a place: a shadow cast "towards the north-west", a nose
# "pointing east", a row "from east to west", a car "to the west of the bus" (beside another object).
_DIRECTION = re.compile(r"\b(?:towards?|to|facing|faces?|pointing|points?|heading|heads?|headed|from|aligned|"
                        r"oriented|running|runs?)\s+(?:the\s+)?(?:north|south|east|west)[a-z-]*"
                        r"(?:\s+to\s+(?:the\s+)?(?:north|south|east|west)[a-z-]*)?")
_SIDE = (r"(?:top|bottom|upper|lower|left|right|middle|centre|center|north|south|east|west|northern|southern|"
         r"eastern|western|north-?west|north-?east|south-?west|south-?east)")
# Where a statement puts its object: "at the top left", "in the bottom centre of the image", "near the
# western edge of the lot", "in the middle of the bottom row"; a side word naming a part of the object
# ("the top surface") is no place.
_LOCATION = re.compile(rf"\b(?:in|at|on|of|near|along|by|across) the ((?:{_SIDE}[ -]?){{1,3}})"
                       r"(?=\s*(?:$|[,.;:)]|(?:of|part|corner|edge|side|half|third|end|quarter|area|portion|row|"
                       r"rows|line|and|with|where|near|beside|next)\b))")
# Words that make a number in a statement count a part of a kind, not all of it.
_PART = re.compile(r"\b(?:of (?:the|them|these|those)|more|other|another|alone|row|rows|group|groups|side by side|"
                   r"each|some|part|half|at least|up to|about|around|nearly|almost|over)\b")
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
    judge_contradictions: float = 0.2


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


def _user_text(body: dict[str, Any]) -> str:
    """The text of the request's user messages: the prompt, and a retry's message after it (so an answer
    asked for again may differ, as a real model's does); without the instructions that open the first
    one when the server takes no system message (`llm/profile.py` gives them a text part of their own)."""
    messages = body.get("messages", [])
    system = any(m.get("role") == "system" for m in messages)
    texts: list[str] = []
    for message in messages:
        if message.get("role") != "user":
            continue
        parts = _texts(message)
        if not texts and not system and len(parts) > 1:
            parts = parts[1:]
        texts += parts
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


def _noted(text: str) -> list[tuple[int, str, str]]:
    """The global prompt's noted objects: (id, name, position) of lines "- [3] plane (top left; ...): ..."."""
    return [(int(m.group(1)), m.group(2).strip(), m.group(3).split(",")[0].strip()) for line in text.splitlines()
            if (m := _NOTE_LINE.match(line.strip()))]


def _mentions(text: str) -> str:
    """A sentence tying the first noted objects to their ids, as the global prompt asks: "[words](id)"."""
    noted = _noted(text)[:2]
    if not noted:
        return ""
    tied = " and ".join(f"[the {name} at the {where}]({i})" for i, name, where in noted)
    return f" Among them, {tied} {'are' if len(noted) > 1 else 'is'} easy to make out."


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
                       f"surfaces.{_mentions(text)} {ground}",
    }


def _dialogue(text: str, style: Style) -> dict[str, Any]:
    counts = _counts(text)
    kind = _scene_kind(counts)
    if style.tokens_per_object and counts:
        question, answer = _REALISTIC_OPENINGS[int(_fraction(text, "opening") * len(_REALISTIC_OPENINGS))]
        noun = counts[0][1] if counts[0][0] != 1 else plural(counts[0][1])
        turns = [{"question": question.format(noun=noun, kind=kind), "answer": answer.format(noun=noun, kind=kind)}]
    else:
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


def _wrong_count(statement: str, counts: list[tuple[int, str]]) -> str | None:
    """Why a statement's number for a labelled kind is wrong ("the labels give 14 small vehicles"), or None."""
    lowered = statement.lower()
    if _PART.search(lowered):
        return None
    words = re.findall(r"[a-z0-9-]+", lowered)
    for n, noun in counts:
        name = noun.lower().split()
        for i in range(len(words)):
            found = read_number(words, i)
            if found and words[found[2]:found[2] + len(name)] == name and not found[0] <= n <= found[1]:
                return f"the labels give {n} {noun}"
    return None


def _wrong_place(statement: str, where: str | None) -> str | None:
    """Why a statement about an object puts it on the wrong side of the image, or None."""
    if where is None:
        return None
    grid = where.split()
    place = {"row": grid[0] if len(grid) == 2 else "middle", "col": grid[-1]}
    placed = " ".join(m.group(1) for m in _LOCATION.finditer(_DIRECTION.sub(" ", statement.lower())))
    for word in re.findall(r"[a-z]+", placed):
        if word in _SIDE_WORDS:
            axis, side = _SIDE_WORDS[word]
            if place[axis] != side:
                return f"the object is at the {where} of the image"
    return None


def _judge(text: str, style: Style) -> dict[str, Any]:
    counts = _counts(text)
    head, _, listed = text.partition("Statements to judge")
    places = {m.group(1): m.group(2).strip() for line in head.splitlines() if (m := _PLACED.match(line.strip()))}
    statements = [(int(m.group(1)), m.group(2), m.group(3)) for line in listed.splitlines()
                  if (m := _STATEMENT.match(line.strip()))]
    seeded = None
    if statements and _fraction(text, "judge") < style.judge_contradictions:
        seeded = statements[int(_fraction(text, "which") * len(statements))][0]
    verdicts = []
    for number, about, statement in statements:
        reason = (_wrong_count(statement, counts) or _wrong_place(statement, places.get(about or ""))
                  or ("the image shows otherwise" if number == seeded else ""))
        if reason:
            verdicts.append({"id": number, "verdict": "contradicted", "reason": reason})
        elif _fraction(statement, "unseen") < 0.03:
            verdicts.append({"id": number, "verdict": "not_visible", "reason": ""})
        else:
            verdicts.append({"id": number, "verdict": "supported", "reason": ""})
    return {"verdicts": verdicts}


_STAGES = {"LocalResponse": _local, "GlobalResponse": _global, "DialogueResponse": _dialogue,
           "JudgeResponse": _judge}


def _slip(answer: dict[str, Any], schema_name: str) -> tuple[dict[str, Any], str | None]:
    """A realistic mistake in an answer: an object left out, talk of the marks, or a refusal."""
    if schema_name == "LocalResponse" and len(answer["objects"]) > 1:
        return {"objects": answer["objects"][:-1]}, None
    if schema_name == "LocalResponse" and answer["objects"]:
        note = answer["objects"][0]
        return {"objects": [{**note, "description": f"{note['description'][:-1]}, outlined by mark {note['id']}."}]}, None
    if schema_name == "GlobalResponse":
        return {**answer, "description": "According to the annotations, " + answer["description"]}, None
    if schema_name == "JudgeResponse" and answer["verdicts"]:
        return {"verdicts": answer["verdicts"][:-1]}, None
    return answer, "I'm sorry, I can't help with describing this image."


def completion_for(body: dict[str, Any], style: Style = Style()) -> dict[str, Any]:
    """The chat completion the mock returns for a request body."""
    schema_name = _schema_name(body)
    stage = _STAGES.get(schema_name)
    answer = stage(_user_text(body), style) if stage else {"text": "ok"}
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
