"""Per-record isolation: a record that fails after the model answered is dropped with a record_failed
issue naming image, window and task, and the build goes on; `--strict` stops there instead (exit 2);
too large a share of failed windows makes a finished build exit 1. A record is broken on purpose
through the test hook RSGPT4V_PLANT_BAD_RECORD."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsgpt4v.builder.pipeline import PLANT_BAD_RECORD
from rsgpt4v.cli import app

BAD = "dota/train/P9001/376_0_1400_1024/detection"


@pytest.fixture
def planted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RSGPT4V_STRICT", raising=False)
    monkeypatch.setenv(PLANT_BAD_RECORD, BAD)


def _build(out: Path, *extra: str):
    return CliRunner().invoke(app, ["build", "--no-progress", "--source", "dota", "--sample", "--dry-run",
                                    "--out", str(out), *extra], catch_exceptions=False)


def _ids(out: Path) -> list[str]:
    return [json.loads(line)["id"] for f in sorted(out.glob("*.jsonl")) for line in f.read_text().splitlines()]


def _share(tmp_path: Path, share: float) -> str:
    config = tmp_path / "c.yaml"
    config.write_text(f"output:\n  max_failed_share: {share}\n")
    return str(config)


def test_a_bad_record_is_dropped_named_and_counted_and_the_build_goes_on(tmp_path: Path, planted: None) -> None:
    # One of the sample's 7 windows is 14 %: a share a build of thousands of windows never reaches.
    result = _build(tmp_path / "out", "--config", _share(tmp_path, 0.2))
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    failed = [i for i in manifest["issues"]["list"] if i["code"] == "record_failed"]
    assert len(failed) == 1
    assert failed[0]["kind"] == "skip" and failed[0]["file"] == "train/images/P9001.png"
    assert failed[0]["reason"].startswith("window 376_0_1400_1024, task detection: ")
    assert "empty" in failed[0]["reason"]
    assert manifest["issues"]["by_reason"]["skip: record_failed"] == 1
    assert manifest["counts"]["windows_failed"] == 1
    assert "failed records: 1 dropped from 1 of" in result.output
    ids = _ids(tmp_path / "out")
    assert BAD not in ids
    # Everything else of that window, and of every other window, is written.
    assert "dota/train/P9001/376_0_1400_1024/counting" in ids
    assert manifest["counts"]["records"] == len(ids)
    assert manifest["counts"]["windows"] == 7


def test_strict_stops_at_the_bad_record_naming_it(tmp_path: Path, planted: None) -> None:
    result = _build(tmp_path / "out", "--strict")
    assert result.exit_code == 2
    assert ("error: train/images/P9001.png: window 376_0_1400_1024, task detection: " in result.output
            and "--strict" in result.output)
    assert not (tmp_path / "out" / "train.jsonl").exists()


def test_too_many_failed_windows_exit_1_with_everything_written(tmp_path: Path, planted: None) -> None:
    result = _build(tmp_path / "out", "--config", _share(tmp_path, 0.1))
    assert result.exit_code == 1
    assert "1 of 7 windows (14.3%) lost records" in result.output and "max_failed_share (10.0%)" in result.output
    assert (tmp_path / "out" / "train.jsonl").is_file()


def test_the_suite_builds_are_strict() -> None:
    """conftest.py sets RSGPT4V_STRICT for every test: a bug in a record fails its test."""
    import os

    assert os.environ.get("RSGPT4V_STRICT") == "1"
