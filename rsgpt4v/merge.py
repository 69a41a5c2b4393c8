"""`rsgpt4v merge`: join the output folders of shards (or of separate builds) into one.

Records are streamed split by split, in the order the folders are given; a record id seen before is
skipped and counted, and a line that cannot be read is skipped and named (file:line). Images are hard-linked where the file system allows, else copied. The merged
manifest sums counts and usage and concatenates issues and failures.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from rsgpt4v.files import jsonl_writer, place_file, write_atomic
from rsgpt4v.record_model import first_problem
from rsgpt4v.records import located, read_records


class MergeError(Exception):
    """An input folder that is not a finished build; the message names it."""


def _manifest(folder: Path) -> dict[str, Any]:
    path = folder / "manifest.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MergeError(f"{folder} has no manifest.json: not an rsgpt4v output folder") from None
    except json.JSONDecodeError as exc:
        raise MergeError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    if manifest.get("status") != "complete":
        raise MergeError(f"{folder} is a build that did not finish (status {manifest.get('status')!r}): "
                         "rerun its build command first")
    return manifest


def _link_tree(src: Path, dst: Path) -> None:
    for path in sorted(src.rglob("*")):
        if not path.is_file():
            continue
        target = dst / path.relative_to(src)
        if not target.exists():
            place_file(path, target)


def _sum_usage(usages: list[dict[str, Any]]) -> dict[str, Any]:
    stages: dict[str, dict[str, Any]] = {}
    for usage in usages:
        for stage, row in usage.get("by_stage", {}).items():
            totals = stages.setdefault(stage, {})
            for key, value in row.items():
                if isinstance(value, dict):  # counts by reason
                    totals[key] = dict(sorted((Counter(totals.get(key, {})) + Counter(value)).items()))
                else:
                    totals[key] = totals.get(key, 0) + value
    by_stage = {stage: dict(sorted(t.items())) for stage, t in sorted(stages.items())}
    keys = ("api_calls", "cache_hits", "prompt_tokens", "completion_tokens", "cost_usd")
    return {"by_stage": by_stage, **{k: sum(u.get(k, 0) for u in usages) for k in keys}}


def merge(inputs: list[Path], out: Path) -> dict[str, Any]:
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
    by_task: Counter[str] = Counter()
    for counts in by_split.values():
        by_task.update(counts)
    first = manifests[0]
    merged = {
        **{k: first[k] for k in ("rsgpt4v_version", "source", "model", "backend", "config", "prompts") if k in first},
        "status": "complete",
        "merged_from": [str(p) for p in inputs],
        "counts": {"samples": sum(m["counts"]["samples"] for m in manifests),
                   "windows": sum(m["counts"]["windows"] for m in manifests),
                   "records": sum(by_task.values()), "duplicates_skipped": duplicates, "bad_lines": len(bad),
                   "by_task": dict(sorted(by_task.items())),
                   "by_split": {s: dict(sorted(c.items())) for s, c in sorted(by_split.items())}},
        "issues": {"skipped": sum(m["issues"]["skipped"] for m in manifests),
                   "warnings": sum(m["issues"]["warnings"] for m in manifests),
                   "by_reason": dict(sorted(sum((Counter(m["issues"]["by_reason"]) for m in manifests),
                                                Counter()).items())),
                   "list": [i for m in manifests for i in m["issues"]["list"]]},
        "bad_lines": bad,
        "failures": {"count": sum(m["failures"]["count"] for m in manifests),
                     "list": [f for m in manifests for f in m["failures"]["list"]]},
        "usage": _sum_usage([m["usage"] for m in manifests]),
    }
    if any(m.get("config") != first.get("config") for m in manifests):
        merged["warning"] = "the inputs were built with different configurations"
    write_atomic(out / "manifest.json", (json.dumps(merged, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    return merged
