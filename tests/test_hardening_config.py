"""Issue 11: configs and prompt files are checked as a whole before the first request is sent."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import LoopbackServer
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.llm.mock import completion_for
from rsgpt4v.prompting.templates import PromptSet

runner = CliRunner()


def _build(tmp_path: Path, *args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, ["build", "--no-progress", "--source", "dota", "--sample", "--out",
                               str(tmp_path / "out"), *args], env=env, catch_exceptions=False)


@pytest.mark.parametrize("yaml_text, message", [
    ("tiling: {window: 512, overlap: 512}\n", "tiling: overlap 512 must be at most half the window"),
    ("tiling: {window: 512, overlap: 511}\n", "tiling: overlap 511 must be at most half the window"),
    ("dialogue: {min_turns: 6, max_turns: 5}\n", "dialogue: min_turns 6 is more than max_turns 5"),
    ("model: {max_output_tokens: {local: -100}}\n", "model.max_output_tokens.local: Input should be greater than 0"),
    ("qc: {max_words: {caption: 0}}\n", "qc.max_words.caption: Input should be greater than 0"),
    ("qc: {min_words: {caption: 50}}\n", "qc: min_words.caption 50 is more than max_words.caption 40"),
    ("stages: [local, dialogue]\n", "dialogue is written from the global stage's answer"),
    ("stages: [global, global]\n", "names a stage twice"),
])
def test_inconsistent_configs_are_refused_in_one_line(tmp_path: Path, yaml_text: str, message: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml_text)
    result = _build(tmp_path, "--dry-run", "--config", str(config))
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not (tmp_path / "out").exists()


def test_invalid_yaml_is_one_line_with_its_position(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("tiling:\n  window: [1,\n  overlap: 2\n")
    result = _build(tmp_path, "--dry-run", "--config", str(config))
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {config}:4: not valid YAML (expected ',' or ']', but got '<stream end>', column 1)"]


def test_non_utf8_config_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_bytes("seed: 1 # caf\u00e9\n".encode("latin-1"))
    result = _build(tmp_path, "--dry-run", "--config", str(config))
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"error: {config}: not UTF-8 text (byte 14); save the config as UTF-8"]


@pytest.mark.parametrize("stage, key, text", [
    ("global", "retry", "Attempt $attempt of $max_attempts failed because $why."),
    ("dialogue", "user", "Write $min_turns to $maxturns turns."),
    ("local", "system", "Costs 5$ each. $example"),
])
def test_broken_template_stops_the_build_before_any_request(tmp_path: Path, stage: str, key: str, text: str) -> None:
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    for f in PromptSet.load().folder.glob("*.yaml"):
        (prompts / f.name).write_bytes(f.read_bytes())
    import yaml

    data = yaml.safe_load((prompts / f"{stage}.yaml").read_text())
    data[key] = text
    (prompts / f"{stage}.yaml").write_text(yaml.safe_dump(data))
    server = LoopbackServer(lambda body: (200, completion_for(body)))
    try:
        result = _build(tmp_path, "--prompts", str(prompts), env={"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "x"})
    finally:
        server.close()
    assert result.exit_code == 2
    assert f"{stage}.yaml: {key}" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert server.bodies == []
