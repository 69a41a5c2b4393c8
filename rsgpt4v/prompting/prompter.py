"""The hierarchical prompter: one scene and its window image in, the scene's answers out.

local:    objects described in requests sized to fit their answers (see `local_plan`), each with
          the clean window and the same window marked; an answer cut at the token limit is split,
          and the sound notes of an answer that keeps failing its checks are kept
global:   the clean window + the notes + the counts -> caption and detailed description
dialogue: the clean window + all of the above -> a multi-turn reasoning conversation
judge:    (with `judge.model`) the clean window + every sentence of the answers above -> verdicts; a
          contradicted answer goes back to its stage once with the reasons, and is dropped if the
          judge contradicts it again (`quality.judge` reads the verdicts)

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
from rsgpt4v.core.responses import DialogueResponse, GlobalResponse, JudgeResponse, LocalResponse, ObjectNote
from rsgpt4v.core.schema import Problem, Scene
from rsgpt4v.imaging.images import SIDE_BY_SIDE_GAP, data_url, png_header, side_by_side
from rsgpt4v.llm.engine import Engine, FailureKind
from rsgpt4v.llm.request import ChatRequest
from rsgpt4v.prompting.answers import SceneAnswers, StageFailure
from rsgpt4v.prompting.local_plan import plan_local, split
from rsgpt4v.prompting.marks import Mark, mark_chunk, marks_of
from rsgpt4v.prompting.stages import SentImage, StageRequests, WindowView, no_image_token
from rsgpt4v.prompting.templates import JUDGE, STAGES, PromptSet
from rsgpt4v.quality.judge import DIALOGUE, GLOBAL, JudgeOutcome, Round, Sentence, Unit, feedback, judged_sentences
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

    async def answer(self, scene: Scene, view: WindowView) -> SceneAnswers:
        """The stages' answers for a scene whose window the image side made into `view`."""
        answers = SceneAnswers()
        stages = self.cfg.stages
        if scene.objects and "local" in stages:
            await self._local(scene, view, answers)
        if "global" in stages and not answers.deferred:
            await self._global_and_dialogue(scene, view.clean, answers)
        if self.cfg.judge.model and not answers.deferred:
            await self._judged(scene, view, answers)
        return answers

    def _marked(self, scene: Scene, view: WindowView, chunk: Sequence[Mark]) -> SentImage:
        """The clean image with one request's marks, encoded as the clean one was; in an estimate (no
        pixels) the clean image's placeholder, which has the same size."""
        if view.pixels is None:
            return view.clean
        marked, _, _ = mark_chunk(scene, view.pixels, view.clean.scale, chunk)
        if self.on_marked is not None:
            self.on_marked(scene, chunk, marked)
        return SentImage.of(marked, view.clean.scale, self.cfg.image)

    def _side_by_side(self, scene: Scene, view: WindowView, chunk: Sequence[Mark]) -> Callable[[], SentImage]:
        """For a server that takes one image per request: the clean and the marked window side by side in
        one image, drawn again on first use rather than kept, since most servers never ask for it (in an
        estimate, a placeholder of its size)."""
        def draw() -> SentImage:
            clean = view.clean
            if view.pixels is None:
                width = 2 * clean.width + SIDE_BY_SIDE_GAP
                return SentImage(url=data_url(png_header(width, clean.height), "png"), width=width,
                                 height=clean.height, scale=clean.scale)
            marked, _, _ = mark_chunk(scene, view.pixels, clean.scale, chunk)
            return SentImage.of(side_by_side(view.pixels, marked, SIDE_BY_SIDE_GAP), clean.scale, self.cfg.image)

        return functools.cache(draw)

    def _checked(self, check: Check, qc: Check | None) -> Check:
        return both(no_image_token, check) if qc is None else both(no_image_token, check, qc)

    def _steps(self) -> list[str]:
        """The order a scene's requests may come in, one batch pass each at most: the stages, then with a
        judge its verdicts, the contradicted answers asked again (`revise:` local, global, dialogue) and
        the verdicts on those."""
        stages = [s for s in STAGES if s in self.cfg.stages]
        if not self.cfg.judge.model:
            return stages
        return [*stages, JUDGE, *(f"revise:{s}" for s in stages), f"revise:{JUDGE}"]

    def _passes_after(self, step: str, listed: int = 1) -> int:
        """The most batch passes that may follow a request's answer: a local request's splits (each
        half asked anew) and every later step's attempts."""
        steps = self._steps()
        splits = math.ceil(math.log2(listed)) if step == "local" and listed > 1 else 0
        return self.cfg.engine.attempts * (splits + len(steps) - steps.index(step) - 1)

    async def _ask(self, build: Callable[[str | None, int], ChatRequest], model: type[T], check: Check,
                   answers: SceneAnswers, stage: str, step: str | None = None) -> T | None:
        """One stage's answer, or None with the scene marked deferred (batch) or the failure noted;
        `step` says where in `_steps` the request comes (default: the stage's first ask)."""
        answer = await self.engine.ask(build, model, check, after=self._passes_after(step or stage))
        self.on_answer(stage)
        if answer.deferred:
            answers.deferred = True
        elif answer.parsed is None:
            answers.failures.append(StageFailure(stage, answer.kind or FailureKind.UNKNOWN, answer.failure or ""))
        return answer.parsed

    async def _local(self, scene: Scene, view: WindowView, answers: SceneAnswers) -> None:
        marks = marks_of(scene.objects)
        plan = plan_local(marks, self.cfg)
        answers.left_out["summarised"] += len(plan.omitted)
        with_clean = view.clean if self.cfg.local.send_clean_image else None
        note_qc = self.qc.local(scene) if self.qc else None

        async def one(chunk: list[Mark]) -> None:
            marked = await asyncio.to_thread(self._marked, scene, view, chunk)
            both_windows = self._side_by_side(scene, view, chunk)
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
            answers.notes[note.id] = self._within(note, listed)
            answers.chunks[note.id] = list(chunk)
        missing = len(listed - {n.id for n in notes})
        if missing:
            answers.left_out[reason or FailureKind.UNKNOWN] += missing

    def _within(self, note: ObjectNote, listed: set[int]) -> ObjectNote:
        """The note with only its relations to other objects of its own request, as many as allowed."""
        kept = [r for r in note.relations if r.target_id in listed and r.target_id != note.id]
        return note.model_copy(update={"relations": kept[: self.cfg.local.max_relations]})

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

    # ---- the judge -------------------------------------------------------------------------------

    async def _judged(self, scene: Scene, view: WindowView, answers: SceneAnswers) -> None:
        """The judge's verdicts on every answer of the window; contradicted answers go back once."""
        clean = view.clean
        outcome = JudgeOutcome(str(self.cfg.judge.model))
        first = await self._verdicts(scene, clean, answers, None)
        if first is None:
            return
        judged, round_ = first
        if not judged:
            return
        answers.judge = outcome
        units = {s.unit for s in judged}
        if round_ is None:
            outcome.unjudged += 1
            outcome.settle(units, None)
            return
        outcome.first.update(round_.tally)
        wrong = sorted(round_.contradicted)
        outcome.settle(units - set(wrong), round_)
        for unit in wrong:
            outcome.sent_back(unit, round_)
        revised = await self._send_back(scene, view, answers, wrong, round_)
        if answers.deferred:
            return
        for unit in sorted(set(wrong) - revised):
            self._drop(answers, unit)
            outcome.drop(unit)
        second = await self._verdicts(scene, clean, answers, revised) if revised else None
        if second is None:
            return
        _, again = second
        if again is None:
            outcome.unjudged += 1
            outcome.settle(revised, None)
            return
        outcome.second.update(again.tally)
        for unit in sorted(set(again.contradicted)):
            self._drop(answers, unit)
            outcome.drop(unit)
        outcome.settle(revised - set(again.contradicted), again)

    async def _verdicts(self, scene: Scene, clean: SentImage, answers: SceneAnswers,
                        only: set[Unit] | None) -> tuple[list[Sentence], Round | None] | None:
        """The judge's reading of the answers' sentences (of `only` those units); None when deferred."""
        r = self.requests
        judged = judged_sentences(answers.notes, answers.scene_text, answers.dialogue,
                                  f"{self.cfg.seed}/{scene.key}/judge", only)
        if not judged:
            return judged, None
        reply = await self._ask(lambda fb, at: r.judge_request(scene, clean, judged, fb, at), JudgeResponse,
                                r.check_judge(judged), answers, JUDGE, JUDGE if only is None else f"revise:{JUDGE}")
        if answers.deferred:
            return None
        return judged, None if reply is None else Round.read(judged, reply)

    async def _send_back(self, scene: Scene, view: WindowView, answers: SceneAnswers, wrong: Sequence[Unit],
                         round_: Round) -> set[Unit]:
        """Each contradicted answer asked again of its stage, told what was wrong; the units answered anew.
        Local requests first, then global, then dialogue, each built from what the one before left."""
        r = self.requests
        clean = view.clean
        revised: set[Unit] = set()
        by_chunk: dict[tuple[int, ...], list[Unit]] = {}
        for unit in (u for u in wrong if u.stage == "local"):
            by_chunk.setdefault(tuple(m.id for m in answers.chunks[unit.key]), []).append(unit)

        async def local(units: list[Unit]) -> None:
            chunk = answers.chunks[units[0].key]
            told = feedback(round_, units)
            marked = await asyncio.to_thread(self._marked, scene, view, chunk)
            listed = {m.id for m in chunk}
            others = [m for m in marks_of(scene.objects) if m.id not in listed]
            with_clean = view.clean if self.cfg.local.send_clean_image else None
            check = self._checked(r.check_local(chunk), self.qc.local(scene) if self.qc else None)
            both_windows = self._side_by_side(scene, view, chunk)
            reply = await self._ask(
                lambda fb, at: r.local_request(scene, with_clean, marked, chunk, others, fb or told, at,
                                               both_windows),
                LocalResponse, check, answers, "local", "revise:local")
            new = {n.id: n for n in reply.objects} if reply is not None else {}
            for unit in units:
                if unit.key in new:
                    answers.notes[unit.key] = self._within(new[unit.key], listed)
                    revised.add(unit)

        await asyncio.gather(*(local(units) for units in by_chunk.values()))
        if GLOBAL in wrong and not answers.deferred:
            told = feedback(round_, [GLOBAL])
            check = self._checked(r.check_global, self.qc and self.qc.scene_text(scene))
            reply = await self._ask(lambda fb, at: r.global_request(scene, clean, answers.notes, fb or told, at),
                                    GlobalResponse, check, answers, "global", "revise:global")
            if reply is not None:
                answers.scene_text = reply
                revised.add(GLOBAL)
        scene_text = answers.scene_text
        if DIALOGUE in wrong and scene_text is not None and not answers.deferred:
            told = feedback(round_, [DIALOGUE])
            check = self._checked(r.check_dialogue, self.qc and self.qc.dialogue(scene))
            reply = await self._ask(
                lambda fb, at: r.dialogue_request(scene, clean, answers.notes, scene_text, fb or told, at),
                DialogueResponse, check, answers, "dialogue", "revise:dialogue")
            if reply is not None:
                answers.dialogue = reply
                revised.add(DIALOGUE)
        return revised

    @staticmethod
    def _drop(answers: SceneAnswers, unit: Unit) -> None:
        if unit.stage == "local":
            answers.notes.pop(unit.key, None)
        elif unit == GLOBAL:
            answers.scene_text = None
        else:
            answers.dialogue = None
