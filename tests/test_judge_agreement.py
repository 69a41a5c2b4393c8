"""The labelled set for the judge is what it says it is, and `scripts/judge_agreement.py` measures the
judge on it through the build's own request path; the figures docs/quality.md gives for the mock are
the ones it prints; the judge prompt's worked examples are the requests of their real windows."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from rsgpt4v.core.config import load_config
from rsgpt4v.core.schema import Sample
from rsgpt4v.imaging.tiling import clip_to_image, make_scenes
from rsgpt4v.prompting.stages import SentImage, StageRequests
from rsgpt4v.prompting.templates import PromptSet
from rsgpt4v.quality.judge import Sentence, Unit
from rsgpt4v.sources.dota import DOTA
from scripts import judge_agreement

ROWS = [json.loads(line) for line in judge_agreement.SET.read_text(encoding="utf-8").splitlines() if line.strip()]
DOCS = Path(__file__).resolve().parents[1] / "docs" / "quality.md"


def test_the_set_is_large_half_false_and_about_three_real_images() -> None:
    assert len(ROWS) >= 60 and len({r["id"] for r in ROWS}) == len(ROWS)
    assert 0.45 <= sum(not r["truth"] for r in ROWS) / len(ROWS) <= 0.55
    for image in {r["image"] for r in ROWS}:
        mine = [r for r in ROWS if r["image"] == image]
        assert len(mine) >= 15 and 0.4 <= sum(not r["truth"] for r in mine) / len(mine) <= 0.6
    assert all(r["sentence"].strip() and r["why"].strip() and isinstance(r["truth"], bool) for r in ROWS)


def test_every_sentence_about_an_object_names_an_object_of_its_window(real_dir: Path) -> None:
    about = [r for r in ROWS if r["about"] is not None]
    assert len(about) >= 8 and {r["truth"] for r in about} == {True, False}
    for r in about:
        path = real_dir / r["image"]
        sample = next(s for s in DOTA(path.parent.parent) if isinstance(s, Sample) and s.image_id == path.stem)
        with Image.open(path) as im:
            width, height = im.size
        objects, _ = clip_to_image(sample, width, height)
        scene = next(s for s in make_scenes(sample, objects, width, height, load_config().tiling)
                     if list(s.window) == r["window"])
        assert 1 <= r["about"] <= len(scene.objects), r["id"]


def test_the_mock_figures_in_the_docs_are_the_scripts(real_dir: Path, capsys: pytest.CaptureFixture) -> None:
    assert judge_agreement.main(["--real", str(real_dir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    every = result["agreement"]["all"]
    assert every["sentences"] == len(ROWS) and every["tp"] + every["fn"] == every["false"]
    assert result["usage"]["api_calls"] == 3                    # one request per window
    row = (f"| mock (offline, cannot see) | {every['sentences']} | {every['false']} | {every['tp']} | {every['fp']} | "
           f"{every['fn']} | {judge_agreement._pct(every['precision'])} | {judge_agreement._pct(every['recall'])} |")
    assert row in DOCS.read_text(encoding="utf-8"), row


@pytest.mark.parametrize("index, image, source, window", [
    (0, "dota_v1.0/images/P1888.png", "dota", [0, 0, 712, 557]),
    (1, "dota_v1.0_tiled/images/P0706.png", "dota", [0, 0, 1024, 1024]),
    (2, "rsicd/images/stadium_1.jpg", "rsicd", [0, 0, 224, 224])])
def test_the_judge_prompts_worked_examples_are_real_requests(real_dir: Path, index: int, image: str, source: str,
                                                            window: list[int]) -> None:
    """Each worked example's input is what the judge is sent for its real window, object by object."""
    prompts = PromptSet.load()
    example = prompts.examples["judge"][index]
    given = example.split("Input:\n", 1)[1].split("\n\nWhat the example image shows", 1)[0].strip()
    scene, exhaustive = judge_agreement._scene(real_dir, image, source, window)
    judged = [Sentence(int(m.group(1)), Unit("label", i), m.group(3), int(m.group(2)) if m.group(2) else None)
              for i, m in enumerate(re.finditer(r"^(\d+)\. (?:\(about object \[(\d+)\]\) )?(.+)$", given, re.M))]
    requests = StageRequests(prompts, load_config(), "gpt-4o", exhaustive_labels=exhaustive)
    sent = SentImage(url="data:image/png;base64,", width=scene.width, height=scene.height, scale=1.0)
    body = requests.judge_request(scene, sent, judged, None, 1).body()
    assert body["messages"][1]["content"][0]["text"] == given
