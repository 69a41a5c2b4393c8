"""`rsgpt4v merge`: join the output folders of shards (or of separate builds) into one.

Inputs are read-only. Before anything is written, merge refuses an `--out` that is an input or lies
inside one (it would rewrite the records it reads), the same input given twice (every record and
cost would count twice), an input that is not a finished build, and an input whose split files
hold fewer lines than its manifest counts (a file missing, or cut short: merging it would lose
records without a word). Two different images under one path in two inputs (the same window
name, other pixels) are refused too, unless `image_conflict="rename"`: the later input's image is
then placed beside the first under a name carrying its digest, and that input's records point at it.

Records are streamed split by split, in the order the folders are given; a record id seen before is
skipped and counted, and a line that cannot be read is skipped and named (file:line). Images are
hard-linked where the file system allows, else copied, symbolic links as the files they point at.
The merged manifest sums counts and usage and concatenates issues and failures; shards of one recipe
keep its sections (sources, mix, leakage) with each source's figures added up.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from rsgpt4v.core.files import jsonl_writer, located, place_file
from rsgpt4v.core.paths import is_within
from rsgpt4v.core.report import (
    QC,
    Counts,
    Failures,
    Issues,
    JudgeReport,
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

ImageConflict = Literal["fail", "rename"]
IMAGE_CONFLICTS: tuple[ImageConflict, ...] = ("fail", "rename")


class MergeError(Exception):
    """Inputs that cannot be merged as given; the message names the folder or file."""


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


def _check_places(inputs: list[Path], out: Path) -> None:
    """MergeError when `out` is an input or inside one, an input lies where merge writes, or an input
    is given twice (by another path to the same folder, too)."""
    target = out.resolve()
    seen: dict[Path, Path] = {}
    for folder in inputs:
        real = folder.resolve()
        if real in seen:
            twice = f"{folder} is given twice" if str(folder) == str(seen[real]) else \
                f"{seen[real]} and {folder} are the same folder"
            raise MergeError(f"{twice}: its records, windows and cost would count twice")
        seen[real] = folder
        if is_within(target, real):
            raise MergeError(f"--out {out} is {'the input' if target == real else 'inside the input'} {folder}: "
                             "merge never writes into a folder it reads; choose another --out")
        if is_within(real, target / "images"):
            raise MergeError(f"the input {folder} lies inside {out / 'images'}, where merge writes images; "
                             "choose another --out")


def _lines(path: Path) -> int:
    """Lines of a file, a last line without its line break counted too."""
    count, last = 0, b"\n"
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")


def _check_counts(folder: Path, manifest: RunReport) -> None:
    """MergeError naming a split file the manifest counts records of that is missing or holds fewer
    lines than that: the folder lost records since its build wrote them."""
    for split, tasks in sorted(manifest.counts.by_split.items()):
        counted = sum(tasks.values())
        path = folder / f"{split}.jsonl"
        if not counted:
            continue
        if not path.is_file():
            raise MergeError(f"{path} is missing, but its manifest counts {counted} {split} records: the folder is "
                             "incomplete; rebuild or copy it again")
        found = _lines(path)
        if found < counted:
            raise MergeError(f"{path} holds {found} lines, but its manifest counts {counted} records: the file was "
                             "cut short or partly deleted; rebuild or copy it again")


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _same_bytes(a: Path, b: Path) -> bool:
    sa, sb = a.stat(), b.stat()
    if (sa.st_ino, sa.st_dev) == (sb.st_ino, sb.st_dev):
        return True
    return sa.st_size == sb.st_size and _digest(a) == _digest(b)


def _images(folder: Path) -> list[str]:
    """Paths (relative to the folder, POSIX) of the files under folder/images."""
    root = folder / "images"
    return sorted(p.relative_to(folder).as_posix() for p in root.rglob("*") if p.is_file()) if root.is_dir() else []


def _image_names(inputs: list[Path], image_conflict: ImageConflict) -> list[dict[str, str]]:
    """Per input, where each of its images goes in the merged folder: its own path, or (a conflict
    resolved by renaming) a name carrying its digest. MergeError on a conflict under "fail"."""
    first: dict[str, tuple[Path, Path]] = {}  # image path -> (input, file) of its first occurrence
    names: list[dict[str, str]] = []
    for folder in inputs:
        mine: dict[str, str] = {}
        for rel in _images(folder):
            here = folder / rel
            owner, earlier = first.setdefault(rel, (folder, here))
            if earlier is here or _same_bytes(earlier, here):
                mine[rel] = rel
                continue
            if image_conflict == "fail":
                raise MergeError(f"{rel} is one image in {owner} and another in {folder} (different bytes): their "
                                 "records would share one picture; pass --image-conflict rename to keep both")
            p = PurePosixPath(rel)
            mine[rel] = str(p.with_name(f"{p.stem}~{_digest(here)[:12]}{p.suffix}"))
        names.append(mine)
    return names


def _place_images(folder: Path, out: Path, names: dict[str, str]) -> None:
    for rel, name in names.items():
        target = out / name
        if not target.exists():
            place_file(folder / rel, target)


def merge(inputs: list[Path], out: Path, image_conflict: ImageConflict = "fail") -> RunReport:
    """Merge `inputs` into `out`; the merged manifest. MergeError before anything is written when the
    inputs cannot be merged as they are (see the module's docstring)."""
    inputs = [Path(folder) for folder in inputs]
    if image_conflict not in IMAGE_CONFLICTS:
        raise MergeError(f"--image-conflict must be one of {', '.join(IMAGE_CONFLICTS)}, not {image_conflict!r}")
    _check_places(inputs, Path(out))
    manifests = [_manifest(folder) for folder in inputs]
    for folder, manifest in zip(inputs, manifests):
        _check_counts(folder, manifest)
    names = _image_names(inputs, image_conflict)
    out.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    bad: list[str] = []
    duplicates = 0
    by_split: dict[str, Counter[str]] = {}
    splits = sorted({p.stem for folder in inputs for p in folder.glob("*.jsonl")})
    for split in splits:
        tmp = out / f"{split}.jsonl.partial"
        with jsonl_writer(tmp) as dst:
            for folder, renamed in zip(inputs, names):
                src = folder / f"{split}.jsonl"
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
                    image = renamed.get(record["image"], record["image"])
                    dst.write(record if image == record["image"] else {**record, "image": image})
        os.replace(tmp, out / f"{split}.jsonl")
    for folder, renamed in zip(inputs, names):
        _place_images(folder, out, renamed)
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
        "judge": JudgeReport.total(m.judge for m in manifests if m.judge is not None),
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
