"""The command line as a newcomer meets it: every option explained in its help as written, a bare
`rsgpt4v` showing the usage, and errors that name the file and what to do."""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rsgpt4v.cli import app
from scripts import cli_reference

REPO = Path(__file__).resolve().parents[1]
# Wide, so that rich wraps no help line (a wrap at a hyphen would split a word).
WIDE = {"TERMINAL_WIDTH": "400", "COLUMNS": "400", "NO_COLOR": "1"}


# (words after `rsgpt4v`, option) of every option of every command
OPTIONS = [(tuple(name.split()[1:]), param) for name, command in cli_reference.commands() for param in command.params
           if param.param_type_name == "option"]


def _flat(text: str) -> str:
    """Help output without rich's box lines and line breaks."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


@functools.cache
def _help(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    return _flat(result.output)


@pytest.mark.parametrize("path, option", OPTIONS, ids=[f"{' '.join(p)} {o.opts[0]}" for p, o in OPTIONS])
def test_every_options_help_shows_as_written(path: tuple[str, ...], option: Any) -> None:
    """What rich prints is what the help says: no markup swallows a bracket (tests/test_docs_commands.py
    checks that every option has help)."""
    assert cli_reference.shown(option.help) in _help(path)


def test_export_help_keeps_geochats_task_tokens() -> None:
    assert "GeoChat's [refer]/[identify] before questions with boxes" in _help(("export",))


def _rsgpt4v(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rsgpt4v", *args], capture_output=True, text=True, cwd=cwd,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", **WIDE})


@pytest.mark.parametrize("args, usage", [((), "rsgpt4v [OPTIONS] COMMAND"),
                                         (("batch",), "rsgpt4v batch [OPTIONS] COMMAND")])
def test_a_command_group_without_its_command_shows_its_usage(tmp_path: Path, args: tuple[str, ...],
                                                             usage: str) -> None:
    done = _rsgpt4v(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "Usage:" in done.stdout and usage in done.stdout and "Commands" in done.stdout


@pytest.fixture(scope="module")
def files_build(tmp_path_factory) -> Path:
    """A sample build that wrote its first requests to files (--batch-engine files)."""
    out = tmp_path_factory.mktemp("files") / "out"
    result = CliRunner().invoke(app, ["build", "-s", "dota", "--sample", "--dry-run", "--no-progress", "--batch",
                                      "--batch-engine", "files", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


ERRORS = [
    (["build", "-s", "dota", "--root", "{tmp}/nowhere", "--dry-run", "--out", "{tmp}/o"],
     "{tmp}/nowhere: no such folder; give --root the dataset folder as downloaded"),
    (["export", "{tmp}", "--out", "{tmp}/x"],
     "{tmp}: no <split>.jsonl files in it, not an rsgpt4v output folder; give the --out folder of a build"),
    (["export", "{sample}", "--out", "{sample}"], "--out {sample} is the build folder {sample}: export never "
                                                  "writes into a folder it reads; choose another --out"),
    (["preview", "{tmp}"], "{tmp}: no *.jsonl files in it, not an rsgpt4v output folder; give the --out folder "
                           "of a build"),
    (["stats", "{tmp}"], "{tmp}: no record files in it, not an rsgpt4v output folder; give the --out folder of "
                         "a build"),
    (["validate", "{tmp}"], "{tmp}: no record files in it (*.jsonl, *.json, *.parquet, data/*.parquet); give a "
                            "build or export folder, or the record files themselves"),
    (["estimate", "-s", "dota", "--sample", "--cache", "{tmp}/notes.txt"],
     "{tmp}/notes.txt: not an SQLite file; give --cache the cache.sqlite of an earlier build"),
    (["batch", "import", "{tmp}/nowhere", "{tmp}/notes.txt"],
     "{tmp}/nowhere: no such folder; give the --out folder of the build that wrote the requests"),
    (["batch", "import", "{tmp}", "{tmp}/results.jsonl"],
     "{tmp}/results.jsonl: no such result file; give the files your batch engine wrote"),
    (["batch", "collect", "--out", "{files}"],
     "{files}: its build wrote its requests to files (--batch-engine files) instead of submitting them; run them "
     "and `rsgpt4v batch import` the answers (`rsgpt4v batch status --out {files}` shows how)"),
]


@pytest.mark.parametrize("args, line", ERRORS, ids=[" ".join(a[:2]) for a, _ in ERRORS])
def test_an_error_names_the_file_what_is_wrong_and_what_to_do(tmp_path: Path, sample_build: Path, files_build: Path,
                                                              args: list[str], line: str) -> None:
    (tmp_path / "notes.txt").write_text("my notes\n", encoding="utf-8")
    where = {"tmp": str(tmp_path), "sample": str(sample_build), "files": str(files_build)}
    result = CliRunner().invoke(app, [a.format(**where) for a in args], env=WIDE)
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: {line.format(**where)}\n"
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "my notes\n"  # read, never moved aside
