"""The build loop: source samples -> scenes -> the hierarchical prompter and template tasks -> records on disk.

Streaming and ordered: samples are read one at a time, at most a bounded number of scenes are in
flight, and records are written in scene order whatever order the answers arrive in, so output is
byte-identical between runs and memory does not grow with the dataset. What is asked of the model,
and in which order, is the prompter's business (`rsgpt4v.prompting.prompter`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
from PIL import Image
from tqdm import tqdm

from rsgpt4v import __version__
from rsgpt4v.builder.image_side import ImageSide, ReadyImage, ReadyWindow
from rsgpt4v.core.config import BuildConfig
from rsgpt4v.core.issue_codes import IssueCode
from rsgpt4v.core.report import (
    QC,
    BatchProgress,
    BatchUsage,
    Counts,
    EstimatedFrom,
    EstimateRow,
    Failures,
    Issues,
    JudgeReport,
    Prompts,
    ReportError,
    RunReport,
    ServerSection,
    Status,
    Usage,
)
from rsgpt4v.core.schema import Issue, Record, Sample, Scene
from rsgpt4v.imaging.images import ImageError, image_size, return_freed_images_to_the_os, stretch_warning
from rsgpt4v.imaging.pixel_budget import PixelBudget
from rsgpt4v.imaging.tiling import clip_to_image, make_scenes
from rsgpt4v.llm.batch import BatchQueue, BatchState, collect, submit
from rsgpt4v.llm.batch_files import write_request_files
from rsgpt4v.llm.cache import Cache
from rsgpt4v.llm.client import make_client
from rsgpt4v.llm.cost import PriceTable
from rsgpt4v.llm.doctor import diagnose, reasons
from rsgpt4v.llm.engine import Engine
from rsgpt4v.llm.estimate import (
    EstimatingEngine,
    SamplePlan,
    Tally,
    cost_table,
    extrapolate,
    snapshot,
    stratified_sample,
    tally_delta,
    weighted_tally,
)
from rsgpt4v.llm.refusals import AdaptiveProfile, adaptive
from rsgpt4v.llm.request import ChatRequest, readable
from rsgpt4v.prompting.answers import SceneAnswers
from rsgpt4v.prompting.marks import Mark
from rsgpt4v.prompting.prompter import HierarchicalPrompter
from rsgpt4v.prompting.templates import JUDGE, STAGES, PromptSet
from rsgpt4v.quality.qc import QualityChecker
from rsgpt4v.records.model import IMAGE_TOKEN
from rsgpt4v.records.writer import DatasetWriter, render
from rsgpt4v.sources import Source
from rsgpt4v.tasks.from_annotations import annotation_tasks
from rsgpt4v.tasks.from_model import model_tasks

log = logging.getLogger("rsgpt4v")

# Faults that are no record's own (a full disk, a failed allocation): they stop the build as before.
_NOT_RECORD_FAULTS = (OSError, MemoryError)
# A test hook, read here and nowhere else: the record with this id is damaged (its last answer
# emptied) before it is rendered, so the record contract refuses it as it would a real fault.
PLANT_BAD_RECORD = "RSGPT4V_PLANT_BAD_RECORD"


class RecordFailed(Exception):
    """A record that failed in a strict build (`output.strict`): the build stops, naming it."""


def _planted(record: Record, planted: str | None) -> Record:
    if record.id != planted:
        return record
    last = record.turns[-1].model_copy(update={"answer": ""})
    return record.model_copy(update={"turns": [*record.turns[:-1], last]})


@dataclass
class BuildOptions:
    out: Path
    backend: str = "openai"
    limit: int | None = None
    cache: Path | None = None
    refresh: bool = False
    prompts_dir: Path | None = None
    prices: Path | None = None
    estimate: bool = False
    shard: tuple[int, int] | None = None
    batch: bool = False
    batch_wait: bool = False
    batch_files: Path | None = None
    within: Path | None = None  # every write stays under this folder (default: out); a recipe's parts get its OUT
    sample_images: int | None = None  # estimate: images looked at (a stratified sample); None: every one
    progress: bool = True


class _Progress:
    def __init__(self, enabled: bool, judged: bool) -> None:
        names = ("images", "windows", *STAGES, *((JUDGE,) if judged else ()))
        self.bars = {n: tqdm(desc=f"{n:>9}", unit="", position=i, disable=not enabled, leave=True, dynamic_ncols=True)
                     for i, n in enumerate(names)}

    def tick(self, name: str) -> None:
        self.bars[name].update(1)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


class Builder:
    """One pass of a build over the source; a batch build takes one pass per stage."""

    def __init__(self, source: Source, cfg: BuildConfig, opts: BuildOptions, client: openai.AsyncOpenAI,
                 server: AdaptiveProfile | None = None) -> None:
        self.source = source
        self.cfg = cfg
        self.opts = opts
        self.model = cfg.model.name
        self.prompts = PromptSet.load(opts.prompts_dir)
        self.writer = DatasetWriter(opts.out, cfg.output.image_format, discard=opts.estimate, within=opts.within)
        self.cache = Cache(Path(":memory:") if opts.estimate else opts.cache or Path(opts.out) / "cache.sqlite")
        self.prices = PriceTable.load(opts.prices)
        self.client = client
        self.batch_state = BatchState(Path(opts.out) / "batch", cache=self.cache.path) if opts.batch else None
        engine_cls = EstimatingEngine if opts.estimate else Engine
        self.engine = engine_cls(client, self.cache, cfg.engine, self.model, self.prices, refresh=opts.refresh,
                                 batch=BatchQueue() if opts.batch else None,
                                 rejected=self.batch_state.rejected if self.batch_state else None,
                                 server=server or adaptive(cfg.model.profile), run=self._batch_run())
        if cfg.output.save_requests:
            self.engine.on_request = self._save_request
        # An estimate's answers are the mock's, usable by construction (re-asks are budgeted by rate):
        # checking them, or making records of them, would only cost time.
        self.qc = QualityChecker(cfg.qc, lambda: source.vocabulary, source.exhaustive_labels) \
            if cfg.qc.enabled and not opts.estimate else None
        self.counts = Counts()
        self.issues = Issues()
        self.failures = Failures()
        self.judge = _judge_report(cfg)
        self.seen = 0
        self._failed_windows: set[str] = set()
        self._planted = os.environ.get(PLANT_BAD_RECORD)
        self._stretch_said = False
        self._plan: SamplePlan | None = None
        self._per_image: dict[int, Tally] = {}
        self._root = Path(source.root).resolve()
        self._linked_splits: set[str] = set()
        self.progress = _Progress(opts.progress, self.judge is not None)
        self.prompter = HierarchicalPrompter(self.prompts, cfg, self.model, self.engine, self.qc,
                                             exhaustive_labels=source.exhaustive_labels,
                                             on_answer=self.progress.tick,
                                             on_marked=self._save_marked if cfg.local.save_marked else None)

    def _batch_run(self) -> str | None:
        """A batch build's run id: its passes are one run, so an answer that failed in an earlier pass is
        not given repair rounds by the next; a rerun after the build completed is a new run. Of a
        recipe, the whole build's (a source done early is rebuilt by the passes the others need)."""
        state = self.batch_state
        if state is None:
            return None
        previous = Path(self.opts.within or self.opts.out) / "manifest.json"
        try:
            finished = not previous.is_file() or RunReport.read(previous).finished
        except ReportError:
            finished = True
        if state.run is None or finished:
            state.run = uuid.uuid4().hex
            state.save()
        return state.run

    def _prepare(self, sample: Sample) -> tuple[list[Scene], tuple[int, int] | None, list[Issue]]:
        """The sample's scenes, from its image's header alone (the image side decodes it)."""
        try:
            size = image_size(sample.image_path, self.cfg.image.max_pixels)
        except ImageError as exc:
            return [], None, [Issue(kind="skip", code=exc.code, file=sample.rel_image, reason=str(exc))]
        width, height = size
        objects, issues = clip_to_image(sample, width, height)
        if not self.source.tiled:
            # Captions, questions and expressions speak of the whole image: a window would break them.
            return [Scene(sample=sample, window=(0, 0, width, height), objects=tuple(objects))], size, issues
        return make_scenes(sample, objects, width, height, self.cfg.tiling), size, issues

    def _save_marked(self, scene: Scene, chunk: Sequence[Mark], marked: Image.Image) -> None:
        """Keep the marked image a local request sent, for a person to check the marks."""
        first = min(m.id for m in chunk)
        # Named as a PNG source so the writer keeps it lossless: the marks read as the model saw them.
        self.writer.image(scene.image_name.replace("images/", "marked/", 1) + f"__from{first}", marked,
                          Path("marked.png"))

    def _save_request(self, request: ChatRequest, body: dict[str, Any], key: str) -> None:
        """Keep a request body, images shortened, for a person to read the prompts as rendered."""
        self.writer.request(request.label, request.stage, key, readable(body))

    async def _scene(self, ready: ReadyWindow) -> tuple[Scene, list[dict[str, Any]]]:
        scene = ready.scene
        answers = SceneAnswers() if ready.view is None else await self.prompter.answer(scene, ready.view)
        if answers.deferred:
            self.counts.windows_waiting_for_batch += 1
            return scene, []
        for failure in answers.failures:
            self.failures.add(scene.key, failure.stage, failure.kind, failure.reason)
            log.warning("%s: %s stage failed: %s", scene.key, failure.stage, failure.reason)
        left_out = self.failures.objects_left_out
        for reason, n in answers.left_out.items():
            left_out[reason] = left_out.get(reason, 0) + n
        if self.judge is not None and answers.judge is not None:
            j = answers.judge
            self.judge.add_window(j.first, j.second, j.re_asked, j.dropped, j.unjudged)
        if self.opts.estimate:
            return scene, []
        return scene, self._records(scene, ready.rel_image, answers, scene.width, scene.height)

    def _records(self, scene: Scene, rel_image: str, answers: SceneAnswers, width: int, height: int) -> list[dict]:
        """The window's records, built and rendered one task and one record at a time: whatever fails
        is dropped alone (`_isolate`)."""
        s = scene.sample
        t = self.cfg.tiling
        out = self.cfg.output
        meta = {"window": list(scene.window), "source_image": s.rel_image, "gsd": s.gsd,
                "tiling": {"window": t.window, "overlap": t.overlap, "min_visible": t.min_visible}}
        if self.judge is not None:
            meta["judge"] = None  # the judged records say their verdict; every record of the build has the key
        base = {"image": rel_image, "source": s.source, "split": s.split}
        llm_meta = {**meta, "model": self.model, "prompt_sha": self.prompt_sha}
        builds = model_tasks(scene, answers, self.prompts, self.cfg.seed, out.max_region_turns,
                             self.cfg.local.grounding_max_instances, {**base, "meta": llm_meta})
        builds += annotation_tasks(scene, self.prompts, self.cfg, self.source.label_tasks, self.source.vocabulary,
                                   {**base, "meta": meta})
        lines = []
        for task, make in builds:
            try:
                records = make()
            except Exception as exc:
                self._isolate(scene, task, exc)
                continue
            for record in records:
                try:
                    lines.append(render(_planted(record, self._planted), out.box_format, width, height, out.box_space))
                except Exception as exc:
                    self._isolate(scene, record.task, exc)
        return lines

    def _isolate(self, scene: Scene, task: str, exc: Exception) -> None:
        """A record (or a task's records) of `scene` that failed after the model answered: with
        `output.strict` the build stops on it; otherwise it is dropped with an issue naming image,
        window and task, and the build goes on. A fault that is not the record's own is raised again."""
        if isinstance(exc, _NOT_RECORD_FAULTS):
            raise exc
        x0, y0, x1, y1 = scene.window
        where = f"window {x0}_{y0}_{x1}_{y1}, task {task}"
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if self.cfg.output.strict:
            raise RecordFailed(f"{scene.sample.rel_image}: {where}: {message}") from exc
        log.debug("record failure of %s", scene.key, exc_info=exc)
        self.issues.add(Issue(kind="skip", code=IssueCode.RECORD_FAILED, file=scene.sample.rel_image,
                              reason=f"{where}: {message} ({type(exc).__name__}); dropped"))
        self._failed_windows.add(scene.key)
        self.counts.windows_failed = len(self._failed_windows)

    def _models(self) -> dict[str, str]:
        """The model each stage's requests go to."""
        models = dict.fromkeys(STAGES, self.model)
        if self.cfg.judge.model:
            models[JUDGE] = self.cfg.judge.model
        return models

    @property
    def prompt_sha(self) -> str:
        return "-".join(self.prompts.shas[s] for s in STAGES)

    async def run(self) -> RunReport:
        if self.batch_state is not None and self.batch_state.open_batches():
            await collect(self.client, self.batch_state, self.cache, self.prices, self.model)
            if self.batch_state.open_batches():
                self.progress.close()
                self.cache.close()
                return self._finish("batch_in_progress")
        inflight = max(2, self.cfg.engine.concurrency * 2)
        budget = PixelBudget(self.cfg.engine.max_pixels_in_flight)
        side = ImageSide(self.cfg, self.writer, budget, estimate=self.opts.estimate)
        pending: deque[asyncio.Task[tuple[Scene, list[dict[str, Any]]]]] = deque()
        status: Status = "complete"
        submitted = 0

        async def take_oldest() -> None:
            await self._take(await side.take(), pending, inflight, budget)

        self._plan = self._sample_plan() if self.opts.estimate else None
        try:
            for item in self.source:
                if not self._in_shard(item):
                    continue
                if isinstance(item, Issue):
                    self.issues.add(item)
                    continue
                if note := self._linked_out(item):
                    self.issues.add(note)
                item, note = _without_image_token(item)
                if note is not None:
                    self.issues.add(note)
                if self.opts.limit is not None and submitted >= self.opts.limit:
                    break
                self.seen += 1
                if self._plan is not None and self.seen - 1 not in self._plan.weights:
                    continue
                scenes, size, issues = await asyncio.to_thread(self._prepare, item)
                for issue in issues:
                    self.issues.add(issue)
                if size is None:
                    continue
                submitted += 1
                await side.submit(item, scenes, size, take_oldest)
                if self.opts.estimate:
                    await self._estimate_image(self.seen - 1, await side.take(), pending, inflight, budget)
                while side.full or side.ready:
                    await take_oldest()
            while len(side):
                await take_oldest()
            while pending:
                self._write(await pending.popleft())
            queue = self.engine.batch
            b = self.cfg.batch
            if self.opts.batch_files is not None:
                if write_request_files(queue, self.opts.batch_files, self.source.name, b.max_lines, b.max_bytes):
                    status = "requests_written"
            elif queue is not None and queue.lines:
                status = "batch_pending"
                await submit(self.client, self.batch_state, queue, b.max_lines, b.max_bytes)
        except BaseException:
            status = "stopped"
            for task in pending:
                task.cancel()
            # Taken back, so a window that failed the same way as the one that stopped the build is not
            # logged again as "never retrieved" after the build has said why it stopped.
            await asyncio.gather(*pending, return_exceptions=True)
            await self.engine.stop()
            raise
        finally:
            side.close(cancel=status == "stopped")
            self.progress.close()
            if status == "complete":
                self.writer.close()
            else:
                self.writer.abandon()
            self.cache.close()
            manifest = self._finish(status)
        return manifest

    async def _take(self, image: ReadyImage, pending: deque[asyncio.Task[tuple[Scene, list[dict[str, Any]]]]],
                    inflight: int, budget: PixelBudget) -> None:
        """Start the scenes of an image the image side finished, writing finished scenes in order
        while more than `inflight` are under way."""
        sample = image.sample
        if image.error is not None:
            if image.first:  # the parts of one image fail alike: said once
                self.issues.add(Issue(kind="skip", code=image.error.code, file=sample.rel_image,
                                      reason=str(image.error)))
            return
        if image.stretched is not None and not self._stretch_said:
            self._stretch_said = True
            self.issues.add(Issue(kind="warning", code=IssueCode.IMAGE_STRETCHED, file=sample.rel_image,
                                  reason=stretch_warning(image.stretched)))
        if image.first:
            self.counts.samples += 1
            self.progress.tick("images")
        self.counts.images_encoded += image.encoded
        for ready in image.windows:
            task = asyncio.create_task(self._scene(ready))
            task.add_done_callback(lambda _, n=ready.pixels: budget.release(n))
            pending.append(task)
            while len(pending) >= inflight:
                self._write(await pending.popleft())

    def _sample_plan(self) -> SamplePlan:
        """Which images an estimate looks at: a pass over the source reading image headers only."""
        sizes = []
        for item in self.source:
            if isinstance(item, Issue) or not self._in_shard(item):
                continue
            try:
                width, height = image_size(item.image_path, self.cfg.image.max_pixels)
            except ImageError:
                width = height = 0  # skipped again, with its issue, when the estimate looks at it
            sizes.append(width * height)
        return stratified_sample(sizes, self.opts.sample_images, self.cfg.seed)

    async def _estimate_image(self, index: int, image: ReadyImage,
                              pending: deque[asyncio.Task[tuple[Scene, list[dict[str, Any]]]]], inflight: int,
                              budget: PixelBudget) -> None:
        """Price one image alone (its scenes done before the next is started), keeping what it added
        to the tally for the extrapolation."""
        before = snapshot(self.engine.tally)
        await self._take(image, pending, inflight, budget)
        while pending:
            self._write(await pending.popleft())
        self._per_image[index] = tally_delta(self.engine.tally, before)

    def _finish(self, status: Status) -> RunReport:
        report = self.manifest(status)
        self.writer.manifest(report)
        return report

    def _linked_out(self, sample: Sample) -> Issue | None:
        """One warning per split for images that lie outside --root (reached through a symbolic link,
        or an adapter option naming another folder): followed, as datasets are often assembled that
        way, but said. Every adapter's samples pass here, so none can follow a link silently."""
        if sample.split in self._linked_splits or sample.image_path.is_relative_to(self._root):
            return None
        self._linked_splits.add(sample.split)
        return Issue(kind="warning", code=IssueCode.IMAGE_OUTSIDE_ROOT, file=sample.rel_image,
                     reason=f"image lies outside --root, at {sample.image_path}; followed (said once for all such "
                            f"images of split {sample.split})")

    def _in_shard(self, item: Sample | Issue) -> bool:
        """Deterministic partition by content, so shards agree whatever order files are listed in;
        an input issue belongs to the shard its file hashes to, so merged shards count it once."""
        if self.opts.shard is None:
            return True
        k, n = self.opts.shard
        name = item.where() if isinstance(item, Issue) else f"{item.split}/{item.image_id}"
        return int(hashlib.sha256(name.encode("utf-8")).hexdigest()[:12], 16) % n == k - 1

    def _write(self, done: tuple[Scene, list[dict[str, Any]]]) -> None:
        scene, lines = done
        self.counts.windows += 1
        self.progress.tick("windows")
        for line in lines:
            try:
                self.writer.write(line["split"], line)
            except Exception as exc:
                self._isolate(scene, line["task"], exc)
                continue
            self.counts.add_record(line["split"], line["task"])
            if self.judge is not None and line["meta"].get("judge"):
                self.judge.add_record(line["meta"]["judge"]["verdict"])

    def manifest(self, status: Status) -> RunReport:
        report = RunReport(
            status=status, rsgpt4v_version=__version__, source=self.source.name, root=str(self.source.root),
            backend=self.opts.backend, config=self.cfg.model_dump(mode="json"),
            server=ServerSection(profile=self.engine.server.profile.name, given=self.engine.server.given,
                                 settings=self.engine.server.profile.settings(),
                                 switched=list(self.engine.server.switches)),
            prompts=Prompts(folder=str(self.prompts.folder), sha=self.prompts.shas),
            counts=self.counts, issues=self.issues, failures=self.failures,
            qc=QC.model_validate({"rejected": self.qc.report() if self.qc else {}}), judge=self.judge,
            usage=Usage.of(self.engine.usage, self.prices.date,
                           all(self.prices.priced(m) for m in self._models().values())),
            shard=self.opts.shard, cards={self.source.name: self.source.card_facts()})
        if isinstance(self.engine, EstimatingEngine) and self._plan is not None:
            report.estimate, report.estimated_from = self._extrapolated(self._plan)
        if self.batch_state is not None:
            queued = self.engine.batch.lines if self.engine.batch else {}
            report.batch = BatchProgress(queued_this_pass=len(queued), passes_left=self.engine.passes_left,
                                         batches=self.batch_state.batches,
                                         rejected=len(self.batch_state.rejected),
                                         usage=BatchUsage(**self.batch_state.usage))
        return report


    def _extrapolated(self, plan: SamplePlan) -> tuple[list[EstimateRow], EstimatedFrom]:
        """The estimate's table for every image from those looked at, and what it was estimated from
        with the 95 % margins of its total dollars (tokens when the model is not priced)."""
        tally: Tally = weighted_tally(self._per_image, plan.weights)
        rows = [EstimateRow(**row) for row in cost_table(tally, self.prices, self._models())]
        per_image = {i: cost_table(t, self.prices, self._models())[-1] for i, t in self._per_image.items()}
        priced = bool(rows) and rows[-1].usd_live is not None
        _, usd_margin = extrapolate(plan, {i: r["usd_live"] or 0.0 for i, r in per_image.items()})
        _, token_margin = extrapolate(plan, {i: r["text_tokens"] + r["image_tokens"] + r["output_tokens"]
                                             for i, r in per_image.items()})
        basis = EstimatedFrom(images=plan.looked_at, of=sum(len(every) for every, _ in plan.strata),
                              strata=len(plan.strata), exact=plan.exact, seed=self.cfg.seed,
                              usd_live_margin=round(usd_margin, 4) if priced else None,
                              tokens_margin=round(token_margin))
        return rows, basis


def _judge_report(cfg: BuildConfig) -> JudgeReport | None:
    """The judge's section of the run report, or None without a judge; warns when the judge is the
    generating model (detectors favour their own outputs: AlignBench, 2025)."""
    if not cfg.judge.model:
        return None
    warning = None
    if cfg.judge.model == cfg.model.name:
        warning = (f"the judge model {cfg.judge.model} is the generating model; a model judging its own answers "
                   "favours them: choose another (judge.model, --judge)")
        log.warning(warning)
    return JudgeReport(model=cfg.judge.model, warning=warning)


def _without_image_token(sample: Sample) -> tuple[Sample, Issue | None]:
    """The sample without the texts of its dataset that hold `<image>`, and a warning counting them:
    the token is the build's to place (once, at the start of a record), and a trainer would put the
    image again wherever a caption or an answer carried it. Every adapter's samples pass here."""
    captions = tuple(c for c in sample.captions if IMAGE_TOKEN not in c)
    qa = tuple(q for q in sample.qa if IMAGE_TOKEN not in q.question and IMAGE_TOKEN not in q.answer)
    objects = tuple(o.model_copy(update={"description": None}) if o.description and IMAGE_TOKEN in o.description
                    else o for o in sample.objects)
    dropped = (len(sample.captions) - len(captions) + len(sample.qa) - len(qa)
               + sum(a is not b for a, b in zip(objects, sample.objects)))
    if not dropped:
        return sample, None
    return (sample.model_copy(update={"captions": captions, "qa": qa, "objects": objects}),
            Issue(kind="warning", code=IssueCode.IMAGE_TOKEN_IN_TEXT, file=sample.rel_image,
                  reason=f"{dropped} text(s) of this image hold {IMAGE_TOKEN}, the token trainers replace with the "
                         "image; dropped"))


async def _probe_once(client: openai.AsyncOpenAI, model: str, server: AdaptiveProfile, state: BatchState) -> None:
    """A batch meets the server only when it runs, where a refused feature would fail every window:
    with no profile given, a few tiny live requests find what the server accepts before the first
    pass, and the batch state keeps it for the later ones."""
    if state.server is None:
        probes, found = await diagnose(client, model)
        state.server = {"settings": found.settings(), "why": reasons(probes)}
        state.save()
    server.adopt(server.profile.model_copy(update=state.server["settings"]), state.server["why"])


def build(source: Source, cfg: BuildConfig, opts: BuildOptions) -> RunReport:
    """Run a build to the end (or to a fatal API error, which propagates); the manifest.

    In batch mode one pass submits what the cache lacks and returns; with `batch_wait` passes are
    repeated, polling between them, until the build completes.
    """
    return_freed_images_to_the_os()

    async def passes() -> RunReport:
        client = make_client(opts.backend, cfg.model.request_timeout_s, offline=opts.batch_files is not None)
        server = adaptive(cfg.model.profile)
        if not server.given and opts.batch and opts.batch_files is None and not opts.estimate:
            await _probe_once(client, cfg.model.name, server, BatchState(Path(opts.out) / "batch"))
        while True:
            report = await Builder(source, cfg, opts, client, server).run()
            if not (opts.batch_wait and report.status.startswith("batch_")):
                return report
            if report.status == "batch_in_progress":
                log.info("batches still in progress; next check in %.0f s", cfg.batch.poll_s)
                await asyncio.sleep(cfg.batch.poll_s)

    return asyncio.run(passes())
