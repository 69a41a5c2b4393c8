"""What a built dataset holds: records per task, source and split, conversation and answer lengths,
boxes per record, diversity (distinct first questions, distinct opening words of the answers,
repeated answers), and from the manifest (when there is one) tokens, cost, failures, QC rejections
and input issues.

Works on a build output folder or on any LLaVA-format JSONL (or JSON list) file. Files are streamed
and lengths are kept as histograms, so memory does not grow with the number of records; the
percentiles are exact (nearest rank).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsgpt4v.core.files import located
from rsgpt4v.core.report import JudgeReport, ReportError, RunReport, StageUsage
from rsgpt4v.records.model import first_problem
from rsgpt4v.records.reader import data_files, read_records

# Bad lines listed in the result (all are counted): enough to find the fault, bounded for huge files.
_LISTED_BAD = 100
_NONE = "(none)"
_OPENING_WORDS = 3


def _fingerprint(text: str) -> bytes:
    """A short digest of normalised text: diversity is counted on digests so memory stays small."""
    plain = " ".join(text.replace("<image>", " ").lower().split())
    return hashlib.blake2b(plain.encode("utf-8"), digest_size=8).digest()


def _opening(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", text.lower())[:_OPENING_WORDS])


@dataclass
class _Diversity:
    """How varied a task's wording is: distinct first questions, distinct openings of the first
    answer, and answers that repeat one seen before."""

    records: int = 0
    answers: int = 0
    first_questions: set[bytes] = field(default_factory=set)
    openings: set[bytes] = field(default_factory=set)
    distinct_answers: set[bytes] = field(default_factory=set)

    def add(self, questions: list[str], answers: list[str]) -> None:
        self.records += 1
        if questions:
            self.first_questions.add(_fingerprint(questions[0]))
        if answers:
            self.openings.add(_fingerprint(_opening(answers[0])))
        for answer in answers:
            self.answers += 1
            self.distinct_answers.add(_fingerprint(answer))

    def merge(self, other: _Diversity) -> None:
        self.records += other.records
        self.answers += other.answers
        self.first_questions |= other.first_questions
        self.openings |= other.openings
        self.distinct_answers |= other.distinct_answers

    def summary(self) -> dict[str, Any]:
        def share(n: int, of: int) -> float | None:
            return round(n / of, 3) if of else None
        repeated = self.answers - len(self.distinct_answers)
        return {"distinct_first_questions": len(self.first_questions),
                "distinct_first_questions_share": share(len(self.first_questions), self.records),
                "distinct_openings": len(self.openings), "distinct_openings_share": share(len(self.openings),
                                                                                         self.records),
                "repeated_answers": repeated, "repeated_answers_share": share(repeated, self.answers)}


@dataclass
class Histogram:
    """Non-negative integers counted by value."""

    counts: Counter[int] = field(default_factory=Counter)

    def add(self, value: int) -> None:
        self.counts[value] += 1

    def merge(self, other: Histogram) -> None:
        self.counts.update(other.counts)

    @property
    def n(self) -> int:
        return sum(self.counts.values())

    def mean(self) -> float | None:
        n = self.n
        return round(sum(v * c for v, c in self.counts.items()) / n, 2) if n else None

    def max(self) -> int | None:
        return max(self.counts) if self.counts else None

    def percentile(self, p: float) -> int | None:
        """The smallest value that at least p percent of the values do not exceed."""
        rank = math.ceil(p / 100 * self.n)
        seen = 0
        for value in sorted(self.counts):
            seen += self.counts[value]
            if seen >= rank:
                return value
        return None


@dataclass
class _Task:
    records: int = 0
    turns: Histogram = field(default_factory=Histogram)
    words: Histogram = field(default_factory=Histogram)
    boxes: Histogram = field(default_factory=Histogram)
    diversity: _Diversity = field(default_factory=_Diversity)

    def add(self, rec: dict[str, Any]) -> None:
        self.records += 1
        answers = [t["value"] for t in rec["conversations"] if t.get("from") == "gpt"]
        self.diversity.add([t["value"] for t in rec["conversations"] if t.get("from") == "human"], answers)
        self.turns.add(len(answers))
        for answer in answers:
            self.words.add(len(answer.split()))
        meta = rec.get("meta")
        if isinstance(meta, dict) and isinstance(meta.get("boxes"), list):
            self.boxes.add(len(meta["boxes"]))

    def merge(self, other: _Task) -> None:
        self.records += other.records
        self.turns.merge(other.turns)
        self.words.merge(other.words)
        self.boxes.merge(other.boxes)
        self.diversity.merge(other.diversity)

    def summary(self) -> dict[str, Any]:
        return {"records": self.records,
                "turns": {"mean": self.turns.mean(), "max": self.turns.max()},
                "answer_words": {"mean": self.words.mean(), "p50": self.words.percentile(50),
                                 "p95": self.words.percentile(95), "max": self.words.max()},
                "boxes": {"records": self.boxes.n, "total": sum(v * c for v, c in self.boxes.counts.items()),
                          "mean": self.boxes.mean(), "max": self.boxes.max()},
                "diversity": self.diversity.summary()}


@dataclass
class _BadLines:
    count: int = 0
    listed: list[dict[str, Any]] = field(default_factory=list)

    def add(self, file: Path, line: int | None, reason: str) -> None:
        self.count += 1
        if len(self.listed) < _LISTED_BAD:
            self.listed.append({"file": str(file), "line": line, "reason": reason})


def _label(rec: dict[str, Any], key: str, default: str = _NONE) -> str:
    value = rec.get(key)
    return value if isinstance(value, str) and value else default


def _manifest(path: Path, bad: _BadLines) -> dict[str, Any] | None:
    try:
        m = RunReport.read(path)
    except ReportError as exc:
        bad.add(exc.path, exc.line, exc.reason)
        return None
    stages = m.usage.by_stage
    # The engine counts each answer it gives up on by kind, per stage; the list's reasons are for reading.
    by_stage = {stage: dict(sorted(row.failures.items())) for stage, row in sorted(stages.items())}
    failed = StageUsage.total(stages.values()).failures
    return {
        "model": m.model, "backend": m.backend, "status": m.status, "records": m.counts.records,
        "usage": m.usage.model_dump(include={"api_calls", "cache_hits", "prompt_tokens", "completion_tokens",
                                             "cost_usd", "priced", "prices_date"}),
        "usage_by_stage": {stage: row.model_dump(include={"api_calls", "cache_hits", "prompt_tokens",
                                                          "completion_tokens", "cost_usd"})
                           for stage, row in sorted(stages.items())},
        "batch_usage": m.batch.usage.model_dump() if m.batch else None,
        "failures": {"count": m.failures.count, "by_reason": dict(sorted(failed.items())), "by_stage": by_stage},
        "qc": m.qc.model_dump() if m.qc else None,
        "judge": m.judge.model_dump() if m.judge else None,
        "recipe_targets": _recipe_targets(m),
        "issues": {"skipped": m.issues.skipped, "warnings": m.issues.warnings, "by_reason": m.issues.by_reason},
    }


def _nested(counts: Counter[tuple[str, str]]) -> dict[str, dict[str, int]]:
    nested: dict[str, dict[str, int]] = {}
    for (outer, inner), n in sorted(counts.items()):
        nested.setdefault(outer, {})[inner] = n
    return nested


def _recipe_targets(m: RunReport) -> dict[str, Any] | None:
    """What a recipe build's manifest says each source was asked for (None for a single-source build)."""
    if m.sources is None:
        return None
    targets = {}
    for name, section in sorted(m.sources.items()):
        t = section.targets
        targets[name] = {"status": section.status, "caps": t.get("caps") or {}, "fraction": t.get("fraction"),
                         "max_images": t.get("max_images"), "weight": t.get("weight"),
                         "dropped_for_leakage": section.dropped_for_leakage or 0}
    return targets


def mix_lines(result: dict[str, Any]) -> list[str]:
    """The mix of a recipe build: records per source and task as found in the data, each one's share,
    beside the recipe's targets (caps per task; fraction, max images and weight per source)."""
    targets = (result["manifest"] or {}).get("recipe_targets")
    if not targets:
        return []
    total = result["records"] or 1
    rows = []
    for name, t in targets.items():
        found = result["by_source_task"].get(name, {})
        label = f"{name} (root missing)" if t["status"] == "missing" else name
        rows.append([label, sum(found.values()), f"{100 * sum(found.values()) / total:.1f}%", "-",
                     t["fraction"], t["max_images"], t["weight"], t["dropped_for_leakage"]])
        for task in sorted(set(found) | set(t["caps"])):
            n = found.get(task, 0)
            rows.append([f"  {task}", n, f"{100 * n / total:.1f}%", t["caps"].get(task), "", "", "", ""])
    return ["mix (records found per source and task, beside the recipe's targets):",
            *_table(["source / task", "records", "share", "cap", "fraction", "max images", "weight",
                     "dropped (leakage)"], rows)]


def stats(out: Path) -> dict[str, Any]:
    """Statistics of a build output folder (its data files and manifest) or of one data file."""
    out = Path(out)
    files = data_files(out)
    tasks: dict[str, _Task] = {}
    by_source: Counter[str] = Counter()
    by_source_task: Counter[tuple[str, str]] = Counter()
    by_split: Counter[str] = Counter()
    box_formats: Counter[str] = Counter()
    bad = _BadLines()
    for path in files:
        for line, rec, problem in read_records(path):
            problem = problem or first_problem(rec)
            if problem:
                bad.add(path, line, str(problem))
                continue
            tasks.setdefault(_label(rec, "task"), _Task()).add(rec)
            by_source[_label(rec, "source")] += 1
            by_source_task[(_label(rec, "source"), _label(rec, "task"))] += 1
            # Our builds name each file after its split; other tools' files are grouped by file.
            by_split[_label(rec, "split", path.stem)] += 1
            meta = rec.get("meta")
            if isinstance(meta, dict) and isinstance(meta.get("box_format"), str):
                box_formats[meta["box_format"]] += 1
    overall = _Task()
    for t in tasks.values():
        overall.merge(t)
    manifest_path = out / "manifest.json"
    manifest = _manifest(manifest_path, bad) if out.is_dir() and manifest_path.is_file() else None
    return {
        "path": str(out),
        "files": [str(p) for p in files],
        "records": overall.records,
        "by_task": {k: tasks[k].records for k in sorted(tasks)},
        "by_source": dict(sorted(by_source.items())),
        "by_source_task": _nested(by_source_task),
        "by_split": dict(sorted(by_split.items())),
        "box_formats": dict(sorted(box_formats.items())),
        "tasks": {k: tasks[k].summary() for k in sorted(tasks)},
        "overall": overall.summary(),
        "bad_lines": {"count": bad.count, "list": bad.listed},
        "manifest": manifest,
    }


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _table(headers: list[str], rows: list[list[Any]]) -> list[str]:
    """Plain-text columns: the first left-aligned, the rest right-aligned."""
    cells = [headers, *([_cell(v) for v in row] for row in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
            for r in cells]


def _task_row(name: str, s: dict[str, Any]) -> list[Any]:
    w, b = s["answer_words"], s["boxes"]
    return [name, s["records"], s["turns"]["mean"], s["turns"]["max"], w["mean"], w["p50"], w["p95"], w["max"],
            b["mean"], b["max"]]


def _diversity_row(name: str, s: dict[str, Any]) -> list[Any]:
    d = s["diversity"]

    def pct(share: float | None) -> str:
        return "-" if share is None else f"{share:.0%}"
    return [name, s["records"], f"{d['distinct_first_questions']} ({pct(d['distinct_first_questions_share'])})",
            f"{d['distinct_openings']} ({pct(d['distinct_openings_share'])})",
            f"{d['repeated_answers']} ({pct(d['repeated_answers_share'])})"]


def _counts(title: str, counts: dict[str, int]) -> list[str]:
    return _table([title, "records"], [[k, n] for k, n in counts.items()]) if counts else []


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:,.4f}"


def _by_reason(counts: dict[str, int]) -> str:
    return " (" + ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items())) + ")" if counts else ""


def _manifest_lines(m: dict[str, Any]) -> list[str]:
    u = m["usage"]
    lines = [f"manifest: model {m['model']} ({m['backend']} backend), status {m['status']}, "
             f"{_cell(m['records'])} records",
             f"usage: {_cell(u['api_calls'])} API calls, {_cell(u['cache_hits'])} from cache; tokens "
             f"{_cell(u['prompt_tokens'])} in, {_cell(u['completion_tokens'])} out; cost "
             f"{_usd(u['cost_usd']) if u['priced'] is not False else 'not priced'}"]
    if m["usage_by_stage"]:
        rows = [[stage, r["api_calls"], r["cache_hits"], r["prompt_tokens"], r["completion_tokens"],
                 _usd(r["cost_usd"]), sum(m["failures"]["by_stage"].get(stage, {}).values())]
                for stage, r in m["usage_by_stage"].items()]
        lines += _table(["stage", "api calls", "cache hits", "tokens in", "tokens out", "cost", "failures"], rows)
    if m["batch_usage"]:
        bu = m["batch_usage"]
        lines.append(f"batch API: {_cell(bu.get('requests'))} answers; tokens {_cell(bu.get('prompt_tokens'))} in, "
                     f"{_cell(bu.get('completion_tokens'))} out; cost {_usd(bu.get('cost_usd'))}")
    f = m["failures"]
    lines.append(f"failed stage answers: {f['count']}{_by_reason(f['by_reason'])}")
    lines += [f"  {stage}{_by_reason(row)}" for stage, row in f["by_stage"].items() if row]
    rejected = (m["qc"] or {}).get("rejected") or {}
    lines.append(f"qc rejections: {sum(r.get('count', 0) for r in rejected.values())}")
    lines += [f"  {kind}: {r.get('count')}, e.g. {r.get('example')!r}" for kind, r in sorted(rejected.items())]
    if m.get("judge"):
        lines.append(JudgeReport.model_validate(m["judge"]).summary())
    i = m["issues"]
    lines.append(f"input issues: {i['skipped']} skipped, {i['warnings']} warnings")
    if i["by_reason"]:
        lines += ["  " + row for row in _table(["reason", "count"], sorted(i["by_reason"].items()))]
    return lines


def render(result: dict[str, Any]) -> str:
    """The statistics as a plain-text report for the terminal."""
    lines = [f"{result['path']}: {result['records']:,} records in {len(result['files'])} files", ""]
    rows = [_task_row(name, s) for name, s in result["tasks"].items()] + [_task_row("all", result["overall"])]
    lines += _table(["task", "records", "turns mean", "turns max", "words mean", "words p50", "words p95",
                     "words max", "boxes mean", "boxes max"], rows)
    lines += ["", "diversity (distinct first questions, distinct opening words of the first answer, repeated answers):"]
    lines += _table(["task", "records", "first questions", "openings", "repeated answers"],
                    [_diversity_row(name, s) for name, s in result["tasks"].items()])
    for title, key in (("split", "by_split"), ("source", "by_source"), ("box format", "box_formats")):
        if result[key]:
            lines += ["", *_counts(title, result[key])]
    if result["manifest"] is not None:
        lines += ["", *_manifest_lines(result["manifest"])]
        if mix := mix_lines(result):
            lines += ["", *mix]
    if result["bad_lines"]["count"]:
        lines += ["", f"bad lines: {result['bad_lines']['count']} (not counted above)"]
    return "\n".join(lines)


def main_stats(out: Path, as_json: bool) -> int:
    """The `stats` command: the report (or JSON) on stdout, bad lines as FILE:LINE: reason on stderr;
    exit code 0, 1 when a line could not be read, 2 when `out` does not exist."""
    out = Path(out)
    if not out.exists():
        print(f"error: {out} does not exist", file=sys.stderr)
        return 2
    result = stats(out)
    bad = result["bad_lines"]
    for b in bad["list"]:
        print(located(b["file"], b["line"], b["reason"]), file=sys.stderr)
    if bad["count"] > len(bad["list"]):
        print(f"... {bad['count'] - len(bad['list'])} more", file=sys.stderr)
    print(json.dumps(result, indent=2, ensure_ascii=False) if as_json else render(result))
    return 1 if bad["count"] else 0
