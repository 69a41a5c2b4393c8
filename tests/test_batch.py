"""The Batch API path: submit, status, collect, resubmission, file splitting, against the fake server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.llm.batch import BatchQueue, split_request_files
from rsgpt4v.llm.doctor import PROBES
from rsgpt4v.llm.fakeserver import FakeServer, Knobs

runner = CliRunner()
SAMPLE = ["--source", "dota", "--sample", "--limit", "2", "--no-progress"]


def _invoke(args: list[str], env: dict[str, str] | None = None):
    return runner.invoke(app, args, env=env, catch_exceptions=False)


@pytest.fixture(scope="module")
def live_reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("live")
    assert _invoke(["build", *SAMPLE, "--dry-run", "--out", str(out)]).exit_code == 0
    return out


def test_batch_passes_stage_by_stage_give_the_live_result(tmp_path: Path, live_reference: Path) -> None:
    out = tmp_path / "batch"
    config = tmp_path / "small-files.yaml"
    config.write_text("batch: {max_lines: 3}\n")
    with FakeServer(Knobs()) as server:
        env = {"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "sk-batch-secret"}
        args = ["build", *SAMPLE, "--batch", "--config", str(config), "--out", str(out)]
        first = _invoke(args, env)
        assert first.exit_code == 0, first.output
        assert "submitted 8 requests (8 local)" in first.output
        state = json.loads((out / "batch" / "state.json").read_text())
        assert [b["lines"] for b in state["batches"]] == [3, 3, 2]           # split at max_lines
        assert not (out / "train.jsonl").exists()
        status = _invoke(["batch", "status", "--out", str(out)], env)
        assert status.exit_code == 0 and status.output.count("completed") == 3
        collected = _invoke(["batch", "collect", "--out", str(out)], env)
        assert "collected 8 answers" in collected.output
        passes = [_invoke(args, env).output for _ in range(3)]
        assert "submitted 5 requests (5 global)" in passes[0]
        assert "submitted 5 requests (5 dialogue)" in passes[1]
        assert "wrote" in passes[2] and "0 sent, 18 from cache" in passes[2]
        # 18 answers by batch; live, only the probe of what the server accepts, once, before the first pass
        probes = 1 + len(PROBES)
        assert server.stats.batch_lines == 18 and server.stats.completed == 18 + probes
        assert json.loads((out / "batch" / "state.json").read_text())["server"]["why"] == {}
    assert (out / "train.jsonl").read_bytes() == (live_reference / "train.jsonl").read_bytes()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["batch"]["usage"]["requests"] == 18
    assert manifest["batch"]["usage"]["cost_usd"] > 0
    for f in out.rglob("*"):
        if f.is_file():
            assert b"sk-batch-secret" not in f.read_bytes()


def test_expired_requests_are_resubmitted_until_done(tmp_path: Path, live_reference: Path) -> None:
    out = tmp_path / "expiring"
    with FakeServer(Knobs(batch_expire=0.2, seed=3)) as server:
        env = {"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "x"}
        args = ["build", *SAMPLE, "--batch", "--out", str(out)]
        for _ in range(30):
            result = _invoke(args, env)
            if result.output.startswith("wrote"):
                break
        else:
            pytest.fail("the build never completed")
        requests = json.loads((live_reference / "manifest.json").read_text())["usage"]["api_calls"]
        assert server.stats.batch_lines > requests                    # some requests went twice
    assert (out / "train.jsonl").read_bytes() == (live_reference / "train.jsonl").read_bytes()


def test_in_progress_batches_are_not_resubmitted(tmp_path: Path) -> None:
    out = tmp_path / "slow"
    with FakeServer(Knobs(batch_delay_s=3600)) as server:
        env = {"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "x"}
        args = ["build", *SAMPLE, "--batch", "--out", str(out)]
        assert "submitted" in _invoke(args, env).output
        again = _invoke(args, env)
        assert "still in progress" in again.output
        assert server.stats.batches == 1


def test_request_files_split_by_size(tmp_path: Path) -> None:
    queue = BatchQueue()
    for i in range(10):
        queue.add(f"{i:064d}", "local", {"model": "m", "messages": [{"role": "user", "content": "x" * 1000}]})
    line_size = len(json.dumps(queue.lines[f"{0:064d}"], sort_keys=True, separators=(",", ":"))) + 1
    files = split_request_files(queue, tmp_path, "pass-001", max_lines=50_000, max_bytes=3 * line_size + 10)
    assert [len(f.read_text().splitlines()) for f in files] == [3, 3, 3, 1]
    lines = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert [line["custom_id"] for line in lines] == sorted(queue.lines)
    assert lines[0]["url"] == "/v1/chat/completions" and lines[0]["method"] == "POST"


def test_mock_batch_needs_wait(tmp_path: Path) -> None:
    result = runner.invoke(app, ["build", *SAMPLE, "--dry-run", "--batch", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--wait" in result.output


# ---- a recipe build: each source's batches live in OUT/parts/<source>/batch, the commands take OUT ------------

RECIPE = ("sources:\n  - {source: rsicd, root: rsicd, stages: [global, dialogue]}\n"
          "  - {source: dior-rsvg, root: dior-rsvg, stages: [local]}\n"
          "  - {source: rsvqa-lr, root: rsvqa-lr, stages: []}\n")


@pytest.fixture(scope="module")
def recipe_tree(tmp_path_factory) -> tuple[Path, Path]:
    from scripts.native_tree import write_tree

    folder = tmp_path_factory.mktemp("recipe")
    write_tree(folder / "data", per_source=5)
    (folder / "mix.yaml").write_text(RECIPE, encoding="utf-8")
    return folder / "data", folder / "mix.yaml"


def _dataset(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and (p.suffix == ".jsonl" and p.parent == out or "images" in p.parts)}


def test_batch_commands_on_a_recipe_out_cover_every_source(tmp_path: Path, recipe_tree: tuple[Path, Path]) -> None:
    data, recipe = recipe_tree
    live, out = tmp_path / "live", tmp_path / "batch"
    with FakeServer(Knobs()) as server:
        env = {"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "x"}
        common = ["build", "--recipe", str(recipe), "--data", str(data), "--no-progress"]
        assert _invoke([*common, "--out", str(live)], env).exit_code == 0
        live_calls = server.stats.requests
        args = [*common, "--batch", "--out", str(out)]
        first = _invoke(args, env)
        assert first.exit_code == 0, first.output
        # RSICD global (5 images) and DIOR-RSVG local (6 samples: one image in two splits), one batch each
        assert "submitted 11 requests (5 global, 6 local) in 2 batch(es)" in first.output
        assert not (out / "batch").exists() and not (out / "train.jsonl").exists()
        status = _invoke(["batch", "status", "--out", str(out)], env)
        assert status.exit_code == 0, status.output
        rows = status.output.splitlines()
        assert [row.split()[0] for row in rows] == ["dior-rsvg", "rsicd"]
        assert all("completed" in row and "open" in row for row in rows)
        collected = _invoke(["batch", "collect", "--out", str(out)], env)
        assert collected.exit_code == 0, collected.output
        assert f"collected 11 answers into {out / 'cache.sqlite'}" in collected.output
        assert "0 batch(es) still open" in collected.output
        second = _invoke(args, env)
        assert "submitted 5 requests (5 dialogue) in 1 batch(es)" in second.output
        assert "collected 5 answers" in _invoke(["batch", "collect", "--out", str(out)], env).output
        last = _invoke(args, env)
        assert last.exit_code == 0 and last.output.startswith("wrote"), last.output
        assert "0 sent, 16 from cache" in last.output
        assert "batch API: 16 answers collected over 3 batch(es)" in last.output
        assert server.stats.batch_lines == 16 == live_calls
    assert _dataset(out) == _dataset(live)


def test_batch_import_on_a_recipe_out_knows_every_parts_requests(tmp_path: Path,
                                                                  recipe_tree: tuple[Path, Path]) -> None:
    from rsgpt4v.llm.mock import completion_for

    data, recipe = recipe_tree
    out = tmp_path / "out"
    with FakeServer(Knobs(batch_delay_s=3600)) as server:
        env = {"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "x"}
        first = _invoke(["build", "--recipe", str(recipe), "--data", str(data), "--no-progress", "--batch",
                         "--out", str(out)], env)
        assert "in 2 batch(es)" in first.output
    requests = sorted(out.glob("parts/*/batch/requests/*.jsonl"))
    assert [p.parts[-4] for p in requests] == ["dior-rsvg", "rsicd"]
    lines = [json.loads(line) for p in requests for line in p.read_text().splitlines()]
    lines.append({**lines[0], "custom_id": "not-a-request-of-this-build"})
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps({"custom_id": line["custom_id"], "error": None, "response": {
        "status_code": 200, "body": completion_for(line["body"])}}) + "\n" for line in lines))
    imported = _invoke(["batch", "import", str(out), str(results)])
    assert imported.exit_code == 0, imported.output
    assert "imported 12 answers" in imported.output and "(1 answer requests not in the build's request files)" \
        in imported.output
