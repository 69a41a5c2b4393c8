"""The run report: every manifest a command writes reads back through the same model to the same bytes;
a manifest the model cannot read is one line naming the file and the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.core.issue_codes import IssueCode
from rsgpt4v.core.report import Issues, ReportError, RunReport, StageUsage, Usage
from rsgpt4v.core.schema import Issue


def run(*args: str) -> None:
    result = CliRunner().invoke(app, [*args], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def round_trips(folder: Path) -> RunReport:
    path = folder / "manifest.json"
    report = RunReport.read(path)
    assert report.dumps() == path.read_bytes()
    return report


def test_build_shard_and_merge_manifests_round_trip(tmp_path: Path) -> None:
    whole = tmp_path / "whole"
    run("build", "--no-progress", "--source", "dota", "--sample", "--dry-run", "--out", str(whole))
    report = round_trips(whole)
    assert report.status == "complete" and report.counts.records == sum(report.counts.by_task.values()) > 0
    assert report.usage.api_calls == sum(u.api_calls for u in report.usage.by_stage.values()) > 0
    shards = []
    for k in (1, 2):
        shards.append(tmp_path / f"shard{k}")
        run("build", "--no-progress", "--source", "dota", "--sample", "--dry-run", "--shard", f"{k}/2",
            "--out", str(shards[-1]))
        assert round_trips(shards[-1]).shard == (k, 2)
    run("merge", *map(str, shards), "--out", str(tmp_path / "merged"))
    merged = round_trips(tmp_path / "merged")
    assert merged.shard is None and merged.merged_from == [str(s) for s in shards]
    assert merged.counts.by_split == report.counts.by_split
    assert merged.usage.model_dump(exclude={"cost_usd", "by_stage"}) == report.usage.model_dump(exclude={"cost_usd",
                                                                                                          "by_stage"})
    assert merged.usage.cost_usd == pytest.approx(report.usage.cost_usd, abs=1e-5)   # shards round their own sums


def test_a_manifest_of_another_shape_is_named_by_key(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run("build", "--no-progress", "--source", "dota", "--sample", "--dry-run", "--out", str(out))
    data = json.loads((out / "manifest.json").read_text())
    data["usage"]["by_stage"]["local"]["api_callz"] = 3
    (out / "manifest.json").write_text(json.dumps(data, indent=2))
    with pytest.raises(ReportError) as caught:
        RunReport.read(out / "manifest.json")
    assert str(caught.value) == (f"{out / 'manifest.json'}: not a run report: usage.by_stage.local.api_callz: "
                                 "Extra inputs are not permitted")
    (out / "manifest.json").write_text('{"status": "complete",\n  "counts": }')
    with pytest.raises(ReportError) as caught:
        RunReport.read(out / "manifest.json")
    assert (caught.value.line, caught.value.reason) == (2, "invalid JSON: Expecting value: column 13")


def test_issue_counts_and_sums() -> None:
    issues = Issues()
    issues.add(Issue(kind="skip", code=IssueCode.FILE_SYNTAX_ERROR, reason="invalid JSON: Expecting value: column 1",
                     file="a.json", line=3))
    issues.add(Issue(kind="warning", code=IssueCode.IMAGE_OUTSIDE_ROOT, reason="image lies outside --root",
                     file="b.png"))
    assert (issues.skipped, issues.warnings, len(issues.listed)) == (1, 1, 2)
    total = Issues.total({"rsicd": issues, "dior-rsvg": issues})
    assert total.skipped == 2 and {i.source for i in total.listed} == {"rsicd", "dior-rsvg"}
    assert total.by_reason == {"dior-rsvg: skip: file_syntax_error": 1, "dior-rsvg: warning: image_outside_root": 1,
                               "rsicd: skip: file_syntax_error": 1, "rsicd: warning: image_outside_root": 1}
    local = StageUsage(api_calls=2, prompt_tokens=10, cost_usd=0.1234567)
    local.failures["ids"] += 1
    usage = Usage.of({"local": local}, "2026-01-01", True)
    both = Usage.total([usage, usage])
    assert (both.api_calls, both.by_stage["local"].failures, both.prices_date) == (4, {"ids": 2}, "2026-01-01")
    assert both.model_dump(mode="json")["cost_usd"] == 0.246913
