"""Image tokens per model family: OpenAI's tiles and patches, Qwen2-VL/2.5-VL's 28-pixel blocks,
InternVL's 448-pixel tiles, LLaVA-OneVision's anyres grid (the worked numbers of issue 20's notes,
computed from each processor's source), and `estimate` counting a self-served model by its rule,
in tokens and hours, not dollars."""

from __future__ import annotations

import json

import pytest
from conftest import serving
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.llm.cost import PriceTable, data_url_size
from rsgpt4v.llm.fakeserver import Knobs
from rsgpt4v.llm.image_tokens import (
    image_tokens,
    internvl_tokens,
    llava_onevision_tokens,
    patch_tokens,
    qwen2_vl_tokens,
)


@pytest.mark.parametrize("size, checkpoint, capped", [
    ((1024, 1024), 1369, 1225), ((512, 512), 324, 324), ((2048, 4096), 10658, 1250), ((1800, 2400), 5504, 1230),
    ((800, 600), 609, 609),
])
def test_qwen2_vl(size: tuple[int, int], checkpoint: int, capped: int) -> None:
    """The checkpoints' max_pixels 12845056, and vLLM's --mm-processor-kwargs '{"max_pixels": 1003520}'."""
    assert qwen2_vl_tokens(*size) == checkpoint
    assert qwen2_vl_tokens(*size, max_pixels=1003520) == capped


def test_qwen2_vl_upscales_a_tiny_image_to_min_pixels() -> None:
    assert qwen2_vl_tokens(20, 20) == 4          # 56 x 56 = min_pixels: 2 x 2 blocks of 28


@pytest.mark.parametrize("size, twelve, six", [
    ((1024, 1024), 2560, 1280), ((512, 512), 256, 256), ((800, 600), 3328, 1792), ((1800, 2400), 3328, 1792),
])
def test_internvl(size: tuple[int, int], twelve: int, six: int) -> None:
    assert internvl_tokens(*size) == twelve
    assert internvl_tokens(*size, max_tiles=6) == six


@pytest.mark.parametrize("size, tokens", [((1024, 1024), 7371), ((512, 512), 3699), ((800, 600), 4725),
                                          ((2048, 4096), 7341)])
def test_llava_onevision(size: tuple[int, int], tokens: int) -> None:
    assert llava_onevision_tokens(*size) == tokens


def test_openai_rules_keep_their_documented_numbers() -> None:
    assert [image_tokens(1024, 1024, "high"), image_tokens(2048, 4096, "high"), image_tokens(9, 9, "low")] == \
        [765, 1105, 85]
    assert patch_tokens(1024, 1024) == 1024


def test_open_models_match_by_family_and_carry_no_price() -> None:
    table = PriceTable.load()
    for name, formula in [("Qwen/Qwen2.5-VL-72B-Instruct", "qwen2-vl"), ("qwen2.5-vl-72b", "qwen2-vl"),
                          ("Qwen/Qwen2-VL-7B-Instruct", "qwen2-vl"), ("qwen2.5vl:7b", "qwen2-vl"),
                          ("OpenGVLab/InternVL2_5-78B", "internvl"), ("OpenGVLab/InternVL3-8B", "internvl"),
                          ("lmms-lab/llava-onevision-qwen2-72b-ov", "llava-onevision"),
                          ("gpt-4o-2024-08-06", "tiles"), ("gpt-4.1-mini", "patches")]:
        assert table.image_rule(name).formula == formula, name
    assert not table.priced("Qwen/Qwen2.5-VL-72B-Instruct") and table.priced("gpt-4o")
    assert table.dollars("Qwen/Qwen2.5-VL-72B-Instruct", 1000, 1000) is None


def _estimate(*args: str) -> dict:
    result = CliRunner().invoke(app, ["estimate", "--source", "dota", "--sample", "--json", *args],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # warnings about the sample's input go to stderr


def test_estimate_counts_a_qwen_model_by_qwens_rule_in_tokens_and_hours() -> None:
    qwen = _estimate("--model", "Qwen/Qwen2.5-VL-72B-Instruct", "--tokens-per-second", "1000")
    gpt = _estimate("--model", "gpt-4o")
    assert qwen["image_rule"].startswith("qwen2-vl (min_pixels 3136, max_pixels 12845056")
    assert qwen["priced"] is False and gpt["priced"] is True
    q, g = qwen["stages"][-1], gpt["stages"][-1]
    assert (q["requests"], q["text_tokens"], q["output_tokens"]) == (g["requests"], g["text_tokens"],
                                                                      g["output_tokens"])
    assert q["usd_live"] is None and q["image_tokens"] != g["image_tokens"]
    assert q["hours"] == pytest.approx((q["text_tokens"] + q["image_tokens"] + q["output_tokens"])
                                       * (1 + q["reasks"] / q["requests"]) / 1000 / 3600, abs=0.01)


def test_estimate_image_tokens_are_the_rule_applied_to_the_images_sent(tmp_path) -> None:
    with serving(Knobs()) as (server, sent):
        build = CliRunner().invoke(app, ["build", "--source", "dota", "--sample", "--no-progress", "--model",
                                         "Qwen/Qwen2.5-VL-72B-Instruct", "--out", str(tmp_path / "o")],
                                   env={"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "k"})
    assert build.exit_code == 0, build.output
    sizes = [data_url_size(p["image_url"]["url"]) for b in sent for m in b["messages"]
             if isinstance(m["content"], list) for p in m["content"] if p["type"] == "image_url"]
    qwen = _estimate("--model", "Qwen/Qwen2.5-VL-72B-Instruct")
    assert qwen["stages"][-1]["image_tokens"] == sum(qwen2_vl_tokens(w, h) for w, h in sizes)
    assert "hours" not in qwen["stages"][-1]
