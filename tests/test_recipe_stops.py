"""Issue 19: a recipe build stopped anywhere resumes: a kill inside the final interleave leaves split
files the rerun knows for its own (no --force), and Ctrl-C (or any failure) writes a `stopped`
manifest that says what was done, as a single-source build does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsgpt4v.builder import mix
from rsgpt4v.cli import app
from scripts.native_tree import write_tree

REPO = Path(__file__).resolve().parents[1]
RECIPE = ("sources:\n  - {source: rsicd, root: rsicd, stages: [global]}\n"
          "  - {source: ucm-captions, root: ucm-captions, stages: []}\n")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tree") / "data"
    write_tree(root, per_source=5, plant=False)
    (root.parent / "mix.yaml").write_text(RECIPE, encoding="utf-8")
    return root


def args(data: Path, out: Path) -> list[str]:
    return ["build", "--recipe", str(data.parent / "mix.yaml"), "--data", str(data), "--dry-run", "--no-progress",
            "--out", str(out)]


def dataset(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and (p.suffix == ".jsonl" and p.parent == out or "images" in p.parts)}


@pytest.fixture(scope="module")
def clean(data: Path, tmp_path_factory) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("clean") / "out"
    result = CliRunner().invoke(app, args(data, out), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return dataset(out)


KILL_IN_INTERLEAVE = textwrap.dedent("""
    import os, sys
    from rsgpt4v.builder import mix
    from rsgpt4v.cli import main

    real, opened = mix.jsonl_writer, []

    class Dying:
        def __init__(self, writer):
            self.writer, self.n = writer, 0
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            return self.writer.__exit__(*exc)
        def write(self, record):
            self.writer.write(record)
            self.n += 1
            if len(opened) == 2 and self.n == 3:
                os._exit(9)  # as kill -9: no handler, no finally

    def writer(path):
        opened.append(path)
        return Dying(real(path))

    mix.jsonl_writer = writer
    sys.argv = ["rsgpt4v", *sys.argv[1:]]
    main()
""")


def test_a_kill_inside_the_interleave_resumes_without_force(data: Path, clean: dict[str, bytes],
                                                            tmp_path: Path) -> None:
    out = tmp_path / "out"
    killed = subprocess.run([sys.executable, "-c", KILL_IN_INTERLEAVE, *args(data, out)], capture_output=True,
                            text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert killed.returncode == 9, killed.stderr
    assert (out / "test.jsonl").is_file() and list(out.glob("*.jsonl.partial"))  # one split in place, one half done
    result = CliRunner().invoke(app, args(data, out), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert dataset(out) == clean
    assert json.loads((out / "manifest.json").read_text())["status"] == "complete"


@pytest.mark.parametrize("where", ["planning", "second source", "interleave"])
def test_ctrl_c_in_a_recipe_writes_a_stopped_manifest_and_the_rerun_resumes(data: Path, clean: dict[str, bytes],
                                                                            tmp_path: Path, monkeypatch,
                                                                            where: str) -> None:
    out = tmp_path / "out"
    real_build, real_choose, real_interleave = mix.build, mix.choose, mix.interleave

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    if where == "planning":
        monkeypatch.setattr(mix, "choose", interrupted)
    elif where == "interleave":
        monkeypatch.setattr(mix, "interleave", interrupted)
    else:
        class Interrupting:
            """The adapter, interrupted (Ctrl-C) after its first two samples."""

            def __init__(self, inner):
                self.inner = inner

            def __getattr__(self, name):
                return getattr(self.inner, name)

            def __iter__(self):
                for n, item in enumerate(self.inner):
                    if n == 2:
                        raise KeyboardInterrupt
                    yield item

        def second_interrupted(view, cfg, opts):
            if view.name == "ucm-captions":
                view.inner = Interrupting(view.inner)
            return real_build(view, cfg, opts)
        monkeypatch.setattr(mix, "build", second_interrupted)
    result = CliRunner().invoke(app, args(data, out))
    assert result.exit_code == 130
    assert result.output.strip().splitlines()[-1].startswith("error: interrupted; rerun the same command to resume")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "stopped"
    sections = manifest["sources"]
    if where == "planning":
        assert "leakage" not in manifest
        assert {s["status"] for s in sections.values()} == {"stopped"}
    elif where == "second source":
        assert sections["rsicd"]["status"] == "complete" and sections["rsicd"]["samples"] == 5
        assert sections["ucm-captions"]["status"] == "stopped"
        # What the part had done, from its own manifest: of the two images read, those the image side
        # had finished (one still being cut at the interrupt is not counted).
        part = json.loads((out / "parts" / "ucm-captions" / "manifest.json").read_text())
        assert sections["ucm-captions"]["samples"] == part["counts"]["samples"] <= 2
        assert manifest["usage"]["api_calls"] > 0
    else:
        assert {s["status"] for s in sections.values()} == {"complete"} and manifest["leakage"]["images"] == 10
    assert not list(out.glob("*.jsonl"))
    monkeypatch.setattr(mix, "build", real_build)
    monkeypatch.setattr(mix, "choose", real_choose)
    monkeypatch.setattr(mix, "interleave", real_interleave)
    result = CliRunner().invoke(app, args(data, out), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert dataset(out) == clean
