"""The hierarchical prompter: one scene and its window image in, the scene's answers out.

local:    objects described in requests sized to fit their answers (see `local_plan`), each with
          the clean window and the same window marked; an answer cut at the token limit is split,
          and the sound notes of an answer that keeps failing its checks are kept
global:   the clean window + the notes + the counts -> caption and detailed description
dialogue: the clean window + all of the above -> a multi-turn reasoning conversation

Every request goes through the engine (cache, limits, retries); every answer through the checks of
its stage and QC. Nothing here knows about files or record formats.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Callable, Sequence
from typing import TypeVar

from PIL import Image

from rsgpt4v.core.config import BuildConfig
from rsgpt4v.core.responses import DialogueResponse, GlobalResponse, LocalResponse, ObjectNote
from rsgpt4v.core.schema import Problem, Scene
from rsgpt4v.imaging.images import data_url, encode, fit, side_by_side
from rsgpt4v.llm.engine import Engine, FailureKind
from rsgpt4v.llm.request import ChatRequest
from rsgpt4v.prompting.answers import SceneAnswers, StageFailure
from rsgpt4v.prompting.local_plan import plan_local, split
from rsgpt4v.prompting.marks import Mark, mark_chunk, marks_of
from rsgpt4v.prompting.stages import SentImage, StageRequests, no_image_token
from rsgpt4v.prompting.templates import STAGES, PromptSet
from rsgpt4v.quality.qc import QualityChecker, both

T = TypeVar("T")
Check = Callable[[T], Problem | None]
# Called with the scene, the marks of one local request and the marked image it sent.
MarkedHook = Callable[[Scene, Sequence[Mark], Image.Image], None]


class HierarchicalPrompter:
    """Runs the stages for one scene at a time; safe to share between concurrent scenes."""

    def __init__(self, prompts: PromptSet, cfg: BuildConfig, model: str, engine: Engine,
                 qc: QualityChecker | None, exhaustive_labels: bool,
                 on_answer: Callable[[str], None] = lambda stage: None, on_marked: MarkedHook | None = None) -> None:
        self.cfg = cfg
        self.engine = engine
        self.qc = qc
        self.requests = StageRequests(prompts, cfg, model, exhaustive_labels=exhaustive_labels)
        self.on_answer = on_answer
        self.on_marked = on_marked

    async def answer(self, scene: Scene, window: Image.Image) -> SceneAnswers:
        """The stages' answers for a scene whose window image (source pixels) is `window`."""
        clean_im, scale = fit(window, self.cfg.image.max_side)
        clean = await asyncio.to_thread(self._sent, clean_im, scale)
        answers = SceneAnswers()
        stages = self.cfg.stages
        if scene.objects and "local" in stages:
            await self._local(scene, clean_im, clean, answers)
        if "global" in stages and not answers.deferred:
            await self._global_and_dialogue(scene, clean, answers)
        return answers

    def _sent(self, im: Image.Image, scale: float) -> SentImage:
        fmt = self.cfg.image.encode
        return SentImage(url=data_url(encode(im, fmt, self.cfg.image.jpeg_quality), fmt),
                         width=im.width, height=im.height, scale=scale)

    def _marked(self, scene: Scene, clean: Image.Image, scale: float,
                chunk: Sequence[Mark]) -> tuple[SentImage, Callable[[], SentImage]]:
        """The marked window as sent, and (for a server that takes one image per request) the clean and
        the marked window side by side: drawn again on first use rather than kept, since most servers
        never ask for it."""
        marked, _, _ = mark_chunk(scene, clean, scale, chunk)
        if self.on_marked is not None:
            self.on_marked(scene, chunk, marked)

        def both() -> SentImage:
            return self._sent(side_by_side(clean, mark_chunk(scene, clean, scale, chunk)[0]), scale)

        return self._sent(marked, scale), functools.cache(both)

    def _checked(self, check: Check, qc: Check | None) -> Check:
        return both(no_image_token, check) if qc is None else both(no_image_token, check, qc)

    def _passes_after(self, stage: str, listed: int = 1) -> int:
        """The most batch passes that may follow a request's answer: a local request's splits (each
        half asked anew) and every later stage's attempts."""
        splits = math.ceil(math.log2(listed)) if stage == "local" and listed > 1 else 0
        later = [s for s in STAGES[STAGES.index(stage) + 1:] if s in self.cfg.stages]
        return self.cfg.engine.attempts * (splits + len(later))

    async def _ask(self, build: Callable[[str | None, int], ChatRequest], model: type[T], check: Check,
                   answers: SceneAnswers, stage: str) -> T | None:
        """One stage's answer, or None with the scene marked deferred (batch) or the failure noted."""
        answer = await self.engine.ask(build, model, check, after=self._passes_after(stage))
        self.on_answer(stage)
        if answer.deferred:
            answers.deferred = True
        elif answer.parsed is None:
            answers.failures.append(StageFailure(stage, answer.kind or FailureKind.UNKNOWN, answer.failure or ""))
        return answer.parsed

    async def _local(self, scene: Scene, clean_im: Image.Image, clean: SentImage, answers: SceneAnswers) -> None:
        marks = marks_of(scene.objects)
        plan = plan_local(marks, self.cfg)
        answers.left_out["summarised"] += len(plan.omitted)
        with_clean = clean if self.cfg.local.send_clean_image else None
        note_qc = self.qc.local(scene) if self.qc else None

        async def one(chunk: list[Mark]) -> None:
            marked, both_windows = await asyncio.to_thread(self._marked, scene, clean_im, clean.scale, chunk)
            check = self._checked(self.requests.check_local(chunk), note_qc)
            listed = {m.id for m in chunk}
            others = [m for m in marks if m.id not in listed]
            answer = await self.engine.ask(
                lambda fb, at: self.requests.local_request(scene, with_clean, marked, chunk, others, fb, at,
                                                           both_windows),
                LocalResponse, check, escalate=frozenset({FailureKind.LENGTH}),
                after=self._passes_after("local", len(chunk)))
            self.on_answer("local")
            if answer.deferred:
                answers.deferred = True
                return
            if answer.kind == FailureKind.LENGTH and len(chunk) > 1:
                await asyncio.gather(*(one(half) for half in split(chunk)))
                return
            if answer.kind == FailureKind.LENGTH:
                self.engine.record_failure("local", FailureKind.LENGTH)
            notes = answer.parsed.objects if answer.parsed is not None else self._sound_notes(answer.rejected, chunk,
                                                                                                 note_qc)
            if answer.parsed is None:
                answers.failures.append(StageFailure("local", answer.kind or FailureKind.UNKNOWN, answer.failure or ""))
            self._keep(notes, chunk, answers, answer.kind or "")

        await asyncio.gather(*(one(c) for c in plan.chunks))

    @staticmethod
    def _sound_notes(rejected: LocalResponse | None, chunk: Sequence[Mark],
                     note_qc: Check | None) -> list[ObjectNote]:
        """From an answer that failed its checks on the last attempt, the notes that pass on their own:
        a listed id, described once, with a text that passes QC and leaves the image token out."""
        if rejected is None:
            return []
        listed = {m.id for m in chunk}
        seen = [n.id for n in rejected.objects]
        alone = [LocalResponse(objects=[n]) for n in rejected.objects]
        return [one.objects[0] for one in alone
                if one.objects[0].id in listed and seen.count(one.objects[0].id) == 1
                and one.objects[0].description.strip() and no_image_token(one) is None
                and (note_qc is None or note_qc(one) is None)]

    def _keep(self, notes: Sequence[ObjectNote], chunk: Sequence[Mark], answers: SceneAnswers, reason: str) -> None:
        listed = {m.id for m in chunk}
        for note in notes:
            kept = [r for r in note.relations if r.target_id in listed and r.target_id != note.id]
            answers.notes[note.id] = note.model_copy(update={"relations": kept[: self.cfg.local.max_relations]})
        missing = len(listed - {n.id for n in notes})
        if missing:
            answers.left_out[reason or FailureKind.UNKNOWN] += missing

    async def _global_and_dialogue(self, scene: Scene, clean: SentImage, answers: SceneAnswers) -> None:
        r = self.requests
        check = self._checked(r.check_global, self.qc and self.qc.scene_text(scene))
        scene_text = await self._ask(lambda fb, at: r.global_request(scene, clean, answers.notes, fb, at),
                                     GlobalResponse, check, answers, "global")
        if scene_text is None:
            return
        answers.scene_text = scene_text
        if "dialogue" in self.cfg.stages:
            check = self._checked(r.check_dialogue, self.qc and self.qc.dialogue(scene))
            answers.dialogue = await self._ask(
                lambda fb, at: r.dialogue_request(scene, clean, answers.notes, scene_text, fb, at),
                DialogueResponse, check, answers, "dialogue")
