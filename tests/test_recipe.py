"""Recipes end to end: the bundled rs-gpt4v recipe over a synthetic tree of its ten sources in their
native layouts, with pictures planted across sources and splits; recipe errors; the mix knobs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rsgpt4v.builder.identity import fingerprint
from rsgpt4v.builder.recipe import RecipeError, load_recipe
from rsgpt4v.cli import app
from scripts.native_tree import SOURCES, write_tree


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*args], catch_exceptions=False)
    return result.exit_code, result.output


def records(out: Path) -> list[dict]:
    return [json.loads(line) for f in sorted(out.glob("*.jsonl")) for line in f.read_text().splitlines()]


def data_files(out: Path) -> dict[str, bytes]:
    files = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*")
             if p.is_file() and (p.suffix == ".jsonl" and p.parent == out or "images" in p.parts)}
    return dict(sorted(files.items()))


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("tree") / "data"
    write_tree(data, per_source=5)
    return data


@pytest.fixture(scope="module")
def built(tree: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("built") / "out"
    code, output = run("build", "--recipe", "rs-gpt4v", "--data", str(tree), "--dry-run", "--no-progress",
                       "--out", str(out))
    assert code == 0, output
    return out


def write_recipe(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ---- the bundled recipe over ten sources ---------------------------------------------------------

def test_rs_gpt4v_builds_all_ten_sources_into_one_dataset(built: Path) -> None:
    from rsgpt4v.tools.validate import validate

    recs = records(built)
    assert {r["source"] for r in recs} == set(SOURCES)
    assert validate([built]).count == 0
    assert len({r["id"] for r in recs}) == len(recs)
    manifest = json.loads((built / "manifest.json").read_text())
    assert set(manifest["sources"]) == set(SOURCES)
    assert manifest["counts"]["records"] == len(recs)
    assert manifest["sources"]["rsvqa-hr"]["targets"]["caps"] == {"vqa": 200000}
    assert manifest["sources"]["rsicd"]["targets"]["stages"] == ["global", "dialogue"]
    assert manifest["mix"]["rsvqa-hr"]["vqa"]["cap"] == 200000
    # per-source stages: the VQA sources made no LLM records, the captioning ones did
    assert {r["task"] for r in recs if r["source"] == "rsvqa-lr"} == {"vqa"}
    assert "multi_turn_reasoning" in {r["task"] for r in recs if r["source"] == "rsicd"}
    # interleaved: the training file is not one block per source
    train = [json.loads(x)["source"] for x in (built / "train.jsonl").read_text().splitlines()]
    runs = sum(1 for a, b in zip(train, train[1:]) if a != b)
    assert runs > len(SOURCES)
    # one cache, the images of every source under OUT/images
    assert (built / "cache.sqlite").is_file() and not list((built / "parts").glob("*/cache.sqlite"))
    assert all((built / r["image"]).is_file() for r in recs)


def test_stats_shows_each_sources_share_beside_the_targets(built: Path) -> None:
    code, output = run("stats", str(built))
    assert code == 0
    mix = output[output.index("mix (records found"):]
    lines = {line.split()[0]: line for line in mix.splitlines()[2:] if line and not line.startswith(" ")}
    assert set(lines) == set(SOURCES)
    vqa_hr = mix.splitlines()[mix.splitlines().index(lines["rsvqa-hr"]) + 1]
    assert vqa_hr.split()[0] == "vqa" and vqa_hr.split()[3] == "200,000"
    shares = [float(line.split()[2].rstrip("%")) for line in lines.values()]
    assert abs(sum(shares) - 100) < 0.2


def test_rerun_is_byte_identical_and_sends_nothing(built: Path, tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "again"
    shutil.copytree(built, out, symlinks=True)
    before = data_files(out)
    code, output = run("build", "--recipe", "rs-gpt4v", "--data", str(tree), "--dry-run", "--no-progress",
                       "--out", str(out))
    assert code == 0, output
    assert data_files(out) == before
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["usage"]["api_calls"] == 0 and manifest["usage"]["cache_hits"] > 0


# ---- leakage -------------------------------------------------------------------------------------

def test_planted_duplicates_are_clustered(built: Path) -> None:
    leakage = json.loads((built / "manifest.json").read_text())["leakage"]
    found = {frozenset((m["source"], m["split"], m["image_id"]) for m in c["members"]): c for c in leakage["list"]}
    tree = write_tree(built.parent / "plants", per_source=5)
    for plant in tree.plants:
        key = frozenset({(plant.source, plant.split, plant.image_id),
                         (plant.copy_source, plant.copy_split, plant.copy_id)})
        assert key in found, plant
        assert found[key]["match"] == ("exact" if plant.how == "identical" else "near")
        assert "cross_source_leak" in found[key]["kinds"]
    assert {p.how for p in tree.plants} == {"identical", "resized", "cropped", "jpeg"}
    within = frozenset({("dior-rsvg", "train", "00001"), ("dior-rsvg", "test", "00001")})
    assert found[within]["kinds"] == ["within_source_overlap"]
    # each member is named by its source and its file relative to that source's root
    for cluster in leakage["list"]:
        for m in cluster["members"]:
            assert (tree.root / m["source"] / m["path"]).is_file(), m
    assert leakage["dropped_from_train"] == {p.copy_source: 1 for p in tree.plants}


def test_no_training_record_shows_an_evaluation_picture_of_another_source(built: Path) -> None:
    recs = records(built)
    prints = {r["image"]: fingerprint(built / r["image"], 400_000_000) for r in recs}
    evaluation = [(r["source"], prints[r["image"]]) for r in recs if r["split"] != "train"]
    for r in recs:
        if r["split"] != "train":
            continue
        mine = prints[r["image"]]
        for source, other in evaluation:
            if source != r["source"]:
                assert (mine.dhash ^ other.dhash).bit_count() > 8 or (mine.ahash ^ other.ahash).bit_count() > 8, r["id"]
    manifest = json.loads((built / "manifest.json").read_text())
    assert manifest["sources"]["rsivqa"]["left_out"] == {"leakage: evaluation image of another source": 1}


def test_report_policy_keeps_and_fail_policy_stops(tree: Path, tmp_path: Path) -> None:
    body = ("sources:\n  - {source: ucm-captions, root: ucm-captions, stages: []}\n"
            "  - {source: rsivqa, root: rsivqa, stages: []}\n")
    report = write_recipe(tmp_path / "report.yaml", "leakage: report\n" + body)
    code, output = run("build", "--recipe", str(report), "--data", str(tree), "--dry-run", "--no-progress",
                       "--out", str(tmp_path / "r"))
    assert code == 0, output
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["leakage"]["dropped_from_train"] == {} and manifest["leakage"]["by_kind"]["cross_source_leak"] == 1
    assert any(r["id"].startswith("rsivqa/train/UCM_4/") for r in records(tmp_path / "r"))
    fail = write_recipe(tmp_path / "fail.yaml", "leakage: fail\n" + body)
    code, output = run("build", "--recipe", str(fail), "--data", str(tree), "--dry-run", "--no-progress",
                       "--out", str(tmp_path / "f"))
    assert code == 2
    assert "rsivqa train UCM/images/4.tif = ucm-captions val imgs/4.tif" in output and len(output.strip().splitlines()) == 1


# ---- bad recipes ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "line", "words"), [
    ("sources:\n  - source: rsicd\n    root: rsicd\n  - source: landsat\n    root: x\n", 4, "unknown source 'landsat'"),
    ("sources:\n  - source: rsicd\n    root: nowhere\n", 2, "root"),
    ("sources:\n  - source: rsicd\n    root: rsicd\n    caps: {caption: lots}\n", 4,
     "sources[0].caps.caption: expected a whole number, got 'lots'"),
    ("sources:\n  - source: rsicd\n    root: rsicd\n  - source: rsicd\n    root: rsitmd\n", 4,
     "listed twice (first at line 2)"),
    ("sources:\n  - source: rsicd\n    root: rsicd\n    stages: [local, summary]\n", 4, "sources[0].stages[1]"),
    ("seed: 0\nsources:\n  - source: rsicd\n    root: rsicd\n    colour: red\n", 5, "colour: unknown key"),
    ("sources: [\n", 2, "not valid YAML"),
    ("sources:\n  - source: rsicd\n    root: rsicd\n    splits: [train, tset]\n", 2,
     "rsicd: splits: 'tset' is not a split of its data under"),
])
def test_bad_recipe_exits_2_with_one_line_naming_the_recipe_line(tree: Path, tmp_path: Path, text: str, line: int,
                                                                 words: str) -> None:
    recipe = write_recipe(tmp_path / "mix.yaml", text)
    code, output = run("build", "--recipe", str(recipe), "--data", str(tree), "--dry-run", "--no-progress",
                       "--out", str(tmp_path / "out"))
    assert code == 2
    assert len(output.strip().splitlines()) == 1
    assert f"{recipe}:{line}:" in output and words in output, output


def test_a_cap_on_a_task_the_source_never_writes_is_named(tree: Path, tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path / "mix.yaml", "sources:\n  - source: rsicd\n    root: rsicd\n    stages: []\n"
                                                 "    caps: {captoin: 3, caption: 2}\n")
    code, output = run("build", "--recipe", str(recipe), "--data", str(tree), "--dry-run", "--no-progress",
                       "--out", str(tmp_path / "out"))
    assert code == 0, output
    assert (f"{recipe}:2: rsicd: caps: no 'captoin' record was built (its tasks: caption, classification); "
            "the cap does nothing") in output
    assert "'caption'" not in output


def test_skip_missing_reports_the_missing_root_and_builds_the_rest(tree: Path, tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path / "mix.yaml", "sources:\n  - {source: rsicd, root: rsicd, stages: []}\n"
                                                 "  - {source: rsitmd, root: gone, stages: []}\n")
    code, output = run("build", "--recipe", str(recipe), "--data", str(tree), "--dry-run", "--no-progress",
                       "--skip-missing", "--out", str(tmp_path / "out"))
    assert code == 0, output
    assert {r["source"] for r in records(tmp_path / "out")} == {"rsicd"}
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["sources"]["rsitmd"]["status"] == "missing" and "gone" in manifest["sources"]["rsitmd"]["reason"]
    assert "(root missing)" in run("stats", str(tmp_path / "out"))[1]


def test_bundled_recipes_load_and_name_known_sources() -> None:
    from rsgpt4v.sources import available

    for name in ("rs-gpt4v", "detection", "all"):
        recipe = load_recipe(name)
        assert {s.source for s in recipe.sources} <= set(available())
    assert [s.source for s in load_recipe("rs-gpt4v").sources] == list(SOURCES[:5]) + list(SOURCES[5:])
    with pytest.raises(RecipeError, match="bundled: all, detection, rs-gpt4v"):
        load_recipe("nope")


# ---- the mix knobs -------------------------------------------------------------------------------

def test_caps_weights_max_images_and_seeded_order(tree: Path, tmp_path: Path) -> None:
    text = ("seed: {seed}\nsources:\n"
            "  - {{source: rsicd, root: rsicd, stages: [], caps: {{caption: 3}}}}\n"
            "  - {{source: sydney-captions, root: sydney-captions, stages: [], weight: 2}}\n"
            "  - {{source: rsvqa-lr, root: rsvqa-lr, stages: [], max_images: 2}}\n"
            "  - {{source: nwpu-captions, root: nwpu-captions, stages: [], splits: [test]}}\n")
    outs = {}
    for seed in (0, 0, 1):
        recipe = write_recipe(tmp_path / f"mix{seed}.yaml", text.format(seed=seed))
        out = tmp_path / f"out{len(outs)}"
        code, output = run("build", "--recipe", str(recipe), "--data", str(tree), "--dry-run", "--no-progress",
                           "--out", str(out))
        assert code == 0, output
        outs[out] = records(out)
    first, same, other = outs.values()
    assert [r["id"] for r in first] == [r["id"] for r in same]
    assert [r["id"] for r in first] != [r["id"] for r in other]
    assert sorted(r["id"] for r in first) != [] and {r["source"] for r in first} == {
        "rsicd", "sydney-captions", "rsvqa-lr", "nwpu-captions"}
    train = [r for r in first if r["split"] == "train"]
    assert sum(r["task"] == "caption" and r["source"] == "rsicd" for r in train) == 3
    assert sum(r["task"] == "caption" and r["source"] == "rsicd" for r in first if r["split"] != "train") > 0
    sydney = [r["id"] for r in train if r["source"] == "sydney-captions"]
    assert len(sydney) == 2 * len({i.split("#")[0] for i in sydney})
    assert len({r["image"] for r in first if r["source"] == "rsvqa-lr"}) == 2
    assert {r["split"] for r in first if r["source"] == "nwpu-captions"} == {"test"}
    manifest = json.loads((tmp_path / "out0" / "manifest.json").read_text())
    assert manifest["mix"]["rsicd"]["caption"]["capped"] > 0
    assert manifest["sources"]["rsvqa-lr"]["left_out"] == {"not drawn (max_images)": 3}


def test_shards_of_a_recipe_partition_it(tree: Path, tmp_path: Path) -> None:
    recipe = write_recipe(tmp_path / "mix.yaml", "sources:\n  - {source: rsicd, root: rsicd, stages: []}\n"
                                                 "  - {source: rsvqa-hr, root: rsvqa-hr, stages: []}\n")
    ids = []
    for k in ("", "1/2", "2/2"):
        out = tmp_path / f"out{k.replace('/', '')}"
        code, output = run("build", "--recipe", str(recipe), "--data", str(tree), "--dry-run", "--no-progress",
                           "--out", str(out), *(["--shard", k] if k else []))
        assert code == 0, output
        ids.append({r["id"] for r in records(out)})
    whole, one, two = ids
    assert one and two and not one & two and one | two == whole
    # merged back, the shards report the recipe as the whole build does: each source's figures added up
    code, output = run("merge", str(tmp_path / "out12"), str(tmp_path / "out22"), "--out", str(tmp_path / "merged"))
    assert code == 0, output
    merged, full = (json.loads((tmp_path / d / "manifest.json").read_text()) for d in ("merged", "out"))
    assert merged["mix"] == full["mix"] and merged["leakage"] == full["leakage"] and merged["recipe"] == full["recipe"]
    for name, section in full["sources"].items():
        for key in ("samples", "windows", "records_built", "records_written", "dropped_for_leakage", "issues",
                    "targets", "status"):
            assert merged["sources"][name][key] == section[key], (name, key)
    assert merged["issues"]["by_reason"] == full["issues"]["by_reason"]


def test_estimate_speaks_recipes(tree: Path) -> None:
    code, output = run("estimate", "--recipe", "rs-gpt4v", "--data", str(tree), "--json")
    assert code == 0, output
    table, _ = json.JSONDecoder().raw_decode(output)  # warnings about the input follow the table
    stages = {row["stage"]: row for row in table["stages"]}
    assert set(stages) == {"local", "global", "dialogue", "judge", "total"}
    # the five captioning sources (5 images each) and DIOR-RSVG (6 samples: one image in two splits) get
    # global; leakage drops an RSICD and an NWPU training image before anything is counted
    # (and the answers the recipe's judge sent back are asked once more)
    back = table["judge_sent_back"]
    assert stages["global"]["requests"] - back.get("global", 0) == 5 * 5 + 6 - 2
    assert stages["dialogue"]["requests"] - back.get("dialogue", 0) == 5 * 5 + 6 - 2
    # the recipe's judge (gpt-4o-mini) reads every window with answers, priced at its own model
    assert table["judge"] == "gpt-4o-mini" and stages["judge"]["requests"] >= 5 * 5 + 6 - 2
    assert stages["judge"]["usd_live"] < stages["global"]["usd_live"]
    assert table["images"] == 10 * 5 + 2 + 1 - 4


def test_sources_lists_every_adapters_split_mapping() -> None:
    from rsgpt4v.sources import available

    code, output = run("sources")
    assert code == 0
    assert all(cls.split_rule for cls in available().values())
    rsivqa = output[output.index("\nrsivqa "):].splitlines()[2]
    assert rsivqa.strip().startswith("splits:") and "HRRSD/opt_val_vqa.txt -> val" in rsivqa


def coco_growing_vocabulary(root: Path) -> Path:
    """COCO files whose categories grow from file to file: the adapter's vocabulary is what it has read."""
    from test_coco import CATEGORIES, make_coco

    make_coco(root)
    train = json.loads((root / "annotations" / "instances_train2017.json").read_text())
    train["categories"] = CATEGORIES[:1]
    train["annotations"] = [a for a in train["annotations"] if a["category_id"] == 3]
    (root / "annotations" / "instances_train2017.json").write_text(json.dumps(train))
    val = json.loads((root / "annotations" / "instances_val2017.json").read_text())
    val["categories"] = CATEGORIES
    val["annotations"].append({"id": 5, "image_id": 139, "category_id": 17, "bbox": [4, 4, 2, 2], "iscrowd": 0})
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(val))
    return root


@pytest.mark.parametrize("source", ["dota", "coco"])
def test_a_recipe_of_one_source_writes_what_the_single_source_build_writes(tmp_path: Path, source: str) -> None:
    from rsgpt4v.sources import sample_root

    root = sample_root("dota") if source == "dota" else coco_growing_vocabulary(tmp_path / "coco")
    code, output = run("build", "--source", source, "--root", str(root), "--dry-run", "--no-progress", "--out",
                       str(tmp_path / "single"))
    assert code == 0, output
    recipe = write_recipe(tmp_path / "one.yaml", f"sources:\n  - {{source: {source}, root: '{root}'}}\n")
    code, output = run("build", "--recipe", str(recipe), "--dry-run", "--no-progress", "--out", str(tmp_path / "mix"))
    assert code == 0, output
    single = {p.name: p.read_bytes() for p in (tmp_path / "single").glob("*.jsonl")}
    assert single and single == {p.name: p.read_bytes() for p in (tmp_path / "mix").glob("*.jsonl")}


def test_per_source_flags_are_refused_with_a_recipe(tree: Path, tmp_path: Path) -> None:
    for extra, words in ((["--source", "rsicd"], "give --source or --recipe, not both"),
                         (["--root", str(tree)], "--root belongs to one source"),
                         (["--split", "train"], "--split belongs to one source")):
        code, output = run("build", "--recipe", "rs-gpt4v", "--data", str(tree), "--dry-run", "--no-progress",
                           "--out", str(tmp_path / "out"), *extra)
        assert code == 2 and words in output and len(output.strip().splitlines()) == 1, output
    code, output = run("build", "--dry-run", "--out", str(tmp_path / "out"))
    assert code == 2 and "give --source NAME (or --recipe FILE|NAME)" in output


def test_an_unreadable_image_is_counted_named_and_the_rest_builds(tree: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(tree / "rsicd", data / "rsicd")
    broken = sorted((data / "rsicd" / "RSICD_images").iterdir())[0]
    broken.write_bytes(b"not a picture")
    recipe = write_recipe(tmp_path / "mix.yaml", "sources:\n  - {source: rsicd, root: rsicd, stages: []}\n")
    code, output = run("build", "--recipe", str(recipe), "--data", str(data), "--dry-run", "--no-progress",
                       "--out", str(tmp_path / "out"))
    assert code == 0, output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert (manifest["leakage"]["images"], manifest["leakage"]["unreadable_images"]) == (4, 1)
    assert manifest["sources"]["rsicd"]["samples"] == 4
    assert any(broken.name in i["file"] for i in manifest["issues"]["list"])
    assert {r["image"].rsplit("/", 1)[-1].split("__")[0] for r in records(tmp_path / "out")} == {
        p.stem for p in (data / "rsicd" / "RSICD_images").iterdir() if p != broken}
