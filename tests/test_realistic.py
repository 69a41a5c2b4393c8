"""Builds of the real DOTA windows against a model that writes like a real one: about 160 output
tokens per described object, cut at the token limit like the API, and a share of slips."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import loopback_build
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.llm.mock import Style, completion_for
from rsgpt4v.llm.request import canonical_json


class RealisticModel:
    """Answers like `rsgpt4v fake-server --answer-tokens-per-object 160 --mistakes P` and remembers
    which requests it cut at the token limit."""

    def __init__(self, style: Style) -> None:
        self.style = style
        self.cut: list[str] = []

    def __call__(self, body: dict) -> tuple[int, dict]:
        completion = completion_for(body, self.style)
        if completion["choices"][0]["finish_reason"] == "length":
            self.cut.append(hashlib.sha256(canonical_json(body).encode()).hexdigest())
        return 200, completion


def _windows_with_region_records(records: list[dict]) -> set[str]:
    return {r["id"].rsplit("/", 1)[0] for r in records if r["task"] == "region_description"}


@pytest.mark.parametrize("folder", ["dota_v1.0", "dota_v1.0_tiled"])
def test_careful_answers_fit_and_every_window_gets_region_records(real_dir: Path, tmp_path: Path,
                                                                  folder: str) -> None:
    model = RealisticModel(Style(tokens_per_object=160, mistakes=0.1))
    manifest, records, server = loopback_build(real_dir / folder, tmp_path / "out", model)
    local = manifest["usage"]["by_stage"]["local"]
    assert local["failures"] == {} and not [f for f in manifest["failures"]["list"] if f["stage"] == "local"]
    assert model.cut == []                                   # sized to fit: nothing is cut
    windows = {r["id"].rsplit("/", 1)[0] for r in records if r["task"] == "detection"}
    assert windows and _windows_with_region_records(records) == windows
    assert local["completion_tokens"] >= 150 * 40 * manifest["counts"]["windows"] * 0.9
    bodies = [b for b in server.bodies if b["response_format"]["json_schema"]["name"] == "LocalResponse"]
    listed = [sum(1 for line in b["messages"][1]["content"][0]["text"].splitlines() if line.startswith('{"id"'))
              for b in bodies]
    assert max(listed) <= (3000 - 100) // 200
    attributes = [r for r in records if r["task"] == "region_attributes"]
    assert len(attributes) == len(windows)


def test_an_answer_cut_at_the_limit_is_split_never_resent(real_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "optimistic.yaml"
    config.write_text("local: {output_tokens_per_object: 80}\n")   # too few: 28 objects a request
    model = RealisticModel(Style(tokens_per_object=160))
    manifest, records, _ = loopback_build(real_dir / "dota_v1.0", tmp_path / "out", model, "--config", str(config))
    assert model.cut and len(model.cut) == len(set(model.cut))
    local = manifest["usage"]["by_stage"]["local"]
    assert local["retry_reasons"] == {"length": len(model.cut)} and local["failures"] == {}
    assert manifest["failures"]["objects_left_out"] == {"summarised": 24}
    assert _windows_with_region_records(records)


def test_notes_that_pass_are_kept_when_an_answer_keeps_failing(real_dir: Path, tmp_path: Path) -> None:
    """Every answer leaves one object out: after the last attempt the other notes still make records,
    and the manifest counts what was lost, by reason."""
    model = RealisticModel(Style(tokens_per_object=160, mistakes=1.0))
    manifest, records, _ = loopback_build(real_dir / "dota_v1.0", tmp_path / "out", model)
    left_out = manifest["failures"]["objects_left_out"]
    requests = manifest["usage"]["by_stage"]["local"]["failures"]["ids"]
    assert left_out == {"summarised": 24, "ids": requests}   # one object a request
    assert {r["task"] for r in records} >= {"region_description", "region_attributes"}
    assert {f["stage"] for f in manifest["failures"]["list"]} >= {"local"}


def test_batch_passes_split_cut_answers_the_same_way(real_dir: Path, tmp_path: Path) -> None:
    from rsgpt4v.llm.fakeserver import FakeServer, Knobs

    config = tmp_path / "optimistic.yaml"
    config.write_text("local: {output_tokens_per_object: 80}\nbatch: {poll_s: 0}\n")
    with FakeServer(Knobs(answer_tokens_per_object=160)) as server:
        result = CliRunner().invoke(app, ["build", "--no-progress", "--source", "dota", "--root",
                                          str(real_dir / "dota_v1.0"), "--batch", "--wait", "--config", str(config),
                                          "--save-marked", "--out", str(tmp_path / "out")],
                                    env={"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "sk-real"},
                                    catch_exceptions=False)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["failures"]["count"] == 0
    assert manifest["batch"]["usage"]["requests"] > 4          # cut answers came back split, in later passes
    marked = sorted(p.name for p in (tmp_path / "out" / "marked").rglob("*.png"))
    assert marked and all(name.startswith("P1888__0_0_712_557__from") for name in marked)
