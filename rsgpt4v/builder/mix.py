"""The build a recipe describes: every source of the mix into one dataset, one manifest, one cache.

A layer around the single-source build. First every source is listed and each image fingerprinted
(`rsgpt4v.builder.identity`) into the plan of samples on disk (`rsgpt4v.builder.sample_plan`): clusters of the same
picture across sources and splits go into the manifest and the leakage policy decides which
training samples no source may use. Then each source is built as usual through `Selection`, a view
of its adapter that passes only the samples the plan chose (splits, seeded fraction / max_images,
leakage), into OUT/parts/<source>/ with its own stages,
the shared cache and the shared OUT/images/. Last, the parts' split files are interleaved into
OUT/<split>.jsonl in a seeded order (each next record drawn from a source with probability
proportional to what that source has left, so every prefix of the file is a fair mix), per-task
caps and weights applied to training splits, and one manifest with a section per source written.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

from tqdm import tqdm

from rsgpt4v import __version__
from rsgpt4v.builder.identity import Fingerprint, ImageRef, is_training, leakage_report
from rsgpt4v.builder.pipeline import BuildOptions, build
from rsgpt4v.builder.recipe import Recipe, RecipeError, RecipeSource
from rsgpt4v.builder.sample_plan import SamplePlan
from rsgpt4v.core.card_facts import CardFacts
from rsgpt4v.core.config import BuildConfig
from rsgpt4v.core.files import Line, jsonl_writer, located, read_jsonl
from rsgpt4v.core.ownership import PARTS, claim
from rsgpt4v.core.report import (
    BatchProgress,
    Counts,
    EstimatedFrom,
    EstimateRow,
    Failures,
    Issues,
    JudgeReport,
    MixRow,
    RecipeInfo,
    ReportError,
    RunReport,
    ServerSection,
    SourceIssues,
    SourceSection,
    SourceUsage,
    Usage,
    total_cards,
    total_status,
)
from rsgpt4v.core.schema import Issue, Sample
from rsgpt4v.imaging.images import ImageError
from rsgpt4v.sources import Source, SourceError, get_source, parse_options

log = logging.getLogger("rsgpt4v")


@dataclass
class Planned:
    """One recipe entry resolved: its adapter class and options over its root, or why it is left out.

    The adapter is opened anew for each pass over it and let go after, so the mix holds one source's
    annotations at a time, not all of them."""

    entry: RecipeSource
    root: Path
    adapter: type[Source] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    missing: str | None = None

    def open(self) -> Source:
        assert self.adapter is not None, "a missing source has no adapter"
        return self.adapter(self.root, split=None, **self.options)


class Selection(Source):
    """An adapter seen through the recipe: only the samples the plan chose pass; the others are
    counted by reason. Issues pass unchanged, so the build reports them as for a single source."""

    def __init__(self, inner: Source, chosen: SamplePlan) -> None:
        self.inner = inner
        self.root = inner.root
        self.split = inner.split
        self.chosen = chosen
        self.left_out: Counter[str] = Counter()
        for attr in Source.__annotations__:  # name, task_kind, tiled...: what the adapter class says
            if attr != "vocabulary":  # read live: an adapter may settle it while reading
                setattr(self, attr, getattr(inner, attr))

    @property
    def vocabulary(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.inner.vocabulary

    def card_facts(self) -> CardFacts:
        return self.inner.card_facts()

    def __getattr__(self, name: str) -> Any:
        """Any other attribute the pipeline reads is the adapter's."""
        return getattr(self.inner, name)

    def release(self) -> None:
        """Let the adapter go once its build is done: what stays is `left_out`."""
        self.inner = None  # type: ignore[assignment]

    def __iter__(self) -> Iterator[Sample | Issue]:
        for item in self.inner:
            if isinstance(item, Sample):
                key = (item.source, item.split, item.image_id)
                unread = self.chosen.unreadable(key)
                if unread is not None:
                    # Named here, once, whether or not the plan would have built it: it was never compared.
                    yield Issue(kind="skip", code=unread.code, file=item.rel_image, reason=str(unread))
                    continue
                reason = self.chosen.left_out(key)
                if reason is not None:
                    self.left_out[reason] += 1
                    continue
            yield item


def _option_pairs(options: dict[str, Any]) -> list[str]:
    pairs = []
    for key, value in options.items():
        if isinstance(value, dict):
            value = ",".join(f"{k}:{v}" for k, v in value.items())
        elif isinstance(value, bool):
            value = str(value).lower()
        pairs.append(f"{key}={value}")
    return pairs


def plan(recipe: Recipe, data: Path | None, skip_missing: bool) -> list[Planned]:
    """Every entry checked and its adapter opened; RecipeError naming the recipe line of the first
    problem (an entry whose root is missing is kept as missing with `skip_missing`)."""
    first_line: dict[str, int] = {}
    planned = []
    for entry in recipe.sources:
        where = recipe.where(entry.line)
        try:
            cls = get_source(entry.source)
        except SourceError as exc:
            raise RecipeError(f"{where}: {exc}") from None
        if entry.source in first_line:
            raise RecipeError(f"{where}: source {entry.source!r} is listed twice (first at line "
                              f"{first_line[entry.source]}): both would write the record ids {entry.source}/...")
        first_line[entry.source] = entry.line
        root = Path(entry.root)
        if not root.is_absolute():
            if data is None:
                raise RecipeError(f"{where}: root {entry.root!r} is relative: give --data DIR")
            root = data / root
        if not root.is_dir():
            if skip_missing:
                planned.append(Planned(entry, root, missing=f"root {root} is not a folder"))
                continue
            raise RecipeError(f"{where}: {entry.source}: root {root} is not a folder "
                              "(--skip-missing builds the other sources)")
        resolved = Planned(entry, root, cls)
        try:
            resolved.options = parse_options(cls, _option_pairs(entry.options))
            resolved.open()  # an adapter checks its root and options when opened: fail before anything is built
        except (SourceError, TypeError) as exc:
            raise RecipeError(f"{where}: {entry.source}: {exc}") from None
        planned.append(resolved)
    return planned


def _draw(seed: int, key: tuple[str, str, str]) -> float:
    """A seeded uniform number in [0, 1) for one sample: the same sample draws the same number."""
    digest = hashlib.sha256(f"{seed}/{'/'.join(key)}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass
class Choice:
    """What the planning pass decided: the plan of every sample (which each source builds) and the
    manifest's leakage section."""

    plan: SamplePlan
    leakage: dict[str, Any]


def choose(recipe: Recipe, planned: list[Planned], store_path: Path, max_pixels: int, progress: bool) -> Choice:
    """Fingerprint every image of every source into the plan at `store_path` (opened as the build opens
    them, within `max_pixels`), cluster them, apply the leakage policy, then the splits, fraction and
    max_images of each entry; RecipeError when the policy is `fail` and a training image of one source
    is an evaluation image of another. The caller closes the returned plan."""
    plan = SamplePlan(store_path, max_pixels)
    try:
        samples = (s for p in planned if p.adapter is not None for s in p.open() if isinstance(s, Sample))
        for sample in tqdm(samples, desc="  identity", unit="img", disable=not progress, dynamic_ncols=True):
            ref = ImageRef(sample.source, sample.split, sample.image_id, sample.rel_image)
            try:
                fp: Fingerprint | ImageError = plan.prints.get(sample.image_path)
            except ImageError as exc:
                fp = exc  # no identity to compare: the build names it (see Selection)
            plan.add(ref, fp, _draw(recipe.seed, ref.key))
        plan.listed()
        for p in planned:
            if p.adapter is not None and p.entry.splits is not None:
                present = plan.splits(p.entry.source)
                if absent := [s for s in p.entry.splits if s not in present]:
                    raise RecipeError(f"{recipe.where(p.entry.line)}: {p.entry.source}: splits: {absent[0]!r} is not a "
                                      f"split of its data under {p.root} (its splits: {', '.join(present) or 'none'})")
        found = plan.clusters(recipe.near_duplicate_bits)
        section, dropped = leakage_report(found, recipe.leakage)
        listed, hashed = plan.counts()
        section["images"] = hashed
        section["unreadable_images"] = listed - hashed  # each is named among its source's input issues
        if recipe.leakage == "fail":
            leaks = [c for c in found if c.cross_source_leak]
            if leaks:
                a = next(r for r in leaks[0].members if is_training(r.split))
                b = next(r for r in leaks[0].members if not is_training(r.split) and r.source != a.source)
                raise RecipeError(f"{recipe.path}: leakage: fail: {len(leaks)} pictures are training images of one "
                                  f"source and evaluation images of another (first: {a.source} {a.split} {a.path} = "
                                  f"{b.source} {b.split} {b.path}); see `leakage: report`")
        plan.drop(sorted(dropped))
        for p in planned:
            plan.decide(p.entry.source, p.entry.splits, p.entry.fraction, p.entry.max_images)
    except BaseException:
        plan.close()
        raise
    return Choice(plan, section)


def _link_images(out: Path, part: Path) -> None:
    """OUT/parts/<source>/images -> OUT/images, so every part writes its images where the records say."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    part.mkdir(parents=True, exist_ok=True)
    link = part / "images"
    if not link.exists() and not link.is_symlink():
        link.symlink_to(Path("..") / ".." / "images", target_is_directory=True)


@dataclass
class _Lane:
    """One source's records of one split while interleaving."""

    entry: RecipeSource
    path: Path
    file: BinaryIO
    lines: Iterator[Line]
    left: int

    def next_record(self) -> dict[str, Any]:
        line, record, problem = next(self.lines)
        self.left -= 1
        if self.left == 0:
            self.file.close()
        if problem is not None:
            raise RecipeError(f"{located(self.path, line, problem)}: a record this build wrote cannot be read; "
                              "rerun the same command to write the part again")
        return record


def _copies(weight: float, seed: int, record_id: str) -> int:
    whole = int(weight)
    return whole + (1 if _draw(seed, ("weight", record_id, "")) < weight - whole else 0)


def interleave(recipe: Recipe, out: Path, manifests: dict[str, RunReport]) -> dict[tuple[str, str, str], int]:
    """Write OUT/<split>.jsonl from the parts in the seeded order; caps and weights on training splits.
    A cap keeps a seeded uniform choice of the task's records (selection sampling: the next record is
    kept with probability still-wanted / still-to-come), not the first ones in file order.
    Counts of (source, split, task) written, and of capped records under task `capped:<task>`."""
    entries = {e.source: e for e in recipe.sources if e.source in manifests}
    splits = sorted({s for m in manifests.values() for s in m.counts.by_split})
    claim(out, [f"{split}.jsonl" for split in splits])  # so a rerun after a kill in here knows them for ours
    written: Counter[tuple[str, str, str]] = Counter()
    for split in splits:
        lanes = []
        for name, m in manifests.items():
            n = sum(m.counts.by_split.get(split, {}).values())
            if n:
                path = out / PARTS / name / f"{split}.jsonl"
                file = open(path, "rb")
                lanes.append(_Lane(entries[name], path, file, read_jsonl(file), n))
        rng = random.Random(f"{recipe.seed}/{split}")
        caps_rng = random.Random(f"{recipe.seed}/{split}/caps")
        training = is_training(split)
        wanted = {(name, task): cap for name in manifests for task, cap in entries[name].caps.items()} if training else {}
        to_come = Counter({(name, task): n for name, m in manifests.items()
                           for task, n in m.counts.by_split.get(split, {}).items()})
        partial = out / f"{split}.jsonl.partial"
        with jsonl_writer(partial) as dest:
            while lanes:
                pick = rng.randrange(sum(lane.left for lane in lanes))
                lane = lanes[-1]
                for candidate in lanes:
                    if pick < candidate.left:
                        lane = candidate
                        break
                    pick -= candidate.left
                record = lane.next_record()
                if lane.left == 0:
                    lanes.remove(lane)
                name, task = lane.entry.source, record["task"]
                to_come[(name, task)] -= 1
                if (name, task) in wanted:
                    if caps_rng.random() * (to_come[(name, task)] + 1) >= wanted[(name, task)]:
                        written[(name, split, f"capped:{task}")] += 1
                        continue
                    wanted[(name, task)] -= 1
                copies = _copies(lane.entry.weight, recipe.seed, record["id"]) if training else 1
                for k in range(copies):
                    dest.write(record if k == 0 else {**record, "id": f"{record['id']}#{k + 1}"})
                written[(name, split, task)] += copies
        os.replace(partial, out / f"{split}.jsonl")
        for name in manifests:
            (out / PARTS / name / f"{split}.jsonl").unlink(missing_ok=True)
    return written


def unified_manifest(recipe: Recipe, data: Path | None, planned: list[Planned], choice: Choice | None,
                     parts: dict[str, tuple[RunReport, Selection | None]], written: dict[tuple[str, str, str], int],
                     cfg: BuildConfig, opts: BuildOptions, stopped: bool = False) -> RunReport:
    """One manifest for the whole mix: totals as a single build writes them, a section per source with
    its targets beside what it wrote, the mix table, and the leakage section. A `stopped` build (an
    interrupt, a crash) says so, with what its parts had done; a source it did not reach is `stopped`
    with that reason, and no leakage section when it stopped while planning."""
    reports = {name: m for name, (m, _) in parts.items()}
    counts = Counts.total(m.counts for m in reports.values())
    mix: dict[str, dict[str, MixRow]] = {}
    for (name, split, task), n in sorted(written.items()):
        if not task.startswith("capped:"):
            counts.add_record(split, task, n)
    sources: dict[str, SourceSection] = {}
    for p in planned:
        name = p.entry.source
        targets = p.entry.model_dump(exclude={"line"})
        targets.pop("source")
        section = {"line": p.entry.line, "root": str(p.root), "targets": targets}
        if p.missing is not None:
            sources[name] = SourceSection(**section, status="missing", reason=p.missing)
            continue
        if name not in parts:
            sources[name] = SourceSection(**section, status="stopped", reason="the build stopped before this source")
            continue
        m, view = parts[name]
        mine = {k: v for k, v in written.items() if k[0] == name}
        tasks = sorted({t.removeprefix("capped:") for (_, _, t) in mine} | set(p.entry.caps))
        mix[name] = {}
        for task in tasks:
            mix[name][task] = MixRow(
                records=sum(n for (_, _, t), n in mine.items() if t == task),
                train=sum(n for (_, s, t), n in mine.items() if t == task and is_training(s)),
                cap=p.entry.caps.get(task),
                capped=sum(n for (_, _, t), n in mine.items() if t == f"capped:{task}"))
        sources[name] = SourceSection(
            **section, status=m.status, samples=m.counts.samples, windows=m.counts.windows,
            records_built=m.counts.records,
            records_written=sum(n for (_, _, t), n in mine.items() if not t.startswith("capped:")),
            left_out=dict(sorted(view.left_out.items())) if view is not None else None,
            dropped_for_leakage=choice.leakage["dropped_from_train"].get(name, 0) if choice is not None else None,
            issues=SourceIssues(skipped=m.issues.skipped, warnings=m.issues.warnings), failures=m.failures.count,
            usage=SourceUsage(api_calls=m.usage.api_calls, cache_hits=m.usage.cache_hits, cost_usd=m.usage.cost_usd))
    first = next(iter(reports.values()), None)
    report = RunReport(
        status="stopped" if stopped else total_status(m.status for m in reports.values()),
        rsgpt4v_version=__version__,
        source=f"recipe:{Path(recipe.path).stem}", root=str(data) if data is not None else None,
        backend=opts.backend, config=cfg.model_dump(mode="json"),
        server=ServerSection.total([m.server for m in reports.values() if m.server is not None]),
        prompts=first.prompts if first else None,
        recipe=RecipeInfo(path=recipe.path, seed=recipe.seed, leakage=recipe.leakage,
                          near_duplicate_bits=recipe.near_duplicate_bits),
        sources=sources, mix=mix, leakage=choice.leakage if choice is not None else None, counts=counts,
        cards=total_cards(reports.values()),
        issues=Issues.total({name: m.issues for name, m in reports.items()}),
        failures=Failures.total(m.failures for m in reports.values()),
        usage=Usage.total(m.usage for m in reports.values()), shard=opts.shard,
        judge=JudgeReport.total(m.judge for m in reports.values() if m.judge is not None),
        batch=BatchProgress.total([m.batch for m in reports.values() if m.batch is not None]))
    if opts.estimate and reports:
        report.estimate = EstimateRow.total(m.estimate or [] for m in reports.values())
        report.estimated_from = EstimatedFrom.total(m.estimated_from for m in reports.values() if m.estimated_from)
    return report


def build_recipe(recipe: Recipe, data: Path | None, configs: dict[str, BuildConfig], opts: BuildOptions,
                 skip_missing: bool = False) -> RunReport:
    """Run the whole mix (`configs` holds each source's build config; key "" the base one); the manifest.

    Resumable like a single build: finished answers come from the shared cache, so a rerun after a
    crash, a batch pass or a `batch import` continues where the last one stopped.
    """
    out = Path(opts.out)
    planned = plan(recipe, data, skip_missing)
    for p in planned:
        if p.missing is not None:
            log.warning("%s: %s: %s; skipped (--skip-missing)", recipe.where(p.entry.line), p.entry.source, p.missing)
    cache = opts.cache or out / "cache.sqlite"
    choice: Choice | None = None
    parts: dict[str, tuple[RunReport, Selection | None]] = {}
    written: dict[tuple[str, str, str], int] = {}
    building: str | None = None
    try:
        choice = choose(recipe, planned, out / "identity.sqlite", configs[""].image.max_pixels, opts.progress)
        try:
            for p in planned:
                if p.adapter is None:
                    continue
                building = p.entry.source
                part = out / PARTS / building
                if not opts.estimate:
                    _link_images(out, part)
                view = Selection(p.open(), choice.plan)
                log.info("building %s (%d images chosen)", building, choice.plan.chosen(building))
                parts[building] = build(view, configs[building], replace(opts, out=part, cache=cache, within=out)), view
                view.release()
                building = None
        finally:
            choice.plan.close()
        if not opts.estimate and parts and total_status(m.status for m, _ in parts.values()) == "complete":
            written = interleave(recipe, out, {name: m for name, (m, _) in parts.items()})
            for p in planned:
                tasks = {t.removeprefix("capped:") for (name, _, t) in written if name == p.entry.source}
                for task in sorted(set(p.entry.caps) - tasks):
                    log.warning("%s: %s: caps: no %r record was built (its tasks: %s); the cap does nothing",
                                recipe.where(p.entry.line), p.entry.source, task, ", ".join(sorted(tasks)) or "none")
    except BaseException:
        if not opts.estimate:
            # As a single-source build does: the manifest says the build stopped and what it had done.
            if building is not None and (stopped := _part_report(out / PARTS / building)) is not None:
                parts[building] = stopped, None
            unified_manifest(recipe, data, planned, choice, parts, {}, configs[""], opts, stopped=True).write(
                out / "manifest.json")
        raise
    manifest = unified_manifest(recipe, data, planned, choice, parts, written, configs[""], opts)
    if not opts.estimate:
        manifest.write(out / "manifest.json")
    return manifest


def _part_report(part: Path) -> RunReport | None:
    """The manifest a part's build wrote as it stopped; None when there is none of this run (a part
    stopped before its build began leaves an earlier, finished one)."""
    try:
        report = RunReport.read(part / "manifest.json")
    except ReportError:
        return None
    return report if report.status != "complete" else None
