"""Diversity: a 20-window build sends every worked example of each stage, at each stage's
temperature, and a rerun sends the same bodies; `stats` reports how varied the records are."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from conftest import LoopbackServer
from PIL import Image
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.core.config import load_config
from rsgpt4v.llm.mock import completion_for
from rsgpt4v.prompting.templates import PromptSet
from rsgpt4v.tools.stats import render, stats

_CATEGORIES = ("plane", "ship", "small-vehicle", "storage-tank", "tennis-court")


def _dota(root: Path, n: int) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "labelTxt").mkdir()
    for i in range(n):
        Image.new("RGB", (200, 200), (40 + 7 * i, 90, 90)).save(root / "images" / f"P{i:04d}.png")
        lines = ["imagesource:GoogleEarth", "gsd:0.3"]
        for k in range(1 + i % 3):
            x, y = 20 + 50 * k, 30 + 40 * k
            lines.append(f"{x} {y} {x + 30} {y} {x + 30} {y + 20} {x} {y + 20} {_CATEGORIES[(i + k) % 5]} 0")
        (root / "labelTxt" / f"P{i:04d}.txt").write_text("\n".join(lines) + "\n")
    return root


def _bodies(root: Path, out: Path) -> list[dict]:
    server = LoopbackServer(lambda body: (200, completion_for(body)))
    try:
        result = CliRunner().invoke(app, ["build", "--no-progress", "--source", "dota", "--root", str(root),
                                          "--out", str(out)], env={"OPENAI_BASE_URL": server.url,
                                                                   "OPENAI_API_KEY": "sk-x"})
        assert result.exit_code == 0, result.output
    finally:
        server.close()
    return server.bodies


def _stage(body: dict) -> str:
    return {"LocalResponse": "local", "GlobalResponse": "global", "DialogueResponse": "dialogue"}[
        body["response_format"]["json_schema"]["name"]]


def test_a_20_window_build_uses_every_example_and_a_rerun_sends_the_same_bodies(tmp_path: Path) -> None:
    root = _dota(tmp_path / "dota", 20)
    first = _bodies(root, tmp_path / "a")
    prompts = PromptSet.load()
    cfg = load_config()
    by_stage: dict[str, list[dict]] = {}
    for body in first:
        by_stage.setdefault(_stage(body), []).append(body)
    assert {s: len(b) for s, b in by_stage.items()} == {"local": 20, "global": 20, "dialogue": 20}
    for stage in ("global", "dialogue"):
        systems = [b["messages"][0]["content"] for b in by_stage[stage]]
        used = Counter(i for s in systems for i, e in enumerate(prompts.examples[stage]) if e.strip() in s)
        assert set(used) == set(range(len(prompts.examples[stage]))), (stage, used)
        assert sum(used.values()) == 20                                  # one example per request
        assert {b["temperature"] for b in by_stage[stage]} == {cfg.model.temperature_for(stage)}
    assert cfg.model.temperature_for("dialogue") > cfg.model.temperature_for("local")
    second = _bodies(root, tmp_path / "b")
    assert sorted(json.dumps(b, sort_keys=True) for b in first) == sorted(json.dumps(b, sort_keys=True) for b in second)


def test_stats_reports_diversity_per_task(tmp_path: Path) -> None:
    def rec(task: str, question: str, *answers: str) -> dict:
        turns = [{"from": "human", "value": f"<image>\n{question}"}]
        for a in answers:
            turns += [{"from": "gpt", "value": a}, {"from": "human", "value": "More?"}]
        return {"id": question, "image": "x.png", "task": task, "conversations": turns[:-1]}
    records = [rec("multi_turn_reasoning", "What is this?", "A depot with buses.", "Yes."),
               rec("multi_turn_reasoning", "what is  this?", "A depot with cars.", "Yes."),
               rec("multi_turn_reasoning", "Why are the buses here?", "They wait.", "Yes."),
               rec("detailed_description", "Describe it.", "This top-down view shows a port.")]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    result = stats(path)
    d = result["tasks"]["multi_turn_reasoning"]["diversity"]
    assert d["distinct_first_questions"] == 2                 # case, spacing and <image> do not count
    assert d["distinct_openings"] == 2                        # "a depot with" twice, "they wait"
    assert d["repeated_answers"] == 2 and d["repeated_answers_share"] == round(2 / 6, 3)
    assert result["tasks"]["detailed_description"]["diversity"]["distinct_openings_share"] == 1.0
    lines = render(result).splitlines()
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("diversity")):]
    row = next(line for line in table if line.startswith("multi_turn"))
    assert row.split() == ["multi_turn_reasoning", "3", "2", "(67%)", "2", "(67%)", "2", "(33%)"]
