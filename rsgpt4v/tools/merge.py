"""`rsgpt4v merge`: join the output folders of shards (or of separate builds) into one.

Records are streamed split by split, in the order the folders are given; a record id seen before is
skipped and counted, and a line that cannot be read is skipped and named (file:line). Images are hard-linked where the file system allows, else copied. The merged
manifest sums counts and usage and concatenates issues and failures; shards of one recipe keep its
sections (sources, mix, leakage) with each source's figures added up.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

from rsgpt4v.core.files import jsonl_writer, located, place_file
from rsgpt4v.core.report import (
    QC,
    Counts,
    Failures,
    Issues,
    MixRow,
    ReportError,
    RunReport,
    ServerSection,
    SourceSection,
    Usage,
    total_cards,
)
from rsgpt4v.records.model import first_problem
from rsgpt4v.records.reader import read_records


class MergeError(Exception):
    """An input folder that is not a finished build; the message names it."""


def _manifest(folder: Path) -> RunReport:
    path = folder / "manifest.json"
    if not path.is_file():
        raise MergeError(f"{folder} has no manifest.json: not an rsgpt4v output folder")
    try:
        manifest = RunReport.read(path)
    except ReportError as exc:
        raise MergeError(str(exc)) from None
    if not manifest.finished:
        raise MergeError(f"{folder} is a build that did not finish (status {manifest.status!r}): "
                         "rerun its build command first")
    return manifest


def _link_tree(src: Path, dst: Path) -> None:
    for path in sorted(src.rglob("*")):
        if not path.is_file():
            continue
        target = dst / path.relative_to(src)
        if not target.exists():
            place_file(path, target)


def merge(inputs: list[Path], out: Path) -> RunReport:
    """Merge `inputs` into `out`; the merged manifest."""
    manifests = [_manifest(Path(folder)) for folder in inputs]
    out.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    bad: list[str] = []
    duplicates = 0
    by_split: dict[str, Counter[str]] = {}
    splits = sorted({p.stem for folder in inputs for p in Path(folder).glob("*.jsonl")})
    for split in splits:
        tmp = out / f"{split}.jsonl.partial"
        with jsonl_writer(tmp) as dst:
            for folder in inputs:
                src = Path(folder) / f"{split}.jsonl"
                if not src.exists():
                    continue
                for line, record, problem in read_records(src):
                    problem = problem or first_problem(record)
                    if problem is not None:
                        bad.append(located(src, line, problem))
                        continue
                    if record["id"] in seen:
                        duplicates += 1
                        continue
                    seen.add(record["id"])
                    by_split.setdefault(split, Counter())[record.get("task") or "unknown"] += 1
                    dst.write(record)
        os.replace(tmp, out / f"{split}.jsonl")
    for folder in inputs:
        if (Path(folder) / "images").is_dir():
            _link_tree(Path(folder) / "images", out / "images")
    first = manifests[0]
    counts = Counts.total(m.counts for m in manifests)
    for split, tasks in sorted(by_split.items()):
        for task, n in sorted(tasks.items()):
            counts.add_record(split, task, n)
    counts.duplicates_skipped, counts.bad_lines = duplicates, len(bad)
    merged = first.model_copy(update={
        "status": "complete", "merged_from": [str(p) for p in inputs], "counts": counts, "bad_lines": bad,
        "issues": Issues.total({None: m.issues for m in manifests}),
        "failures": Failures.total(m.failures for m in manifests),
        "usage": Usage.total(m.usage for m in manifests),
        "qc": QC.total(m.qc for m in manifests if m.qc is not None),
        "server": ServerSection.total([m.server for m in manifests if m.server is not None]),
        "shard": None, "estimate": None, "estimated_from": None, "batch": None, "cards": total_cards(manifests),
        **_recipe_sections(manifests)})
    if any(m.config != first.config for m in manifests):
        merged.warning = "the inputs were built with different configurations"
    merged.write(out / "manifest.json")
    return merged


def _recipe_sections(manifests: list[RunReport]) -> dict[str, Any]:
    """Shards of one recipe keep its sections, each source's and each mix row's figures added up; any
    other mix of inputs has no one recipe to speak of."""
    first = manifests[0]
    if first.recipe is None or any(m.recipe != first.recipe or m.sources is None or m.mix is None for m in manifests):
        return {"recipe": None, "sources": None, "mix": None, "leakage": None}
    sources = {name: SourceSection.total([m.sources[name] for m in manifests if name in m.sources])
               for name in first.sources or {}}
    names = sorted({(source, task) for m in manifests for source, rows in (m.mix or {}).items() for task in rows})
    mix: dict[str, dict[str, MixRow]] = {}
    for source, task in names:
        mix.setdefault(source, {})[task] = MixRow.total([m.mix[source][task] for m in manifests
                                                         if source in m.mix and task in m.mix[source]])
    return {"sources": sources, "mix": mix}
