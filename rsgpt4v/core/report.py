"""The run report: what a build, a recipe build or a merge did, written as OUT/manifest.json and read
back by the same model (`RunReport.read`), so the writer and every reader (the CLI's summaries,
`stats`, `merge`, the recipe's mix) agree on each key by construction.

The build fills the report as it goes (`add_issue`, `add_record`, `add_failure`, the engine's
`StageUsage` counters); summing the reports of several parts (a recipe's sources, merged shards) is
this module's job too (`Issues.total`, `Usage.total`, ...), so there is one way to add them up.
Sections that only some runs have (an estimate, a shard, batch progress, a recipe's mix, a merge's
inputs) are None and left out of the file.
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer, model_serializer

from rsgpt4v import __version__
from rsgpt4v.core.card_facts import CardFacts
from rsgpt4v.core.files import json_detail, located, unreadable, write_atomic
from rsgpt4v.core.problems import validation_problem
from rsgpt4v.core.schema import Issue

log = logging.getLogger("rsgpt4v")

Status = Literal["complete", "stopped", "batch_pending", "batch_in_progress", "requests_written"]
# The status of several parts together: the one that leaves the most to do.
_UNFINISHED: tuple[Status, ...] = ("stopped", "batch_in_progress", "batch_pending", "requests_written")

_LOGGED_ISSUES = 50
_LISTED_ISSUES = 10_000


class ReportError(Exception):
    """A manifest that cannot be read as a run report: `file:line: reason`, line when known."""

    def __init__(self, path: Path, line: int | None, reason: str) -> None:
        super().__init__(located(path, line, reason))
        self.path, self.line, self.reason = path, line, reason


class _Sparse(BaseModel):
    """A model whose absent (None) keys are left out of the file, but for those in `_null_kept`,
    whose null says something ("no root", "not priced")."""

    _null_kept: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _without_none(self, handler: Any) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None or k in self._null_kept}


class _Section(BaseModel):
    # A key the model does not know is a typo in the writer or a manifest of another version: said, not dropped.
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _sum(counters: Iterable[dict[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for c in counters:
        total.update(c)
    return dict(sorted(total.items()))


class Counts(_Section, _Sparse):
    samples: int = 0
    windows: int = 0
    windows_waiting_for_batch: int = 0
    windows_failed: int = Field(default=0, description="windows that lost a record to a record_failed issue")
    images_encoded: int = Field(default=0, description="window image files encoded (those found current are not)")
    records: int = 0
    by_task: dict[str, int] = Field(default_factory=dict)
    by_split: dict[str, dict[str, int]] = Field(default_factory=dict)
    duplicates_skipped: int | None = Field(default=None, description="merge: records whose id came earlier")
    bad_lines: int | None = Field(default=None, description="merge: lines that could not be read")

    def add_record(self, split: str, task: str, n: int = 1) -> None:
        self.records += n
        self.by_task[task] = self.by_task.get(task, 0) + n
        tasks = self.by_split.setdefault(split, {})
        tasks[task] = tasks.get(task, 0) + n

    @classmethod
    def total(cls, parts: Iterable[Counts]) -> Counts:
        """Samples and windows of every part; the records are counted again by whoever writes them."""
        parts = list(parts)
        return cls(samples=sum(p.samples for p in parts), windows=sum(p.windows for p in parts),
                   windows_waiting_for_batch=sum(p.windows_waiting_for_batch for p in parts),
                   windows_failed=sum(p.windows_failed for p in parts),
                   images_encoded=sum(p.images_encoded for p in parts))

    @property
    def failed_share(self) -> float:
        """The share of windows that lost a record (0 for a build of no windows)."""
        return self.windows_failed / self.windows if self.windows else 0.0


class ListedIssue(Issue, _Sparse):
    """An input issue as the manifest lists it; `source` names the recipe source it came from."""

    source: str | None = None


class Issues(_Section):
    """Input issues: counted by kind and reason code, the first `_LISTED_ISSUES` listed."""

    skipped: int = 0
    warnings: int = 0
    by_reason: dict[str, int] = Field(default_factory=dict)
    listed: list[ListedIssue] = Field(default_factory=list, alias="list")

    def add(self, issue: Issue) -> None:
        if issue.kind == "skip":
            self.skipped += 1
        else:
            self.warnings += 1
        key = f"{issue.kind}: {issue.code}"
        self.by_reason[key] = self.by_reason.get(key, 0) + 1
        if len(self.listed) < _LISTED_ISSUES:
            self.listed.append(ListedIssue(**issue.model_dump()))
        if len(self.listed) <= _LOGGED_ISSUES:
            log.warning("%s %s", "skipped" if issue.kind == "skip" else "warning", issue)
        elif len(self.listed) == _LOGGED_ISSUES + 1:
            log.warning("more input issues follow; manifest.json counts them all and lists the first %d",
                        _LISTED_ISSUES)

    @classmethod
    def total(cls, parts: dict[str | None, Issues]) -> Issues:
        """The issues of several parts; named parts (a recipe's sources) prefix their reasons and
        mark their listed issues with their name."""
        by_reason = _sum({f"{name}: {k}" if name else k: n for k, n in p.by_reason.items()} for name, p in parts.items())
        listed = [i if name is None else i.model_copy(update={"source": name})
                  for name, p in parts.items() for i in p.listed]
        return cls(skipped=sum(p.skipped for p in parts.values()), warnings=sum(p.warnings for p in parts.values()),
                   by_reason=by_reason, listed=listed)


class Failure(_Section):
    """A stage of one window that ended without a usable answer: `kind` as `usage.by_stage[stage].failures`
    counts it, `reason` the message."""

    scene: str
    stage: str
    kind: str
    reason: str


class Failures(_Section):
    count: int = 0
    listed: list[Failure] = Field(default_factory=list, alias="list")
    objects_left_out: dict[str, int] = Field(default_factory=dict)

    def add(self, scene: str, stage: str, kind: str, reason: str) -> None:
        self.count += 1
        self.listed.append(Failure(scene=scene, stage=stage, kind=kind, reason=reason))

    @classmethod
    def total(cls, parts: Iterable[Failures]) -> Failures:
        parts = list(parts)
        return cls(count=sum(p.count for p in parts), listed=[f for p in parts for f in p.listed],
                   objects_left_out=_sum(p.objects_left_out for p in parts))


class StageUsage(_Section):
    """One stage's requests: the engine counts into it as it goes."""

    api_calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0
    retry_reasons: dict[str, int] = Field(default_factory=Counter)
    cost_usd: float = 0.0
    failures: dict[str, int] = Field(default_factory=Counter)

    @field_serializer("cost_usd")
    def _rounded(self, value: float) -> float:
        return round(value, 6)

    @classmethod
    def total(cls, parts: Iterable[StageUsage]) -> StageUsage:
        parts = list(parts)
        numbers = ("api_calls", "cache_hits", "prompt_tokens", "completion_tokens", "retries", "cost_usd")
        return cls(**{k: sum(getattr(p, k) for p in parts) for k in numbers},
                   retry_reasons=_sum(p.retry_reasons for p in parts), failures=_sum(p.failures for p in parts))


class Usage(_Section):
    """What the API was asked, by stage and in total, and what it cost at the dated price table."""

    by_stage: dict[str, StageUsage] = Field(default_factory=dict)
    api_calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    prices_date: str | None = None
    priced: bool | None = None

    @field_serializer("cost_usd")
    def _rounded(self, value: float) -> float:
        return round(value, 6)

    @classmethod
    def of(cls, by_stage: dict[str, StageUsage], prices_date: str | None, priced: bool | None) -> Usage:
        rows = list(by_stage.values())
        return cls(by_stage=dict(sorted(by_stage.items())), prices_date=prices_date, priced=priced,
                   **{k: sum(getattr(u, k) for u in rows)
                      for k in ("api_calls", "cache_hits", "prompt_tokens", "completion_tokens")},
                   cost_usd=sum(round(u.cost_usd, 6) for u in rows))

    @classmethod
    def total(cls, parts: Iterable[Usage]) -> Usage:
        parts = list(parts)
        stages = sorted({s for p in parts for s in p.by_stage})
        by_stage = {s: StageUsage.total(p.by_stage[s] for p in parts if s in p.by_stage) for s in stages}
        first = parts[0] if parts else cls()
        return cls.of(by_stage, first.prices_date, first.priced)


class Rejection(_Section):
    count: int
    example: str


class QC(_Section):
    rejected: dict[str, Rejection] = Field(default_factory=dict)

    @classmethod
    def total(cls, parts: Iterable[QC]) -> QC:
        """Rejections of every part, each kind with the first part's example."""
        rejected: dict[str, Rejection] = {}
        for part in parts:
            for kind, r in part.rejected.items():
                seen = rejected.get(kind)
                rejected[kind] = r if seen is None else Rejection(count=seen.count + r.count, example=seen.example)
        return cls(rejected=dict(sorted(rejected.items())))


class JudgeReport(_Section, _Sparse):
    """The judge stage: its model, its verdicts on the sentences, the answers it sent back to their
    stage and dropped, and the records written by verdict (their `meta.judge.verdict`)."""

    model: str
    windows: int = 0
    unjudged: int = Field(default=0, description="judge requests without a usable answer; their answers are kept")
    verdicts: dict[str, int] = Field(default_factory=dict, description="sentence verdicts of the first requests")
    second_verdicts: dict[str, int] = Field(default_factory=dict,
                                            description="sentence verdicts of the answers sent back, judged again")
    sent_back: dict[str, int] = Field(default_factory=dict, description="answers sent back to their stage, by stage")
    dropped: dict[str, int] = Field(default_factory=dict, description="answers contradicted twice (or not answered "
                                                                      "again), by stage")
    records: dict[str, int] = Field(default_factory=dict, description="records written, by verdict")
    warning: str | None = None

    def add_window(self, first: dict[str, int], second: dict[str, int], sent_back: dict[str, int],
                   dropped: dict[str, int], unjudged: int) -> None:
        self.windows += 1
        self.unjudged += unjudged
        for mine, theirs in ((self.verdicts, first), (self.second_verdicts, second), (self.sent_back, sent_back),
                             (self.dropped, dropped)):
            mine.update(_sum([mine, theirs]))

    def add_record(self, verdict: str) -> None:
        self.records[verdict] = self.records.get(verdict, 0) + 1

    def summary(self) -> str:
        """One line for a person: what the judge said and did."""
        def listed(counts: dict[str, int]) -> str:
            return ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())) or "none"

        return (f"judge {self.model}: {self.windows:,} windows, sentences {listed(self.verdicts)}; answers sent back "
                f"{listed(self.sent_back)}, dropped {listed(self.dropped)}; records {listed(self.records)}"
                + (f"; {self.unjudged:,} judge requests unanswered" if self.unjudged else ""))

    @classmethod
    def total(cls, parts: Iterable[JudgeReport]) -> JudgeReport | None:
        """The judge sections of several parts added up (the first part's model and warning); None without any."""
        parts = list(parts)
        if not parts:
            return None
        return cls(model=parts[0].model, warning=parts[0].warning, windows=sum(p.windows for p in parts),
                   unjudged=sum(p.unjudged for p in parts),
                   **{k: _sum(getattr(p, k) for p in parts)
                      for k in ("verdicts", "second_verdicts", "sent_back", "dropped", "records")})


class EstimateRow(_Section):
    """One stage's (or the total's) projected requests, tokens and dollars (None: model not priced)."""

    stage: str
    requests: int
    reasks: int
    text_tokens: int
    image_tokens: int
    output_tokens: int
    usd_live: float | None
    usd_batch: float | None

    @classmethod
    def total(cls, parts: Iterable[list[EstimateRow]]) -> list[EstimateRow]:
        rows: dict[str, list[EstimateRow]] = {}
        for part in parts:
            for row in part:
                rows.setdefault(row.stage, []).append(row)

        def money(values: list[float | None]) -> float | None:
            return None if any(v is None for v in values) else round(sum(values), 4)  # type: ignore[arg-type]

        order = ["local", "global", "dialogue", "judge", "total"]
        return [cls(stage=s, **{k: sum(getattr(r, k) for r in rows[s])
                                for k in ("requests", "reasks", "text_tokens", "image_tokens", "output_tokens")},
                    usd_live=money([r.usd_live for r in rows[s]]), usd_batch=money([r.usd_batch for r in rows[s]]))
                for s in order if s in rows]


class EstimatedFrom(_Section, _Sparse):
    """The images an estimate looked at, of how many, and the 95 % margins of its totals that
    sampling implies (0 when it looked at every image)."""

    images: int
    of: int
    strata: int | None = None
    exact: bool | None = None
    seed: int | None = None
    usd_live_margin: float | None = None
    tokens_margin: int | None = None

    @classmethod
    def total(cls, parts: Iterable[EstimatedFrom]) -> EstimatedFrom:
        """Several sources' estimates together: independent samples, so their margins add in quadrature."""
        parts = list(parts)
        usd = [p.usd_live_margin for p in parts]
        return cls(images=sum(p.images for p in parts), of=sum(p.of for p in parts),
                   exact=all(p.exact is not False for p in parts),
                   usd_live_margin=None if not parts or None in usd else round(math.sqrt(sum(u * u for u in usd)), 4),
                   tokens_margin=round(math.sqrt(sum((p.tokens_margin or 0) ** 2 for p in parts))))


class BatchUsage(_Section):
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


class BatchProgress(_Section):
    """A Batch API build's progress: what this pass queued, the batches and what they cost."""

    queued_this_pass: int
    passes_left: int = Field(default=0, description="the most passes of requests still to come, this one's "
                                                    "included: later stages, retries, splits")
    batches: list[dict[str, Any]]
    rejected: int
    usage: BatchUsage

    @classmethod
    def total(cls, parts: list[BatchProgress]) -> BatchProgress | None:
        """Every part's batches (a recipe's sources each keep their own); None when no part used batches."""
        if not parts:
            return None
        return cls(queued_this_pass=sum(p.queued_this_pass for p in parts),
                   passes_left=max(p.passes_left for p in parts), batches=[b for p in parts for b in p.batches],
                   rejected=sum(p.rejected for p in parts),
                   usage=BatchUsage(**{k: sum(getattr(p.usage, k) for p in parts) for k in BatchUsage.model_fields}))


class BackendSwitch(_Section):
    """A request feature the server refused, switched off for the rest of the run."""

    feature: str
    setting: str
    before: Any
    after: Any
    because: str = Field(description="the server's refusal: status and message")


class ServerSection(_Section):
    """How requests were shaped for the server: the backend profile, given or found out (`auto`:
    none given, OpenAI's settings until the server refused one), and what its refusals switched off."""

    profile: str
    given: bool
    settings: dict[str, Any] = Field(description="the settings in force at the end of the run")
    switched: list[BackendSwitch] = Field(default_factory=list)

    @classmethod
    def total(cls, parts: list[ServerSection]) -> ServerSection | None:
        """A recipe's sources share one server: the first part's profile, every switch once, the
        settings of the part that switched most."""
        if not parts:
            return None
        seen: dict[tuple[str, str], BackendSwitch] = {}
        for part in parts:
            for switch in part.switched:
                seen.setdefault((switch.setting, str(switch.after)), switch)
        last = max(parts, key=lambda p: len(p.switched))
        return cls(profile=parts[0].profile, given=parts[0].given, settings=last.settings,
                   switched=list(seen.values()))


class Prompts(_Section):
    folder: str
    sha: dict[str, str]


class RecipeInfo(_Section):
    path: str
    seed: int
    leakage: str
    near_duplicate_bits: int


class SourceIssues(_Section):
    skipped: int
    warnings: int


class SourceUsage(_Section):
    api_calls: int
    cache_hits: int
    cost_usd: float


class SourceSection(_Section, _Sparse):
    """A recipe source's targets beside what it built and wrote; a missing source says why."""

    line: int | None
    root: str
    targets: dict[str, Any]
    status: Status | Literal["missing"]
    reason: str | None = None
    samples: int | None = None
    windows: int | None = None
    records_built: int | None = None
    records_written: int | None = None
    left_out: dict[str, int] | None = None
    dropped_for_leakage: int | None = None
    issues: SourceIssues | None = None
    failures: int | None = None
    usage: SourceUsage | None = None

    _null_kept = frozenset({"line"})

    @classmethod
    def total(cls, parts: list[SourceSection]) -> SourceSection:
        """One source over shards of the same recipe: what each built and wrote added up; the targets
        and the leakage drops, decided over the whole recipe by every shard alike, as the first says."""
        first = parts[0]
        built = [p for p in parts if p.status != "missing"]
        if not built:
            return first

        def added(name: str) -> int:
            return sum(getattr(p, name) or 0 for p in built)

        return first.model_copy(update={
            "status": total_status(p.status for p in built),  # type: ignore[misc]
            "samples": added("samples"), "windows": added("windows"), "records_built": added("records_built"),
            "records_written": added("records_written"), "failures": added("failures"),
            "left_out": _sum(p.left_out or {} for p in built),
            "issues": SourceIssues(skipped=sum(p.issues.skipped for p in built if p.issues),
                                   warnings=sum(p.issues.warnings for p in built if p.issues)),
            "usage": SourceUsage(**{k: sum(getattr(p.usage, k) for p in built if p.usage)
                                    for k in ("api_calls", "cache_hits", "cost_usd")})})


class MixRow(_Section):
    """One source's records of one task: all splits, training splits, the cap, and how many it held back."""

    records: int
    train: int
    cap: int | None
    capped: int

    @classmethod
    def total(cls, parts: list[MixRow]) -> MixRow:
        return cls(records=sum(p.records for p in parts), train=sum(p.train for p in parts), cap=parts[0].cap,
                   capped=sum(p.capped for p in parts))


class LeakageMember(_Section):
    """One image of a cluster: the source, its split and id, and its file relative to the source's root."""

    source: str
    split: str
    image_id: str
    path: str


class LeakageCluster(_Section):
    """Images that are the same picture: `exact` (one digest) or `near` (perceptual hashes close)."""

    match: Literal["exact", "near"]
    kinds: list[str]
    members: list[LeakageMember]


class Leakage(_Section):
    """A recipe's clusters of the same picture across sources and splits, and what its policy dropped."""

    policy: str
    clusters: int
    by_kind: dict[str, int]
    dropped_from_train: dict[str, int]
    listed: list[LeakageCluster] = Field(alias="list")
    images: int
    unreadable_images: int


class RunReport(_Section, _Sparse):
    """OUT/manifest.json."""

    status: Status
    rsgpt4v_version: str
    source: str
    root: str | None
    backend: str
    server: ServerSection | None = None
    config: dict[str, Any] = Field(description="the whole build configuration; the model is config.model.name, "
                                               "recorded once")
    prompts: Prompts | None
    counts: Counts = Field(default_factory=Counts)
    issues: Issues = Field(default_factory=Issues)
    failures: Failures = Field(default_factory=Failures)
    qc: QC | None = None
    judge: JudgeReport | None = None
    usage: Usage = Field(default_factory=Usage)
    estimate: list[EstimateRow] | None = None
    estimated_from: EstimatedFrom | None = None
    shard: tuple[int, int] | None = None
    batch: BatchProgress | None = None
    recipe: RecipeInfo | None = None
    sources: dict[str, SourceSection] | None = None
    mix: dict[str, dict[str, MixRow]] | None = None
    leakage: Leakage | None = None
    cards: dict[str, CardFacts] | None = Field(default=None, description="each source's dataset card facts "
                                                                         "(homepage, licence, citation), by name")
    merged_from: list[str] | None = None
    bad_lines: list[str] | None = None
    warning: str | None = None

    _null_kept = frozenset({"root", "prompts"})

    def dumps(self) -> bytes:
        return (json.dumps(self.model_dump(mode="json", by_alias=True), ensure_ascii=False, sort_keys=True,
                           indent=2) + "\n").encode("utf-8")

    def write(self, path: Path) -> None:
        write_atomic(path, self.dumps())

    @classmethod
    def read(cls, path: Path) -> RunReport:
        """The report in `path`; ReportError names the file, and the line or key at fault."""
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise ReportError(path, None, "invalid JSON: not UTF-8 text") from None
        except OSError as exc:
            raise ReportError(path, None, f"cannot open: {exc.strerror or exc}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ReportError(path, exc.lineno, f"invalid JSON: {json_detail(exc)}") from None
        except (RecursionError, ValueError) as exc:
            raise ReportError(path, None, f"invalid JSON: {unreadable(exc)}") from None
        if not isinstance(data, dict):
            raise ReportError(path, None, "not an object: the manifest must be a JSON object")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
            written = data.get("rsgpt4v_version")
            other = f"; written by rsgpt4v {written}, this is {__version__}" \
                if isinstance(written, str) and written != __version__ else ""
            raise ReportError(path, None, f"not a run report: {validation_problem(exc)}{more}{other}") from None

    @property
    def finished(self) -> bool:
        return self.status == "complete"

    @property
    def model(self) -> str:
        return str(self.config["model"]["name"])


def total_cards(parts: Iterable[RunReport]) -> dict[str, CardFacts] | None:
    """The card facts of several parts' sources, by name (the first part to name a source gives its facts)."""
    cards: dict[str, CardFacts] = {}
    for part in parts:
        for name, facts in (part.cards or {}).items():
            cards.setdefault(name, facts)
    return dict(sorted(cards.items())) or None


def total_status(statuses: Iterable[Status]) -> Status:
    """The status of several parts together: the least finished one."""
    found = set(statuses)
    return next((s for s in _UNFINISHED if s in found), "complete")
