"""Cost estimates, budgets, shards and merging, through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from rsgpt4v.cli import app

runner = CliRunner()


def _invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def _lines(out: Path) -> list[str]:
    return [line for f in sorted(out.glob("*.jsonl")) for line in f.read_text().splitlines()]


def test_estimate_prices_each_stage_live_and_batch_and_sends_nothing(tmp_path: Path) -> None:
    result = _invoke("estimate", "--source", "dota", "--sample", "--model", "gpt-4o-mini", "--json")
    assert result.exit_code == 0, result.output
    table = json.loads(result.output)
    rows = {r["stage"]: r for r in table["stages"]}
    assert set(rows) == {"local", "global", "dialogue", "total"}
    assert table["windows_looked_at"] == rows["global"]["requests"] == 7 and table["images"] == 4
    # dense windows take several local requests, each sending the clean and the marked window
    assert rows["local"]["requests"] == 13
    # gpt-4o-mini bills an image as 2833 + 5667 per 512 px tile; every sample window is 2 x 2 tiles
    assert rows["local"]["image_tokens"] == 13 * 2 * (2833 + 4 * 5667)
    assert abs(rows["total"]["usd_batch"] - rows["total"]["usd_live"] * 0.5) <= 1e-4
    assert rows["total"]["requests"] == sum(rows[s]["requests"] for s in ("local", "global", "dialogue"))
    table_text = _invoke("estimate", "--source", "dota", "--sample").output
    assert "total" in table_text and "$" in table_text


def test_estimate_from_a_sample_scales_to_all_with_its_margin(tmp_path: Path) -> None:
    exact = json.loads(_invoke("estimate", "--source", "dota", "--sample", "--exact", "--json").output)
    assert (exact["images"], exact["images_looked_at"], exact["exact"]) == (4, 4, True)
    result = _invoke("estimate", "--source", "dota", "--sample", "--sample-images", "2", "--json")
    table = json.loads(result.output)
    assert (table["images"], table["images_looked_at"], table["exact"]) == (4, 2, False)
    rows = {r["stage"]: r for r in table["stages"]}
    # Two of the four images (one stratum), each standing for two: every window looked at counts twice.
    assert rows["global"]["requests"] == 2 * table["windows_looked_at"] != exact["windows_looked_at"]
    assert table["usd_live_margin"] > 0 and table["tokens_margin"] > 0
    text = _invoke("estimate", "--source", "dota", "--sample", "--sample-images", "2").output
    assert "extrapolated from a sample of 2 (stratified by size, seed 0)" in text
    assert "sampling margin (95 %): live dollars +- $" in text


def test_unknown_model_is_estimated_in_tokens_only() -> None:
    result = _invoke("estimate", "--source", "dota", "--sample", "--model", "my-vllm-model", "--json")
    rows = json.loads(result.output)["stages"]
    assert rows[-1]["usd_live"] is None and rows[-1]["image_tokens"] > 0


def test_max_cost_stops_cleanly_and_a_rerun_with_more_budget_finishes(tmp_path: Path) -> None:
    out = tmp_path / "budget"
    args = ["build", "--no-progress", "--source", "dota", "--sample", "--dry-run", "--model", "gpt-4o",
            "--concurrency", "1", "--out", str(out)]
    stopped = runner.invoke(app, [*args, "--max-cost", "0.05"])
    assert stopped.exit_code == 1
    assert "max-cost" in stopped.output and "Traceback" not in stopped.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "stopped"
    assert 0 < manifest["usage"]["cost_usd"] <= 0.05
    assert not (out / "train.jsonl").exists()
    paid = manifest["usage"]["api_calls"]
    finished = _invoke(*args)
    assert finished.exit_code == 0
    again = json.loads((out / "manifest.json").read_text())
    assert again["usage"]["cache_hits"] == paid
    assert again["usage"]["api_calls"] == 27 - paid


def test_shards_partition_the_samples_and_merge_back(tmp_path: Path) -> None:
    whole = tmp_path / "whole"
    assert _invoke("build", "--no-progress", "--source", "dota", "--sample", "--dry-run", "--out", str(whole)).exit_code == 0
    shards = []
    for k in (1, 2, 3):
        out = tmp_path / f"shard{k}"
        result = _invoke("build", "--no-progress", "--source", "dota", "--sample", "--dry-run", "--shard", f"{k}/3",
                         "--out", str(out))
        assert result.exit_code == 0, result.output
        shards.append(out)
    ids = [{json.loads(line)["id"] for line in _lines(s)} for s in shards]
    assert sum(len(i) for i in ids) == len(set().union(*ids))              # disjoint
    merged = tmp_path / "merged"
    result = _invoke("merge", *map(str, shards), "--out", str(merged))
    assert result.exit_code == 0, result.output
    assert sorted(_lines(merged)) == sorted(_lines(whole))
    for line in _lines(merged):
        assert (merged / json.loads(line)["image"]).is_file()
    m = json.loads((merged / "manifest.json").read_text())
    w = json.loads((whole / "manifest.json").read_text())
    assert m["counts"]["by_task"] == w["counts"]["by_task"]
    assert m["counts"]["samples"] == w["counts"]["samples"]
    assert m["usage"]["api_calls"] == w["usage"]["api_calls"]


def test_merge_names_unreadable_lines_and_goes_on(tmp_path: Path) -> None:
    out = tmp_path / "one"
    assert _invoke("build", "--no-progress", "--source", "dota", "--sample", "--dry-run", "--out", str(out)).exit_code == 0
    lines = (out / "val.jsonl").read_text().splitlines()
    (out / "val.jsonl").write_text("\n".join(lines) + "\n" + lines[0][:40])      # a torn last line
    result = runner.invoke(app, ["merge", str(out), "--out", str(tmp_path / "m")])
    assert result.exit_code == 1
    assert f"{out / 'val.jsonl'}:{len(lines) + 1}: truncated" in result.output
    assert len((tmp_path / "m" / "val.jsonl").read_text().splitlines()) == len(lines)


def test_merge_refuses_an_unfinished_build_and_a_manifest_it_cannot_read(tmp_path: Path) -> None:
    half = tmp_path / "half"
    assert _invoke("build", "--no-progress", "--source", "dota", "--sample", "--dry-run", "--out", str(half)).exit_code == 0
    manifest = json.loads((half / "manifest.json").read_text())
    (half / "manifest.json").write_text(json.dumps({**manifest, "status": "stopped"}))
    result = runner.invoke(app, ["merge", str(half), "--out", str(tmp_path / "m")])
    assert result.exit_code == 2 and "did not finish" in result.output
    manifest["counts"]["records"] = "many"
    (half / "manifest.json").write_text(json.dumps(manifest))
    result = runner.invoke(app, ["merge", str(half), "--out", str(tmp_path / "m")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {half / 'manifest.json'}: not a run report: counts.records: "
        "Input should be a valid integer, unable to parse string as an integer"]


def test_bad_shard_spec_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["build", "--source", "dota", "--sample", "--dry-run", "--shard", "4/3",
                                 "--out", str(tmp_path)])
    assert result.exit_code == 2 and "--shard" in result.output
