"""The docs cannot rot: every `rsgpt4v` command in a ```bash block of the README, docs/ and
prompts/README.md runs as written and exits 0, and docs/cli.md's options reference is today's.

The commands of each page run in order, the pages one after the other (README first, since the pages
build on its `out/dota`), in one scratch folder that holds what the docs name: `data/DOTA` (the
bundled sample in DOTA's layout) and `data/<source>` for the ten sources of the rs-gpt4v recipe, with
the client pointed at a loopback fake server. A line ending in `# not run: <why>` is skipped (it needs
a GPU, a real key or results from another program).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rsgpt4v.llm.fakeserver import FakeServer, Knobs
from scripts import cli_reference
from scripts.native_tree import write_tree

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "prompts" / "README.md"]
SKIP = "# not run:"


def commands(page: Path) -> list[tuple[int, str]]:
    """(line number, command) of every `rsgpt4v` line in the page's ```bash blocks, continuations joined."""
    found: list[tuple[int, str]] = []
    fence: str | None = None
    pending: tuple[int, str] | None = None
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("```"):
            fence = line[3:].strip() if fence is None else None
            continue
        if fence not in ("bash", "sh", "shell"):
            continue
        if pending is not None:
            pending = (pending[0], pending[1] + " " + line.strip())
        elif line.startswith("rsgpt4v "):
            pending = (number, line.strip())
        if pending is not None and not pending[1].endswith("\\"):
            if SKIP not in pending[1]:
                found.append(pending)
            pending = None
        elif pending is not None:
            pending = (pending[0], pending[1][:-1])
    return found


def test_the_extractor_reads_bash_blocks_only(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text("```\nrsgpt4v synopsis PLACEHOLDER\n```\n\n```bash\nrsgpt4v build --out out/x \\\n"
                    "  --dry-run   # a comment\nrsgpt4v stats out/x  # not run: needs a GPU\npip install .\n```\n",
                    encoding="utf-8")
    assert commands(page) == [(6, "rsgpt4v build --out out/x  --dry-run   # a comment")]


def test_every_documented_page_shows_runnable_commands() -> None:
    assert sum(len(commands(p)) for p in PAGES) >= 20


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("docs")
    shutil.copytree(REPO / "rsgpt4v" / "sample_data" / "dota", ws / "data" / "DOTA")
    write_tree(ws / "data", 12)
    return ws


def test_every_documented_command_runs_as_written(workspace: Path) -> None:
    with FakeServer(Knobs()) as server:
        env = {**os.environ, "OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "sk-docs-test",
               "NO_COLOR": "1", "COLUMNS": "120"}
        for page in PAGES:
            for number, command in commands(page):
                args = shlex.split(command, comments=True)
                done = subprocess.run([sys.executable, "-m", "rsgpt4v", *args[1:]], cwd=workspace, env=env,
                                      capture_output=True, text=True, timeout=600)
                where = f"{page.relative_to(REPO)}:{number}: {command}"
                assert done.returncode == 0, f"{where}\nexit {done.returncode}\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}"


def test_the_cli_page_lists_every_option_as_the_help_says() -> None:
    page = cli_reference.PAGE.read_text(encoding="utf-8")
    assert cli_reference.render(page) == page, "docs/cli.md is stale: run python scripts/cli_reference.py"
    for name, command in cli_reference.commands():
        for option in command.params:
            if option.param_type_name == "option":
                assert option.help, f"{name} {option.opts[0]} has no help text"


def test_every_page_links_only_to_pages_that_exist() -> None:
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#:]+\.md)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            assert (page.parent / target).is_file(), f"{page.relative_to(REPO)} links to missing {target}"
