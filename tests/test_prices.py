"""The price table is a validated model: the bundled table reads as before, and a malformed one is
one line naming the file and the key at fault."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rsgpt4v.core.resources import resource_dir
from rsgpt4v.llm.cost import DEFAULT_IMAGE_RULE, PatchRule, PriceError, PriceTable, TileRule

BUNDLED = resource_dir("configs") / "prices.yaml"


def test_the_bundled_table_reads_with_its_figures() -> None:
    table = PriceTable.load()
    assert (table.date, table.batch_discount) == ("2026-11-01", 0.5)
    assert table.expected_output == {"local_per_object": 160, "local_base": 30, "global": 350, "dialogue": 450,
                                     "judge_per_sentence": 25, "judge_base": 10}
    assert table.price("gpt-4o-2024-08-06") == table.models["gpt-4o"]
    assert (table.models["gpt-4o"].input, table.models["gpt-4o"].output) == (2.5, 10.0)
    assert table.image_rule("gpt-4o-mini") == TileRule(base=2833, tile=5667)
    assert table.image_rule("gpt-4.1-mini") == PatchRule(formula="patches", multiplier=1.62)
    assert table.image_rule("my-vllm-model") == DEFAULT_IMAGE_RULE
    assert table.dollars("gpt-4o", 1_000_000, 100_000, batch=True) == pytest.approx((2.5 + 1.0) * 0.5)
    assert table.dollars("my-vllm-model", 10, 10) is None


def _with(change) -> dict:
    data = yaml.safe_load(BUNDLED.read_text(encoding="utf-8"))
    change(data)
    return data


@pytest.mark.parametrize("data, problem", [
    (_with(lambda d: d.pop("batch_discount")), "no 'batch_discount' entry"),
    (_with(lambda d: d["models"]["gpt-4o"].update(input=-2.5)),
     "models.gpt-4o.input: Input should be greater than or equal to 0"),
    (_with(lambda d: d.update(batch_discount=2)), "batch_discount: Input should be less than or equal to 1"),
    (_with(lambda d: d["models"]["gpt-4.1-mini"]["image"].update(formula="patch")),
     "models.gpt-4.1-mini.image: formula must be one of tiles, patches, qwen2-vl, internvl, llava-onevision"),
    (_with(lambda d: d["models"]["gpt-4o"]["image"].update(tiles=170)),
     "models.gpt-4o.image.tiles.tiles: Extra inputs are not permitted"),
    (_with(lambda d: d["expected_output_tokens"].update(glob="many")),
     "expected_output_tokens.glob: Input should be a valid integer"),
    (_with(lambda d: d["expected_output_tokens"].update(glob=True)),
     "expected_output_tokens.glob: Input should be a valid integer"),
    (_with(lambda d: d.update(models=["gpt-4o"])), "models: Input should be a valid dictionary"),
    (["gpt-4o", 2.5], "a mapping of date, batch_discount, expected_output_tokens and models, not a YAML list"),
    (None, "a mapping of date, batch_discount, expected_output_tokens and models, not an empty file"),
])
def test_a_malformed_table_is_one_line_naming_the_file_and_the_key(tmp_path: Path, data: object,
                                                                    problem: str) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(yaml.safe_dump(data) if data is not None else "", encoding="utf-8")
    with pytest.raises(PriceError) as caught:
        PriceTable.load(path)
    message = str(caught.value)
    where = message[:message.index(" ")]
    assert where in (f"{path}:", *(f"{path}:{n}:" for n in range(1, 200)))  # the file, and its line when it has one
    assert message.endswith(f" not a price table like configs/prices.yaml ({problem})")
