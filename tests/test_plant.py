"""Builds through `--backend openai` against the fake server with a sentence planted in every
free-text field of its answers: QC keeps none of a false total and keeps a true sub-count."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.llm.fakeserver import FakeServer, Knobs, plant

MODEL_TASKS = {"caption", "detailed_description", "grounded_description", "region_description", "multi_turn_reasoning"}


def _build(tmp_path: Path, sentence: str, *source: str) -> tuple[list[dict], dict]:
    out = tmp_path / "out"
    with FakeServer(Knobs(plant=sentence)) as server:
        result = CliRunner().invoke(app, ["build", "--no-progress", "--backend", "openai", *source, "--out", str(out)],
                                    env={"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "sk-plant"},
                                    catch_exceptions=False)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for f in sorted(out.glob("*.jsonl")) for line in f.read_text().splitlines()]
    return records, json.loads((out / "manifest.json").read_text())


def _with(records: list[dict], sentence: str) -> list[dict]:
    return [r for r in records if any(sentence in t["value"] for t in r["conversations"])]


def test_plant_appends_to_every_free_text_field() -> None:
    answer = {"objects": [{"id": 1, "colour": "white", "description": "A bus.", "referring_expression": "the bus",
                           "relations": [{"target_id": 2, "relation": "next to"}]}]}
    planted = plant(answer, "X y.")
    assert planted["objects"][0]["description"] == "A bus. X y."
    assert planted["objects"][0]["referring_expression"] == "the bus. X y."
    assert planted["objects"][0]["colour"] == "white" and planted["objects"][0]["relations"] == answer["objects"][0][
        "relations"]
    assert plant({"turns": [{"question": "Why?", "answer": "So."}]}, "X.") == {
        "turns": [{"question": "Why? X.", "answer": "So. X."}]}


@pytest.mark.parametrize("sentence", ["In all, 48 buses are parked here.", "More than eighty buses fill the lot."])
def test_p1888_keeps_no_false_total(tmp_path: Path, real_dir: Path, sentence: str) -> None:
    records, manifest = _build(tmp_path, sentence, "--source", "dota", "--root", str(real_dir / "dota_v1.0"))
    assert records and not _with(records, sentence)
    assert manifest["qc"]["rejected"]["qc_count"]["count"] >= 3            # every stage, every attempt
    assert manifest["qc"]["rejected"]["qc_count"]["example"] == sentence
    # dialogue needs global
    assert {(f["stage"], f["kind"]) for f in manifest["failures"]["list"]} == {("local", "qc_count"),
                                                                             ("global", "qc_count")}


def test_p1888_keeps_a_true_sub_count(tmp_path: Path, real_dir: Path) -> None:
    sentence = "Two buses stand alone along the western edge of the lot."
    records, manifest = _build(tmp_path, sentence, "--source", "dota", "--root", str(real_dir / "dota_v1.0"))
    assert {r["task"] for r in _with(records, sentence)} == MODEL_TASKS
    assert manifest["failures"]["count"] == 0 and manifest["qc"]["rejected"] == {}


def test_sample_keeps_no_false_total(tmp_path: Path) -> None:
    sentence = "In total, 999 small vehicles are parked here."
    records, manifest = _build(tmp_path, sentence, "--source", "dota", "--sample")
    assert records and not _with(records, sentence)
    assert manifest["qc"]["rejected"]["qc_count"]["example"] == sentence


def test_sample_keeps_a_true_sub_count_where_it_is_true(tmp_path: Path) -> None:
    sentence = "Two of the small vehicles stand side by side."
    records, _ = _build(tmp_path, sentence, "--source", "dota", "--sample")
    kept = _with(records, sentence)
    assert MODEL_TASKS <= {r["task"] for r in kept}
    with_cars = {r["image"] for r in records if r["task"] == "counting"
                 and any("small vehicle" in t["value"] and "0" != t["value"][0] for t in r["conversations"])}
    assert {r["image"] for r in kept} <= with_cars
    assert not [r for r in kept if "P9002" in r["image"]]                  # a harbour: no small vehicles


def test_the_fake_server_command_plants_through_the_cli(tmp_path: Path, real_dir: Path) -> None:
    import subprocess
    import sys
    sentence = "Forty buses are parked in the rows."
    server = subprocess.Popen([sys.executable, "-m", "rsgpt4v", "fake-server", "--port", "0", "--plant", sentence],
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    try:
        url = server.stdout.readline().split()[4]
        assert url.startswith("http://127.0.0.1:"), url
        out = tmp_path / "out"
        result = CliRunner().invoke(app, ["build", "--no-progress", "--backend", "openai", "--source", "dota",
                                          "--root", str(real_dir / "dota_v1.0"), "--out", str(out)],
                                    env={"OPENAI_BASE_URL": url, "OPENAI_API_KEY": "sk-plant"}, catch_exceptions=False)
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for f in sorted(out.glob("*.jsonl")) for line in f.read_text().splitlines()]
    assert records and not _with(records, sentence)
    assert json.loads((out / "manifest.json").read_text())["qc"]["rejected"]["qc_count"]["example"] == sentence


def test_a_model_writing_the_image_token_is_asked_again_with_qc_off(tmp_path: Path) -> None:
    config = tmp_path / "noqc.yaml"
    config.write_text("qc:\n  enabled: false\n", encoding="utf-8")
    records, manifest = _build(tmp_path, "<image> See above.", "--source", "dota", "--sample", "--config", str(config))
    assert manifest["status"] == "complete" and records                     # the build goes on
    for r in records:
        assert r["conversations"][0]["value"].count("<image>") == 1
        assert not any("<image>" in t["value"] for t in r["conversations"][1:])
    assert not any(r["task"] in MODEL_TASKS for r in records)               # every model answer held the token
    assert {f["kind"] for f in manifest["failures"]["list"]} == {"image_token"}
    assert manifest["usage"]["by_stage"]["local"]["failures"]["image_token"] > 0
