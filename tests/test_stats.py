"""`stats`: counts that agree with the build's manifest, length statistics, and bad lines by file and line."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from rsgpt4v.tools.stats import main_stats, stats


@pytest.fixture
def sample(sample_build: Path) -> Path:
    return sample_build


def _records(folder: Path) -> list[dict]:
    return [json.loads(line) for f in sorted(folder.glob("*.jsonl")) for line in f.read_text().splitlines()]


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def test_counts_equal_the_manifests(sample: Path) -> None:
    result = stats(sample)
    manifest = _manifest(sample)
    assert result["by_task"] == manifest["counts"]["by_task"]
    assert result["by_split"] == {split: sum(tasks.values()) for split, tasks in manifest["counts"]["by_split"].items()}
    assert result["records"] == manifest["counts"]["records"] == 69
    assert result["by_source"] == {"dota": 69}
    assert result["box_formats"] == {"llava": 69}
    assert result["bad_lines"] == {"count": 0, "list": []}
    assert [Path(f).name for f in result["files"]] == ["train.jsonl", "val.jsonl"]


def _nearest_rank(values: list[int], p: float) -> int:
    return sorted(values)[math.ceil(p / 100 * len(values)) - 1]


@pytest.mark.parametrize("task", ["detection", "multi_turn_reasoning"])
def test_lengths_of_one_task_computed_independently(sample: Path, task: str) -> None:
    records = [r for r in _records(sample) if r["task"] == task]
    answers = [len(t["value"].split()) for r in records for t in r["conversations"] if t["from"] == "gpt"]
    turns = [len(r["conversations"]) // 2 for r in records]
    boxes = [len(r["meta"]["boxes"]) for r in records]
    s = stats(sample)["tasks"][task]
    assert s["records"] == len(records)
    assert s["turns"] == {"mean": round(sum(turns) / len(turns), 2), "max": max(turns)}
    assert s["answer_words"] == {"mean": round(sum(answers) / len(answers), 2), "p50": _nearest_rank(answers, 50),
                                 "p95": _nearest_rank(answers, 95), "max": max(answers)}
    assert s["boxes"] == {"records": len(records), "total": sum(boxes), "mean": round(sum(boxes) / len(boxes), 2),
                          "max": max(boxes)}


def test_manifest_usage_failures_and_issues(sample: Path, tmp_path: Path) -> None:
    folder = tmp_path / "out"
    shutil.copytree(sample, folder, ignore=shutil.ignore_patterns("images", "cache.sqlite"))
    manifest = _manifest(folder)
    # Counted by the kinds the engine recorded, not by the wording of the listed reasons.
    manifest["failures"] = {"count": 3, "list": [
        {"scene": "a", "stage": "local", "kind": "qc_refusal", "reason": "the text contains a refusal"},
        {"scene": "b", "stage": "dialogue", "kind": "qc_count", "reason": "qc_count: the text says '3 planes'"},
        {"scene": "c", "stage": "dialogue", "kind": "qc_count", "reason": "a count: 'two ships'"}]}
    manifest["usage"]["by_stage"]["dialogue"]["failures"] = {"qc_count": 2}
    manifest["usage"]["by_stage"]["local"]["failures"] = {"qc_refusal": 1}
    manifest["issues"]["by_reason"] = {"skip: file_syntax_error": 2}
    manifest["issues"]["skipped"] = 2
    (folder / "manifest.json").write_text(json.dumps(manifest))

    m = stats(folder)["manifest"]
    assert m["usage"]["prompt_tokens"] == manifest["usage"]["prompt_tokens"] > 0
    assert m["usage"]["cost_usd"] == manifest["usage"]["cost_usd"]
    local = manifest["usage"]["by_stage"]["local"]
    assert m["usage_by_stage"]["local"]["completion_tokens"] == local["completion_tokens"]
    assert m["failures"]["count"] == 3
    assert m["failures"]["by_reason"] == {"qc_count": 2, "qc_refusal": 1}
    assert m["failures"]["by_stage"] == {"dialogue": {"qc_count": 2}, "global": {}, "local": {"qc_refusal": 1}}
    assert m["issues"] == {"skipped": 2, "warnings": 0, "by_reason": {"skip: file_syntax_error": 2}}
    assert m["qc"] == manifest["qc"] == {"rejected": {}}     # the mock writes text QC keeps


def test_terminal_table_is_aligned_and_json_parses(sample: Path, capsys) -> None:
    assert main_stats(sample, as_json=False) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("task "))
    table = lines[header:header + 2 + len(_manifest(sample)["counts"]["by_task"])]
    assert [row.split()[0] for row in table[1:]] == [*sorted(_manifest(sample)["counts"]["by_task"]), "all"]
    assert len({len(row) for row in table}) == 1  # right-aligned columns end together
    assert table[-1].split()[:2] == ["all", "69"]
    usage = _manifest(sample)["usage"]
    assert (f"tokens {usage['prompt_tokens']:,} in, {usage['completion_tokens']:,} out; "
            f"cost ${usage['cost_usd']:,.4f}") in text
    assert "failed stage answers: 0\n" in text

    assert main_stats(sample, as_json=True) == 0
    parsed = json.loads(capsys.readouterr().out)
    assert parsed == json.loads(json.dumps(stats(sample)))


def test_bad_lines_are_named_counted_and_exit_1(sample: Path, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    lines = (sample / "train.jsonl").read_text().splitlines(keepends=True)
    lines[5] = "[]\n"
    lines[-1] = lines[-1][:40]
    (folder / "train.jsonl").write_text("".join(lines))
    assert main_stats(folder, as_json=True) == 1
    captured = capsys.readouterr()
    first, second = captured.err.splitlines()
    assert first == f"{folder / 'train.jsonl'}:6: not an object: the record is a JSON list"
    assert second.startswith(f"{folder / 'train.jsonl'}:{len(lines)}: truncated: the last line is cut off")
    result = json.loads(captured.out)
    assert result["bad_lines"]["count"] == 2
    assert result["records"] == len(lines) - 2
    assert result["manifest"] is None


def test_missing_path_exits_2(tmp_path: Path, capsys) -> None:
    assert main_stats(tmp_path / "nope", as_json=False) == 2
    assert "does not exist" in capsys.readouterr().err
