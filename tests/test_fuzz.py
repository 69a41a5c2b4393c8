"""Issue 11: fuzzing. Every adapter and every reader command gets a few hundred mutated inputs (random
truncation, bit flips, deep nesting, huge numbers, odd encodings, NUL bytes): an adapter never raises
but SourceError (one line, exit 2), a command exits 0, 1 or 2 and never with a traceback, nothing is
written outside --out, and every skipped input is counted in the manifest.

FUZZ_N sets the mutations per target (default 200 for adapters, 40 for commands, which run the CLI).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from test_captions import make_rsicd
from test_coco import make_coco
from test_dior import make_dior
from test_dota import make_split_root
from test_fair1m import make_fair1m
from test_floodnet import make_root as make_floodnet
from test_rsivqa import make_root as make_rsivqa
from test_rsvqa import make_lr
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.core.schema import Issue, Sample
from rsgpt4v.sources import get_source
from rsgpt4v.sources.base import SourceError

runner = CliRunner()
N_ADAPTER = int(os.environ.get("FUZZ_N", 200))
N_COMMAND = max(10, N_ADAPTER // 5)
ANNOTATION_SUFFIXES = (".json", ".txt", ".xml")


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One hostile variant of `data`."""
    kind = rng.randrange(8)
    at = rng.randrange(len(data) + 1)
    if kind == 0:
        return data[:at]                                           # truncated
    if kind == 1:
        out = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            if out:
                out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        return bytes(out)                                          # bit flips
    if kind == 2:
        depth = rng.choice((100, 5000, 100_000))
        return data[:at] + b"[" * depth + b"]" * depth + data[at:]  # nesting
    if kind == 3:
        return data[:at] + rng.choice((b"9" * 5000, b"1e999", b"-1e308", b"NaN", b"Infinity")) + data[at:]
    if kind == 4:
        text = data.decode("utf-8", "replace")
        return text.encode(rng.choice(("utf-16", "utf-32", "latin-1", "utf-8-sig")), "replace")  # encodings
    if kind == 5:
        return data[:at] + b"\x00" * rng.randint(1, 4) + data[at:]
    if kind == 6:
        end = min(len(data), at + rng.randint(1, 200))
        return data[:at] + data[at:end] * rng.randint(2, 50) + data[end:]  # repeated slice
    return data[:at] + "\u00e9\u2028\ud7ff\U0001f600".encode() + b"\xff\xfe" + data[at:]


ADAPTERS: list[tuple[str, Callable[[Path], Path]]] = [
    ("dota", make_split_root), ("coco", make_coco), ("dior", make_dior), ("fair1m", make_fair1m),
    ("rsicd", make_rsicd), ("floodnet-vqa", make_floodnet), ("rsvqa-lr", make_lr), ("rsivqa", make_rsivqa),
]


def _annotation_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in ANNOTATION_SUFFIXES)


@pytest.mark.parametrize("source, make", ADAPTERS, ids=[a[0] for a in ADAPTERS])
def test_adapters_never_raise_on_mutated_annotations(tmp_path: Path, source: str, make) -> None:
    root = make(tmp_path / "root")
    files = _annotation_files(root)
    originals = {f: f.read_bytes() for f in files}
    rng = random.Random(f"adapter-{source}")
    adapter = get_source(source)
    outcomes = {"read": 0, "refused": 0}
    for _ in range(N_ADAPTER):
        target = rng.choice(files)
        target.write_bytes(mutate(originals[target], rng))
        try:
            items = list(adapter(root))
        except SourceError as exc:
            assert "\n" not in str(exc)
            outcomes["refused"] += 1
        else:
            assert all(isinstance(i, (Sample, Issue)) for i in items)
            outcomes["read"] += 1
        target.write_bytes(originals[target])
    assert outcomes["read"] > 0


@pytest.mark.parametrize("source, make", ADAPTERS, ids=[a[0] for a in ADAPTERS])
def test_builds_of_mutated_sources_exit_0_or_2_and_count_every_skip(tmp_path: Path, source: str, make) -> None:
    root = make(tmp_path / "root")
    files = _annotation_files(root)
    originals = {f: f.read_bytes() for f in files}
    config = tmp_path / "templates-only.yaml"
    config.write_text("stages: []\n")
    rng = random.Random(f"build-{source}")
    adapter = get_source(source)
    for n in range(max(3, N_COMMAND // 4)):
        target = rng.choice(files)
        target.write_bytes(mutate(originals[target], rng))
        out = tmp_path / f"out{n}"
        before = {p for p in tmp_path.rglob("*") if not p.is_relative_to(out)}
        result = runner.invoke(app, ["build", "--no-progress", "--dry-run", "--source", source, "--root", str(root),
                                     "--out", str(out), "--config", str(config)])
        assert result.exit_code in (0, 2), result.output
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
        assert {p for p in tmp_path.rglob("*") if not p.is_relative_to(out)} == before
        if result.exit_code == 0:
            skipped = sum(1 for i in adapter(root) if isinstance(i, Issue) and i.kind == "skip")
            manifest = json.loads((out / "manifest.json").read_text())
            assert manifest["issues"]["skipped"] >= skipped
        else:
            errors = [line for line in result.output.splitlines() if line.startswith("error:")]
            assert len(errors) == 1 and result.output.strip().endswith(errors[0]), result.output
        target.write_bytes(originals[target])


@pytest.mark.parametrize("command", ["validate", "stats", "preview", "export", "merge"])
def test_reader_commands_survive_mutated_record_files(tmp_path: Path, sample_build: Path, command: str) -> None:
    folder = tmp_path / "built"
    shutil.copytree(sample_build, folder)
    original = (folder / "train.jsonl").read_bytes()
    rng = random.Random(f"reader-{command}")
    for n in range(N_COMMAND):
        (folder / "train.jsonl").write_bytes(mutate(original, rng))
        dest = tmp_path / f"dest{n}"
        args = {"validate": [str(folder)], "stats": [str(folder)],
                "preview": [str(folder), "--out", str(dest), "--n", "5"],
                "export": [str(folder), "--out", str(dest)],
                "merge": [str(folder), "--out", str(dest)]}[command]
        before = {p for p in tmp_path.rglob("*") if not p.is_relative_to(dest)}
        result = runner.invoke(app, [command, *args])
        assert result.exception is None or isinstance(result.exception, SystemExit), \
            f"{command} raised {result.exception!r} on mutation {n}"
        assert result.exit_code in (0, 1, 2), result.output
        assert {p for p in tmp_path.rglob("*") if not p.is_relative_to(dest)} == before
