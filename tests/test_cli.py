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
import typer
from typer.testing import CliRunner

from rsgpt4v.cli import app

REPO = Path(__file__).resolve().parents[1]
# Wide, so that rich wraps no help line (a wrap at a hyphen would split a word).
WIDE = {"TERMINAL_WIDTH": "400", "COLUMNS": "400", "NO_COLOR": "1"}


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every command under a (typer's own click) group, with the words that call it."""
    found = []
    for name, command in sorted(group.commands.items()):
        found.append(((*path, name), command))
        if hasattr(command, "commands"):
            found += _commands(command, (*path, name))
    return found


COMMANDS = _commands(typer.main.get_command(app))
OPTIONS = [(path, param) for path, command in COMMANDS for param in command.params
           if param.param_type_name == "option" and param.name != "help"]


def _flat(text: str) -> str:
    """Help output without rich's box lines and line breaks."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def _shown(help_text: str) -> str:
    """A help string as rich shows it: `\\[` is the escape of a literal bracket."""
    return " ".join(help_text.replace("\\[", "[").split())


@functools.cache
def _help(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env=WIDE)
    assert result.exit_code == 0, result.output
    return _flat(result.output)


def test_the_commands_are_all_walked() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"build", "estimate", "export", "fake-server", "validate", "preview", "batch import"} <= names
    assert len(OPTIONS) > 60


@pytest.mark.parametrize("path, option", OPTIONS, ids=[f"{' '.join(p)} {o.opts[0]}" for p, o in OPTIONS])
def test_every_option_has_help_and_its_help_shows_as_written(path: tuple[str, ...], option: Any) -> None:
    assert option.help and len(option.help.split()) >= 2, f"`rsgpt4v {' '.join(path)} {option.opts[0]}` has no help"
    assert _shown(option.help) in _help(path)


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
