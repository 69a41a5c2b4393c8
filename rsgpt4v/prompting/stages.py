"""Messages and checks of the three stages and of the judge, from a scene and what earlier stages returned.

local:    the clean window and the same window with numbered marks + the listed objects -> notes per id
global:   the clean window + the notes + per-category counts -> caption and detailed description
dialogue: the clean window + all of the above -> a multi-turn reasoning conversation
judge:    the clean window + the counts + the answers' sentences -> a verdict per sentence (another model)

Which objects a local request lists is decided in `local_plan`; the order of the stages in `prompter`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from PIL import Image
from pydantic import BaseModel

from rsgpt4v.core.config import BuildConfig, ImageConfig
from rsgpt4v.core.responses import (
    DialogueResponse,
    GlobalResponse,
    JudgeResponse,
    LocalResponse,
    ObjectNote,
)
from rsgpt4v.core.schema import Obj, Problem, Scene
from rsgpt4v.imaging.images import data_url, encode
from rsgpt4v.language.mentions import plain
from rsgpt4v.language.naming import display
from rsgpt4v.language.words import grid_position
from rsgpt4v.llm.engine import FailureKind
from rsgpt4v.llm.profile import CANONICAL_TOKEN_PARAM
from rsgpt4v.llm.request import ChatRequest
from rsgpt4v.prompting.marks import Mark, marks_of
from rsgpt4v.prompting.templates import JUDGE, PromptSet
from rsgpt4v.quality.judge import Sentence
from rsgpt4v.records.model import IMAGE_TOKEN

# How the local request's images are introduced: the marked window alone, the clean and the marked
# window as two images, or (for a server that takes one image per request) side by side in one.
IMAGES_NOTE = {
    "marked": "The image shows the window with the listed objects marked.",
    "two": "Two images of the same window follow: first as it is, then with the listed objects marked. "
           "Read appearance from the first; use the second only to find which object has which id.",
    "side_by_side": "One image follows, holding the same window twice side by side: on the left as it is, on "
                    "the right with the listed objects marked. Read appearance from the left half; use the "
                    "right half only to find which object has which id. The window size and the boxes below "
                    "refer to one half.",
}
_NOT_DISCERNIBLE = ("not discernible", "not applicable", "not visible", "unknown", "unclear", "n/a")


class CheckKind(StrEnum):
    """What a stage's own answer check rejects (besides an empty text, `FailureKind.EMPTY`)."""

    IDS = "ids"
    TURNS = "turns"
    DUPLICATE_QUESTION = "duplicate_question"
    IMAGE_TOKEN = "image_token"
    VERDICTS = "verdicts"


def no_image_token(resp: BaseModel) -> Problem | None:
    """Every stage's answer: the record contract allows `<image>` once, where the build puts it, so a
    model text holding it is asked again (QC on or off) rather than stopping the build at render."""
    if IMAGE_TOKEN in resp.model_dump_json():
        return Problem(CheckKind.IMAGE_TOKEN, f"the answer contains {IMAGE_TOKEN}; leave it out")
    return None


def discernible(value: str) -> bool:
    """Whether a local note's attribute says something (not 'not discernible' or the like)."""
    v = value.strip().lower()
    return bool(v) and not any(v.startswith(p) for p in _NOT_DISCERNIBLE)


@dataclass(frozen=True)
class SentImage:
    """A window image as sent to the model: a data URL and the scale from source pixels."""

    url: str
    width: int
    height: int
    scale: float

    @classmethod
    def of(cls, im: Image.Image, scale: float, cfg: ImageConfig) -> SentImage:
        """`im` (already fitted to `cfg.max_side`, `scale` times the source) encoded as the config says."""
        return cls(url=data_url(encode(im, cfg.encode, cfg.jpeg_quality), cfg.encode), width=im.width,
                   height=im.height, scale=scale)


@dataclass(frozen=True)
class WindowView:
    """A window as the model stages get it from the image side: the clean image sent, and its pixels
    (fitted like it) for the local stage to draw marks on; None in an estimate, whose images are
    sized placeholders that nothing is drawn on."""

    clean: SentImage
    pixels: Image.Image | None


def position_words(scene: Scene, obj: Obj) -> str:
    """Where an object sits in the window, in a 3x3 grid: 'top left', 'centre', 'bottom centre'."""
    x0, y0, _, _ = scene.window
    return grid_position(((obj.box[0] + obj.box[2]) / 2 - x0) / scene.width,
                         ((obj.box[1] + obj.box[3]) / 2 - y0) / scene.height)


def _side_lengths(obj: Obj) -> tuple[float, float]:
    """Width and length of an oriented object: its polygon's first two edges when it is a quadrilateral."""
    poly = obj.polygon
    if len(poly) == 4:
        return math.dist(poly[0], poly[1]), math.dist(poly[1], poly[2])
    return obj.box[2] - obj.box[0], obj.box[3] - obj.box[1]


def _tally(objects: Sequence[Obj], source: str) -> str:
    """`3 small vehicles, 1 ship`: in the source's display names, as every prompt names categories."""
    counts: dict[str, int] = {}
    for o in objects:
        counts[o.category] = counts.get(o.category, 0) + 1
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(display(cat, source).counted(n) for cat, n in ordered)


def _context_text(scene: Scene) -> str:
    """The objects only partly inside the window: named so the model knows the fragments at the
    edges are real, and told they are not counted."""
    if not scene.context:
        return ""
    edges: dict[str, list[Obj]] = {}
    for obj in scene.context:
        edges.setdefault(_edge_of(scene, obj), []).append(obj)
    parts = [f"{_tally(objs, scene.sample.source)} at the {edge}" for edge, objs in sorted(edges.items())]
    return ("Cut off by the edge of the window, not counted and not to be described: "
            + "; ".join(parts) + ".")


def _edge_of(scene: Scene, obj: Obj) -> str:
    x0, y0, x1, y1 = scene.window
    b = obj.box
    gaps = {"left edge": b[0] - x0, "right edge": x1 - b[2], "top edge": b[1] - y0, "bottom edge": y1 - b[3]}
    return min(gaps, key=lambda k: (gaps[k], k))


def _counts_text(scene: Scene, exhaustive: bool) -> str:
    if not scene.sample.annotated:
        return "- unknown: this image has no annotations, so state no exact counts"
    if not exhaustive and scene.objects:
        # Grounding datasets label only the objects their expressions refer to: their tally is no count.
        return "- unknown: only some objects in this image are annotated, so state no exact counts"
    source = scene.sample.source
    lines = [f"- {display(cat, source).counted(n)}" for cat, n in scene.counts().items()] or ["- no annotated objects"]
    if scene.context:
        lines.append(f"(also cut off by the window edge and not counted: {_tally(scene.context, source)})")
    return "\n".join(lines)


def _hints_text(scene: Scene) -> str:
    s = scene.sample
    lines: list[str] = []
    if s.captions:
        lines.append("Reference captions written by people for this image:")
        lines += [f"- {c}" for c in s.captions]
    if s.qa:
        lines.append("Questions about this image with their correct answers:")
        lines += [f"- {qa.question} {qa.answer}" for qa in s.qa]
    if s.scene_class:
        lines.append(f"Scene class: {s.scene_class}")
    return "\n".join(lines)


class StageRequests:
    """Builds each stage's request and the check its answer must pass."""

    def __init__(self, prompts: PromptSet, cfg: BuildConfig, model: str, exhaustive_labels: bool = True) -> None:
        self.prompts = prompts
        self.cfg = cfg
        self.model = model
        self.exhaustive_labels = exhaustive_labels

    def _generation(self, stage: str) -> tuple[str, float, int]:
        """The model, temperature and output-token cap of a stage's requests: the judge's own, or the build's."""
        if stage == JUDGE:
            judge = self.cfg.judge
            return judge.model or self.model, judge.temperature, judge.max_output_tokens
        return self.model, self.cfg.model.temperature_for(stage), self.cfg.model.max_output_tokens.get(stage, 1000)

    def _request(self, stage: str, scene: Scene, user_text: str, images: Sequence[SentImage],
                 feedback: str | None, attempt: int, response_model: type) -> ChatRequest:
        content: list[dict] = [{"type": "text", "text": user_text}]
        content += [{"type": "image_url", "image_url": {"url": im.url, "detail": self.cfg.image.detail}}
                    for im in images]
        messages = [
            {"role": "system", "content": self.prompts.system(stage, f"{self.cfg.seed}/{scene.key}")},
            {"role": "user", "content": content},
        ]
        if feedback is not None:
            # A rerun gives a failed request another engine.attempts tries, numbered on from the last.
            per_round = self.cfg.engine.attempts
            last = math.ceil(attempt / per_round) * per_round
            retry = self.prompts.render(stage, "retry", attempt=attempt, max_attempts=last, reason=feedback)
            messages.append({"role": "user", "content": retry})
        model, temperature, max_tokens = self._generation(stage)
        params = {"temperature": temperature, CANONICAL_TOKEN_PARAM: max_tokens, "seed": self.cfg.seed}
        return ChatRequest(stage=stage, model=model, messages=messages, response_model=response_model,
                           params=params, label=scene.key)

    def _gsd_note(self, scene: Scene, image: SentImage) -> str:
        if scene.sample.gsd is None:
            return "Ground sample distance: unknown."
        return f"Ground sample distance: {scene.sample.gsd / image.scale:.2f} m per pixel."

    def object_entry(self, scene: Scene, mark: Mark, image: SentImage) -> dict:
        x0, y0, _, _ = scene.window
        b = mark.obj.box
        side = _side_lengths(mark.obj)
        entry: dict = {
            "id": mark.id,
            "category": display(mark.obj.category, scene.sample.source).singular,
            "box": [round((b[0] - x0) / scene.width, 3), round((b[1] - y0) / scene.height, 3),
                    round((b[2] - x0) / scene.width, 3), round((b[3] - y0) / scene.height, 3)],
            "size_px": [round(side[0] * image.scale), round(side[1] * image.scale)],
        }
        if scene.sample.gsd is not None:
            entry["size_m"] = [round(side[0] * scene.sample.gsd, 1), round(side[1] * scene.sample.gsd, 1)]
        entry["truncated"] = mark.obj.truncated
        return entry

    def local_request(self, scene: Scene, clean: SentImage | None, marked: SentImage, batch: Sequence[Mark],
                      omitted: Sequence[Mark], feedback: str | None, attempt: int,
                      side_by_side: Callable[[], SentImage] | None = None) -> ChatRequest:
        """The local request for `batch`; with `clean`, the unmarked window is sent first, so the
        model can look past the marks. Its one-image form (for a server that takes one image per
        request) sends both windows side by side in one image (`side_by_side`, when given and
        `local.one_image` asks for it), else the marked window alone."""
        images = [marked] if clean is None else [clean, marked]
        request = self._local(scene, images, marked, batch, omitted, feedback, attempt,
                              "marked" if clean is None else "two")
        if clean is None:
            return request
        if side_by_side is not None and self.cfg.local.one_image == "side_by_side":
            def one_image() -> ChatRequest:
                return self._local(scene, [side_by_side()], marked, batch, omitted, feedback, attempt, "side_by_side")
        else:
            def one_image() -> ChatRequest:
                return self._local(scene, [marked], marked, batch, omitted, feedback, attempt, "marked")
        return dataclasses.replace(request, one_image=one_image)

    def _local(self, scene: Scene, images: list[SentImage], marked: SentImage, batch: Sequence[Mark],
               omitted: Sequence[Mark], feedback: str | None, attempt: int, note: str) -> ChatRequest:
        object_list = "[\n" + ",\n".join(json.dumps(self.object_entry(scene, m, marked)) for m in batch) + "\n]"
        omitted_text = ""
        if omitted:
            omitted_text = (f"Also in the image but not listed here: "
                            f"{_tally([m.obj for m in omitted], scene.sample.source)}. Do not describe them individually.")
        text = self.prompts.render(
            "local", "user", image_width=marked.width, image_height=marked.height,
            gsd_note=self._gsd_note(scene, marked), n_total=len(scene.objects), n_listed=len(batch),
            object_list=object_list, omitted=omitted_text, context=_context_text(scene), hints=_hints_text(scene),
            images_note=IMAGES_NOTE[note])
        return self._request("local", scene, text, images, feedback, attempt, LocalResponse)

    @staticmethod
    def check_local(batch: Sequence[Mark]) -> Callable[[LocalResponse], Problem | None]:
        listed = {m.id for m in batch}

        def check(resp: LocalResponse) -> Problem | None:
            seen = [o.id for o in resp.objects]
            missing = sorted(listed - set(seen))
            extra = sorted(set(seen) - listed)
            twice = sorted({i for i in seen if seen.count(i) > 1})
            empty = sorted(o.id for o in resp.objects if not o.description.strip())
            problems = []
            if missing:
                problems.append(f"ids {', '.join(map(str, missing))} were listed but not described")
            if extra:
                problems.append(f"ids {', '.join(map(str, extra))} were not listed")
            if twice:
                problems.append(f"ids {', '.join(map(str, twice))} were described more than once")
            if empty:
                problems.append(f"ids {', '.join(map(str, empty))} have an empty description")
            return Problem(CheckKind.IDS, "; ".join(problems)) if problems else None

        return check

    def _objects_text(self, scene: Scene, notes: dict[int, ObjectNote], ids: bool = False) -> str:
        """One line per described object for the later stages: what it is, where, how it looks and
        what it stands next to, everything the local stage was asked for; with `ids`, each line opens
        with the object's id in brackets, for the global stage's mentions (`language.mentions`)."""
        marks = {m.id: m for m in marks_of(scene.objects)}

        def name(category: str) -> str:
            return display(category, scene.sample.source).singular

        lines = []
        for mark in marks.values():
            note = notes.get(mark.id)
            if note is None:
                continue
            where = position_words(scene, mark.obj)
            if mark.obj.truncated:
                where += ", cut off by the image edge"
            looks = "; ".join(v for v in (note.colour, note.orientation, note.state) if discernible(v))
            tag = f"[{mark.id}] " if ids else ""
            line = f"- {tag}{name(mark.obj.category)} ({where}{'; ' + looks if looks else ''}): {note.description}"
            near = [f"{r.relation} the {name(marks[r.target_id].obj.category)} at the "
                    f"{position_words(scene, marks[r.target_id].obj)}"
                    for r in note.relations if r.target_id in marks]
            if near:
                line += " It is " + "; ".join(near) + "."
            lines.append(line)
        return "\n".join(lines) or "- none described"

    def global_request(self, scene: Scene, image: SentImage, notes: dict[int, ObjectNote],
                       feedback: str | None, attempt: int) -> ChatRequest:
        text = self.prompts.render(
            "global", "user", image_width=image.width, image_height=image.height,
            gsd_note=self._gsd_note(scene, image), counts=_counts_text(scene, self.exhaustive_labels),
            objects=self._objects_text(scene, notes, ids=True), hints=_hints_text(scene))
        return self._request("global", scene, text, [image], feedback, attempt, GlobalResponse)

    @staticmethod
    def check_global(resp: GlobalResponse) -> Problem | None:
        if not resp.caption.strip():
            return Problem(FailureKind.EMPTY, "the caption is empty")
        if not resp.description.strip():
            return Problem(FailureKind.EMPTY, "the description is empty")
        return None

    def dialogue_request(self, scene: Scene, image: SentImage, notes: dict[int, ObjectNote],
                         scene_text: GlobalResponse, feedback: str | None, attempt: int) -> ChatRequest:
        d = self.cfg.dialogue
        text = self.prompts.render(
            "dialogue", "user", caption=scene_text.caption, description=plain(scene_text.description),
            counts=_counts_text(scene, self.exhaustive_labels), objects=self._objects_text(scene, notes),
            hints=_hints_text(scene), min_turns=d.min_turns, max_turns=d.max_turns)
        return self._request("dialogue", scene, text, [image] if d.include_image else [], feedback, attempt,
                             DialogueResponse)

    def check_dialogue(self, resp: DialogueResponse) -> Problem | None:
        d = self.cfg.dialogue
        if not d.min_turns <= len(resp.turns) <= d.max_turns:
            return Problem(CheckKind.TURNS, f"the conversation has {len(resp.turns)} turns; it must have "
                                    f"{d.min_turns} to {d.max_turns}")
        if any(not t.question.strip() or not t.answer.strip() for t in resp.turns):
            return Problem(FailureKind.EMPTY, "a question or an answer is empty")
        questions = [" ".join(t.question.lower().split()) for t in resp.turns]
        if len(set(questions)) < len(questions):
            return Problem(CheckKind.DUPLICATE_QUESTION, "the same question is asked twice")
        return None

    def judge_request(self, scene: Scene, image: SentImage, judged: Sequence[Sentence], feedback: str | None,
                      attempt: int) -> ChatRequest:
        """The judge's request: the clean window, the labels, the objects local sentences are about, the
        numbered sentences (already in their shuffled order)."""
        x0, y0, _, _ = scene.window
        about = sorted({s.about for s in judged if s.about is not None})
        objects = []
        for mark_id in about:
            obj = scene.objects[mark_id - 1]
            b = obj.box
            box = ", ".join(f"{v:.2f}" for v in ((b[0] - x0) / scene.width, (b[1] - y0) / scene.height,
                                                 (b[2] - x0) / scene.width, (b[3] - y0) / scene.height))
            objects.append(f"- [{mark_id}] {display(obj.category, scene.sample.source).singular}: box [{box}], "
                           f"{position_words(scene, obj)}")
        lines = [f"{s.number}. " + (f"(about object [{s.about}]) " if s.about is not None else "") + s.text
                 for s in judged]
        text = self.prompts.render(
            JUDGE, "user", image_width=image.width, image_height=image.height, gsd_note=self._gsd_note(scene, image),
            counts=self._judge_counts(scene), objects="\n".join(objects) or "- none", sentences="\n".join(lines))
        return self._request(JUDGE, scene, text, [image], feedback, attempt, JudgeResponse)

    def _judge_counts(self, scene: Scene) -> str:
        """The labels as the judge reads them: counts where they are exhaustive, else a word that there are none."""
        if scene.sample.annotated and self.exhaustive_labels:
            return _counts_text(scene, True)
        if scene.sample.annotated and scene.objects:
            return "- unknown: only some objects of this image are labelled, so judge numbers from the image alone"
        return "- unknown: the objects of this image are not labelled, so judge numbers from the image alone"

    @staticmethod
    def check_judge(judged: Sequence[Sentence]) -> Callable[[JudgeResponse], Problem | None]:
        """A usable verdict list: one verdict for every sentence number, a reason for each contradiction."""
        numbers = {s.number for s in judged}

        def check(resp: JudgeResponse) -> Problem | None:
            seen = [v.id for v in resp.verdicts]
            unexplained = sorted(v.id for v in resp.verdicts if v.verdict == "contradicted" and not v.reason.strip())
            problems = [f"{what} {', '.join(map(str, ids))}" for what, ids in (
                ("no verdict for statements", sorted(numbers - set(seen))),
                ("no statements numbered", sorted(set(seen) - numbers)),
                ("more than one verdict for statements", sorted({i for i in seen if seen.count(i) > 1})),
                ("no reason for the contradicted statements", unexplained)) if ids]
            return Problem(CheckKind.VERDICTS, "; ".join(problems)) if problems else None

        return check
