"""Issue 19: one strict reader for every YAML file people write (recipe, config, price table, prompts):
duplicate keys, alias bombs, non-finite or absurd numbers, non-UTF-8 text and deep nesting are each
refused in one line naming the file and the line; bounds on what the numbers may be; flags that
contradict each other are refused."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.core.config import ConfigError, load_config
from rsgpt4v.core.problems import UnreadableYAML, parse_yaml
from rsgpt4v.llm.cost import PriceError, PriceTable
from rsgpt4v.prompting.templates import PromptError, PromptSet

runner = CliRunner()


def _bomb(levels: int = 9) -> str:
    lines = ['  a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, levels + 1):
        name, prev = chr(ord("a") + i), chr(ord("a") + i - 1)
        lines.append(f"  {name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    return "\n".join(lines) + "\n"


# (YAML text, line named, words of the message): each a kind of hostile input the loader refuses.
HOSTILE = [
    ("sources: [1]\nseed: 1\nsources: [2]\n", 3, "key 'sources' is given twice in one mapping (first at line 1)"),
    ("a:\n  caps: {x: 1}\n  caps: {y: 2}\n", 3, "key 'caps' is given twice"),
    ("a: {b: 1, c: 2, b: 3}\n", 1, "key 'b' is given twice"),
    ("options:\n" + _bomb(), 6, "aliases expand the file by"),  # the first value past the bound alone
    ("a: &a [*a]\n", 1, "an alias refers to the value that holds it"),
    ("weight: .inf\n", 1, "'.inf' is not a finite number"),
    ("weight: -.Inf\n", 1, "is not a finite number"),
    ("weight: .nan\n", 1, "'.nan' is not a finite number"),
    ("x: 1\nweight: 1e400\n", 2, "'1e400' is not a finite number"),
    ("seed: " + "7" * 5000 + "\n", 1, "a number of 5000 digits"),
    ("seed: -" + "1" * 25 + "\n", 1, "a number of 25 digits"),
    ("x: " + "[" * 200 + "]" * 200 + "\n", 1, "nested more than 40 levels deep"),
    ("a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 60)) + "  " * 60 + "v: 1\n", 40, "nested more than"),
    ("a: [1,\n  b: 2\n", 3, "not valid YAML"),
]


@pytest.mark.parametrize("text, line, words", HOSTILE)
def test_the_strict_loader_refuses_each_kind_at_its_line(text: str, line: int, words: str) -> None:
    started = time.monotonic()
    with pytest.raises(UnreadableYAML) as caught:
        parse_yaml(text, Path("f.yaml"), "recipe")
    assert time.monotonic() - started < 5  # an alias bomb is measured, never expanded
    assert str(caught.value).startswith(f"f.yaml:{line}: "), str(caught.value)
    assert words in str(caught.value)
    assert "\n" not in str(caught.value)


def test_what_yaml_means_is_read_as_before() -> None:
    value, lines = parse_yaml("base: &b {x: 1, y: [2, 3]}\nover:\n  <<: *b\n  x: 5\nw: 1e3\nd: 2026-01-01\n"
                              "t: yes\ns: '1e3'\n", Path("f.yaml"), "config")
    assert value["over"] == {"x": 5, "y": [2, 3]}  # a merge key and its override are not a duplicate
    assert value["w"] == 1000.0 and value["s"] == "1e3" and value["t"] is True
    assert str(value["d"]) == "2026-01-01"
    assert lines[("over", "x")] == 4 and lines[("base", "y", 1)] == 1
    assert parse_yaml("\ufeffa: 1\n".encode("utf-8"), Path("f.yaml"), "config")[0] == {"a": 1}
    assert parse_yaml("", Path("f.yaml"), "config")[0] is None


def test_non_utf8_is_named_with_the_byte() -> None:
    with pytest.raises(UnreadableYAML, match=r"^f.yaml: not UTF-8 text \(byte 6\); save the recipe as UTF-8$"):
        parse_yaml("# caf\u00e9\na: 1\n".encode("latin-1"), Path("f.yaml"), "recipe")


# ---- every file kind goes through it ----------------------------------------------------------------

def test_config_duplicates_and_infinities_are_refused_with_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("engine:\n  rpm: 100\n  rpm: 5000\n")
    with pytest.raises(ConfigError, match=rf"^{config}:3: key 'rpm' is given twice"):
        load_config(config)
    config.write_text("seed: 1\nengine:\n  max_cost_usd: .inf\n")
    with pytest.raises(ConfigError, match=rf"^{config}:3: '.inf' is not a finite number$"):
        load_config(config)
    config.write_text("seed: 1\nengine:\n  rpm: 1e12\n")
    with pytest.raises(ConfigError, match=rf"^{config}:3: engine.rpm: Input should be less than or equal to"):
        load_config(config)
    config.write_text("seed: 1\nimage:\n  max_pixels: true\n")
    with pytest.raises(ConfigError, match=rf"^{config}:3: image.max_pixels: Input should be a valid integer"):
        load_config(config)


def test_price_table_duplicate_model_is_refused(tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text("date: 2026-01-01\nbatch_discount: 0.5\nexpected_output_tokens: {}\nmodels:\n"
                      "  gpt-4o: {input: 2.5, output: 10}\n  gpt-4o: {input: 0.1, output: 0.1}\n")
    with pytest.raises(PriceError, match=rf"^{prices}:6: key 'gpt-4o' is given twice"):
        PriceTable.load(prices)
    prices.write_text("date: 2026-01-01\nbatch_discount: 0.5\nexpected_output_tokens: {}\nmodels:\n"
                      "  gpt-4o: {input: .nan, output: 10}\n")
    with pytest.raises(PriceError, match=rf"^{prices}:5: '.nan' is not a finite number"):
        PriceTable.load(prices)


def test_prompt_file_with_a_duplicate_key_is_refused(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    for f in PromptSet.load().folder.glob("*.yaml"):
        (prompts / f.name).write_bytes(f.read_bytes())
    text = (prompts / "global.yaml").read_text(encoding="utf-8")
    (prompts / "global.yaml").write_text(text + "retry: |\n  again\n", encoding="utf-8")
    with pytest.raises(PromptError, match=rf"^{prompts / 'global.yaml'}:\d+: key 'retry' is given twice"):
        PromptSet.load(prompts)


# ---- recipes through the command line ----------------------------------------------------------------

def _recipe_build(tmp_path: Path, text: str | bytes) -> tuple[int, str, Path]:
    recipe = tmp_path / "mix.yaml"
    recipe.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    (tmp_path / "data" / "rsicd").mkdir(parents=True, exist_ok=True)
    result = runner.invoke(app, ["build", "--recipe", str(recipe), "--data", str(tmp_path / "data"), "--dry-run",
                                 "--no-progress", "--out", str(tmp_path / "out")], catch_exceptions=False)
    return result.exit_code, result.output, recipe


@pytest.mark.parametrize("text, line, words", [
    ("sources:\n  - {source: rsicd, root: rsicd}\nsources:\n  - {source: ucm, root: ucm}\n", 3,
     "key 'sources' is given twice"),
    ("sources:\n  - source: rsicd\n    root: rsicd\n    caps: {caption: 2}\n    caps: {vqa: 3}\n", 5,
     "key 'caps' is given twice"),
    ("sources:\n  - source: rsicd\n    root: rsicd\n    options:\n" + _bomb().replace("  ", "      ", 1).replace(
        "\n  ", "\n      "), 9, "aliases expand the file by"),
    ("sources:\n  - {source: rsicd, root: rsicd, weight: .inf}\n", 2, "'.inf' is not a finite number"),
    ("sources:\n  - {source: rsicd, root: rsicd, weight: 1e12}\n", 2,
     "sources[0].weight: input should be less than or equal to 100, got 1000000000000.0"),
    ("sources:\n  - {source: rsicd, root: rsicd, weight: 1.0e+12}\n", 2, "less than or equal to 100"),
    ("sources:\n  - {source: rsicd, root: rsicd, weight: -1}\n", 2, "greater than or equal to 0"),
    ("sources:\n  - {source: rsicd, root: rsicd, caps: {caption: true}}\n", 2,
     "sources[0].caps.caption: expected a whole number, got True"),
    ("sources:\n  - {source: rsicd, root: rsicd, caps: {caption: 2.5}}\n", 2, "expected a whole number, got 2.5"),
    ("sources:\n  - {source: rsicd, root: rsicd, caps: {caption: 10000000000}}\n", 2, "less than or equal to"),
    ("sources:\n  - {source: rsicd, root: rsicd, max_images: true}\n", 2, "expected a whole number, got True"),
    ("sources:\n  - {source: rsicd, root: rsicd, fraction: true}\n", 2, "expected a number, got True"),
    ("seed: " + "5" * 5000 + "\nsources:\n  - {source: rsicd, root: rsicd}\n", 1, "a number of 5000 digits"),
    ("seed: -3\nsources:\n  - {source: rsicd, root: rsicd}\n", 1, "seed: input should be greater than or equal to 0"),
    ("seed: true\nsources:\n  - {source: rsicd, root: rsicd}\n", 1, "seed: expected a whole number, got True"),
    ("sources:\n  - {source: rsicd, root: rsicd, options: {x: " + "[" * 100 + "]" * 100 + "}}\n", 2,
     "nested more than 40 levels deep"),
    ("sources:\n  - {source: rsicd, root: 5}\n", 2, "sources[0].root: expected text, got 5"),
    ("# caf\u00e9\nsources:\n  - {source: rsicd, root: rsicd}\n".encode("latin-1"), 1, "not UTF-8 text (byte 6)"),
    ("- just\n- a list\n", 1, "a recipe is a mapping"),
])
def test_hostile_recipes_end_in_one_line_naming_file_and_line(tmp_path: Path, text: str | bytes, line: int,
                                                              words: str) -> None:
    code, output, recipe = _recipe_build(tmp_path, text)
    assert code == 2, output
    assert output.strip().splitlines() == [output.strip()], output
    assert output.startswith(f"error: {recipe}:{line}: "), output
    assert words in output, output
    assert not (tmp_path / "out").exists()


# ---- flags ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, words", [
    (["--rpm", "inf"], "Invalid value for '--rpm': inf is not a finite number"),
    (["--tpm", "nan"], "Invalid value for '--tpm'"),
    (["--max-cost", "inf"], "Invalid value for '--max-cost': inf is not a finite number"),
    (["--rpm", "1e300"], "command line: engine.rpm: Input should be less than or equal to"),
    (["--seed", "9" * 30], "command line: seed: Input should be less than"),
    (["--backend", "bogus"], "--backend must be one of openai, mock, not 'bogus'"),
    (["--dry-run", "--backend", "openai"], "--dry-run answers with the mock backend: drop --backend openai"),
])
def test_contradicting_or_absurd_flags_are_refused_in_one_line(tmp_path: Path, args: list[str], words: str) -> None:
    done = subprocess.run([sys.executable, "-m", "rsgpt4v", "build", "--sample", "-s", "dota", "--no-progress",
                           "--out", str(tmp_path / "o"), *args], capture_output=True, text=True,
                          env={**os.environ, "OPENAI_API_KEY": "unused", "OPENAI_BASE_URL": "http://127.0.0.1:9"})
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and words in done.stderr, done.stderr
    assert not (tmp_path / "o").exists()
