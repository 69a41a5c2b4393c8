"""Issue 11: every command's expected failures are one line naming the file and what to do."""

from __future__ import annotations

import errno
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsgpt4v.cli import app

runner = CliRunner()


def _build(tmp_path: Path, *args: str):
    return runner.invoke(app, ["build", "--no-progress", "--dry-run", "--source", "dota", "--sample", *args])


def _one_line(result) -> str:
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return lines[0]


def test_out_that_is_a_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.write_text("not a folder")
    result = _build(tmp_path, "--out", str(out))
    assert result.exit_code == 2
    assert _one_line(result) == f"error: --out {out} is a file, not a folder; choose another --out"


def test_out_that_cannot_be_written(tmp_path: Path, monkeypatch) -> None:
    from rsgpt4v.records import writer as output

    def refuse(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "ro"))

    monkeypatch.setattr(output.Path, "mkdir", refuse)
    result = _build(tmp_path, "--out", str(tmp_path / "ro"))
    assert result.exit_code == 2
    assert _one_line(result) == f"error: {tmp_path / 'ro'}: Permission denied; choose a folder you can write to"


def test_cache_that_is_a_folder_is_refused_and_left_alone(tmp_path: Path) -> None:
    folder = tmp_path / "cachedir"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    result = _build(tmp_path, "--out", str(tmp_path / "out"), "--cache", str(folder))
    assert result.exit_code == 2
    assert _one_line(result) == f"error: {folder}: a folder, not a cache file: give --cache a file name"
    assert (folder / "keep.txt").read_text() == "mine"
    assert not (tmp_path / "cachedir.corrupt").exists()


@pytest.mark.parametrize("text, problem", [
    ("models: [1, 2\n", "not valid YAML"),
    ("date: 2026-01-01\nbatch_discount: 0.5\nexpected_output_tokens: {}\nmodels: {gpt-4o: {input: cheap, output: 1}}\n",
     "models.gpt-4o.input: Input should be a valid number"),
    ("date: 2026-01-01\nmodels: {}\n", "no 'batch_discount' entry"),
    ("- just a list\n", "not a price table"),
])
def test_invalid_prices_file(tmp_path: Path, text: str, problem: str) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text(text)
    result = _build(tmp_path, "--out", str(tmp_path / "out"), "--prices", str(prices))
    assert result.exit_code == 2
    line = _one_line(result)
    assert line.startswith(f"error: {prices}:") and problem in line


def test_disk_full_while_writing_images(tmp_path: Path, monkeypatch) -> None:
    from rsgpt4v.records import writer as output

    def full(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(output, "write_atomic", full)
    result = _build(tmp_path, "--out", str(tmp_path / "out"))
    assert result.exit_code == 1
    line = _one_line(result)
    assert line.startswith(f"error: {tmp_path / 'out'}/")
    assert line.endswith("no space left on the device; free some space and rerun the same command to resume "
                         "(answers already received are in the cache)")


def test_disk_full_in_the_cache(tmp_path: Path, monkeypatch) -> None:
    from rsgpt4v.llm.cache import Cache

    def full(self, *args) -> None:
        exc = sqlite3.OperationalError("database or disk is full")
        exc.sqlite_errorcode = sqlite3.SQLITE_FULL  # as sqlite3 sets it; the message decides nothing
        raise exc

    monkeypatch.setattr(Cache, "put", full)
    result = _build(tmp_path, "--out", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert _one_line(result) == (f"error: {tmp_path / 'out' / 'cache.sqlite'}: database or disk is full; free some "
                                 "space and rerun the same command to resume (answers already received are in the cache)")


def test_ctrl_c_says_how_to_resume(tmp_path: Path, monkeypatch) -> None:
    from rsgpt4v.builder import pipeline

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "build", interrupted)
    result = _build(tmp_path, "--out", str(tmp_path / "out"))
    assert result.exit_code == 130
    assert _one_line(result) == ("error: interrupted; rerun the same command to resume (answers already received "
                                 "are in the cache)")


@pytest.mark.parametrize("args, message", [
    (["build", "-s", "dota", "--sample", "--out", "o", "--concurrency", "0"],
     "error: Invalid value for '--concurrency': Input should be greater than or equal to 1"),
    (["build", "-s", "dota", "--sample", "--out", "o", "--no-such-flag"], "error: No such option: --no-such-flag"),
    (["preview", "x", "--n", "0"], "error: Invalid value for '--n': Input should be greater than or equal to 1"),
])
def test_usage_errors_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    done = subprocess.run([sys.executable, "-m", "rsgpt4v", *args], capture_output=True, text=True, cwd=tmp_path,
                          env={"PYTHONPATH": str(Path(__file__).resolve().parents[1]), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), done.stderr
