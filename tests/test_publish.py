"""Publishing: the hf export's forms and shards, its dataset card and Croissant file, and the upload to a
loopback stand-in for the Hub (tests/mock_hub.py); a recipe build of four sources exported and loaded
offline from another folder, as a user would."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from itertools import takewhile
from pathlib import Path

import pytest
import yaml
from mock_hub import MockHub
from PIL import Image
from typer.testing import CliRunner

import rsgpt4v.tools.publishing.hf_folder as hf_folder
from rsgpt4v.cli import app
from rsgpt4v.core.card_facts import RSGPT4V_CITATION, CardFacts, License, bibtex_entries
from rsgpt4v.core.hub_terms import check_front_matter
from rsgpt4v.sources import available
from rsgpt4v.tools.export import export
from rsgpt4v.tools.publishing.publication import MIXED_LICENSE_NAME, choose_licence
from scripts.native_tree import write_tree

REPO = Path(__file__).resolve().parents[1]
MIX_SOURCES = ("rsicd", "rsvqa-lr", "dior-rsvg", "floodnet-vqa")
EPOCH = "1767225600"  # 2026-01-01


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*args], catch_exceptions=False)
    return result.exit_code, result.output


def records(out: Path) -> list[dict]:
    return [json.loads(line) for f in sorted(out.glob("*.jsonl")) for line in f.read_text().splitlines()]


def front(card: Path) -> dict:
    text = card.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def table(card: str, heading: str) -> list[list[str]]:
    """The first Markdown table after `heading`, as rows of cells: the header, then the body."""
    lines = card.split(heading, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in takewhile(lambda x: x.startswith("|"),
                                                                                    lines[start:])]
    return [rows[0], *rows[2:]]


def bibtex_blocks(card: str) -> list[str]:
    return re.findall(r"```bibtex\n(.*?)\n```", card, re.DOTALL)


@pytest.fixture(scope="module")
def mix(tmp_path_factory) -> Path:
    """A dry-run recipe build of four sources of the synthetic native tree."""
    data = tmp_path_factory.mktemp("tree") / "data"
    write_tree(data, per_source=5)
    recipe = tmp_path_factory.mktemp("recipe") / "four.yaml"
    recipe.write_text("seed: 0\nsources:\n  - {source: rsicd, root: rsicd, stages: [global, dialogue]}\n"
                      "  - {source: rsvqa-lr, root: rsvqa-lr, stages: []}\n"
                      "  - {source: dior-rsvg, root: dior-rsvg}\n"
                      "  - {source: floodnet-vqa, root: floodnet-vqa, stages: []}\n", encoding="utf-8")
    out = tmp_path_factory.mktemp("mix") / "out"
    code, output = run("build", "--recipe", str(recipe), "--data", str(data), "--dry-run", "--no-progress",
                       "--out", str(out))
    assert code == 0, output
    return out


@pytest.fixture(scope="module")
def mix_hf(mix: Path, tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("mix_hf") / "hf"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOURCE_DATE_EPOCH", EPOCH)
        code, output = run("export", str(mix), "--out", str(dest), "--format", "hf")
    assert code == 0, output
    assert "form: Parquet shards with each image's bytes embedded" in output
    return dest


# ---- the issue's "done when": a recipe of several sources, exported, loaded, described ----------

def test_recipe_export_loads_offline_from_another_folder_with_every_record(mix: Path, mix_hf: Path,
                                                                           tmp_path: Path) -> None:
    script = ("import datasets, json, sys\n"
              "ds = datasets.load_dataset(sys.argv[1])\n"
              "print(json.dumps({s: [[r['id'], list(r['image'].size)] for r in ds[s]] for s in ds}))\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "home"),
           "HF_DATASETS_CACHE": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-c", script, str(mix_hf)], cwd=elsewhere, env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    built = {split: [json.loads(line) for line in (mix / f"{split}.jsonl").read_text().splitlines()]
             for split in ("train", "val", "test")}
    assert {s: len(rows) for s, rows in loaded.items()} == {s: len(rows) for s, rows in built.items()}
    assert {r["source"] for rows in built.values() for r in rows} == set(MIX_SOURCES)
    for split, rows in built.items():
        assert [row[0] for row in loaded[split]] == [r["id"] for r in rows]
        for (_, size), record in zip(loaded[split], rows):
            with Image.open(mix / record["image"]) as im:
                assert tuple(size) == im.size  # decoded from the embedded bytes


def test_card_front_matter_parses_and_has_what_the_hub_asks(mix_hf: Path) -> None:
    from huggingface_hub import DatasetCard

    meta = front(mix_hf / "README.md")
    assert check_front_matter(meta) == []
    titles = [available()[s].card.title for s in sorted(MIX_SOURCES)]
    assert meta["license"] == "other" and meta["license_name"] == MIXED_LICENSE_NAME
    assert meta["license_link"] == "LICENSE.md" and (mix_hf / "LICENSE.md").is_file()
    assert meta["task_categories"][0] == "image-text-to-text" and "visual-question-answering" in meta["task_categories"]
    assert {"remote-sensing", "aerial-imagery", "instruction-tuning"} <= set(meta["tags"])
    assert meta["size_categories"] == ["n<1K"] and meta["language"] == ["en"]
    assert meta["source_datasets"] == titles and meta["pretty_name"]
    assert meta["configs"] == [{"config_name": "default", "data_files": [
        {"split": s, "path": f"data/{s}-*.parquet"} for s in ("train", "val", "test")]}]
    card = DatasetCard((mix_hf / "README.md").read_text(encoding="utf-8"))  # huggingface_hub reads it back
    assert card.data.license == "other" and card.data.task_categories == meta["task_categories"]


def test_card_counts_equal_the_records(mix: Path, mix_hf: Path) -> None:
    card = (mix_hf / "README.md").read_text(encoding="utf-8")
    rows = table(card, "## Contents")
    header, body = rows[0], rows[1:]
    found = {(row[0], task): int(n) for row in body[:-1] for task, n in zip(header[1:-1], row[1:-1])}
    expected = Counter((r["source"], r["task"]) for r in records(mix))
    assert {k: n for k, n in found.items() if n} == dict(expected)
    assert body[-1][0] == "**total**" and int(body[-1][-1]) == sum(expected.values()) == len(records(mix))
    splits = {row[0]: int(row[1]) for row in table(card, "Records per split:")[1:]}
    assert splits == dict(Counter(r["split"] for r in records(mix)))
    lengths = {row[0]: row for row in table(card, "Answer lengths in words")[1:]}
    assert set(lengths) == {r["task"] for r in records(mix)}
    answers = Counter(r["task"] for r in records(mix) for t in r["conversations"] if t["from"] == "gpt")
    assert {task: int(row[1]) for task, row in lengths.items()} == dict(answers)


def test_card_cites_rsgpt4v_and_every_source_present(mix: Path, mix_hf: Path) -> None:
    assert list(json.loads((mix / "manifest.json").read_text())["cards"]) == sorted(MIX_SOURCES)
    card = (mix_hf / "README.md").read_text(encoding="utf-8")
    blocks = bibtex_blocks(card)
    assert blocks[0] == RSGPT4V_CITATION
    keys = {e.key for block in blocks for e in bibtex_entries(block)}
    for name in MIX_SOURCES:
        assert {e.key for e in bibtex_entries(available()[name].card.citation)} <= keys, name
    licence = (mix_hf / "LICENSE.md").read_text(encoding="utf-8")
    for name in MIX_SOURCES:
        facts = available()[name].card
        assert f"## {facts.title} (`{name}`)" in licence and facts.license.stated_in in licence
    assert "second-hand" in licence  # RSVQA's licence is known only second-hand, and says so
    assert "No licence is stated by the authors of" in card


def test_figures_exist_and_are_referenced(mix_hf: Path) -> None:
    card = (mix_hf / "README.md").read_text(encoding="utf-8")
    for path in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", card):
        with Image.open(mix_hf / path) as im:
            assert im.format == "PNG" and im.width == 960 and im.height > 100
    assert set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", card)) == {"figures/task_mix.png", "figures/answer_lengths.png"}


def test_croissant_validates_and_its_records_are_the_rows(mix: Path, mix_hf: Path) -> None:
    mlc = pytest.importorskip("mlcroissant")
    dataset = mlc.Dataset(jsonld=mix_hf / "croissant.json")
    assert dataset.metadata.ctx.issues.errors == set()
    assert all("version" in w for w in dataset.metadata.ctx.issues.warnings)  # left for the publisher to set
    rows = list(dataset.records("records"))
    built = records(mix)
    assert sorted(r["records/id"].decode() for r in rows) == sorted(r["id"] for r in built)
    first = next(r for r in rows if r["records/id"].decode() == built[0]["id"])
    with Image.open(mix / built[0]["image"]) as im:
        assert first["records/image"].size == im.size
    turns = [(t["records/conversations/from"].decode(), t["records/conversations/value"].decode())
             for t in first["records/conversations"]]
    assert turns == [(t["from"], t["value"]) for t in built[0]["conversations"]]
    doc = json.loads((mix_hf / "croissant.json").read_text())
    assert [d["name"] for d in doc["isBasedOn"]] == [available()[s].card.title for s in sorted(MIX_SOURCES)]
    assert doc["datePublished"] == "2026-01-01" and RSGPT4V_CITATION in doc["citeAs"]


# ---- forms, shards, determinism ------------------------------------------------------------------

def test_export_made_twice_is_byte_identical(sample_build: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    a, b = export(sample_build, tmp_path / "a", "hf"), export(sample_build, tmp_path / "b", "hf")
    files = sorted(p.relative_to(a.dest) for p in a.files)
    assert files == sorted(p.relative_to(b.dest) for p in b.files)
    assert all((a.dest / f).read_bytes() == (b.dest / f).read_bytes() for f in files)
    assert "2026-01-01" in (a.dest / "README.md").read_text()


def test_shards_stay_under_the_limit_and_a_new_export_replaces_them(sample_build: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    datasets = pytest.importorskip("datasets")
    pq = pytest.importorskip("pyarrow.parquet")
    dest = tmp_path / "hf"
    image = max((sample_build / "images").rglob("*.png"), key=lambda p: p.stat().st_size).stat().st_size
    limit = 3 * image
    monkeypatch.setattr(hf_folder, "MAX_SHARD_BYTES", limit)
    report = export(sample_build, dest, "hf")
    shards = report.data_files["train"]
    assert len(shards) > 2
    assert [p.name for p in shards] == [f"train-{i:05d}-of-{len(shards):05d}.parquet" for i in range(len(shards))]
    for shard in shards:
        rows = pq.read_table(shard).to_pylist()
        assert len(rows) == 1 or sum(hf_folder._row_bytes(r) for r in rows) <= limit
    ds = datasets.load_dataset(str(dest), cache_dir=str(tmp_path / "cache"))
    assert ds["train"].num_rows == report.records["train"] and isinstance(ds["train"].features["image"],
                                                                          datasets.Image)
    monkeypatch.undo()
    again = export(sample_build, dest, "hf")
    assert sorted((dest / "data").iterdir()) == sorted(p for ps in again.data_files.values() for p in ps)
    assert [p.name for p in again.data_files["train"]] == ["train-00000-of-00001.parquet"]


def test_the_parquet_schema_is_an_image_feature_to_datasets() -> None:
    datasets = pytest.importorskip("datasets")
    features = datasets.Features.from_arrow_schema(hf_folder.hf_schema())
    assert isinstance(features["image"], datasets.Image)
    assert features["meta"] == datasets.Value("string")


def test_without_pyarrow_the_export_says_json_lines_and_how_to_get_parquet(sample_build: Path, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    find_spec = hf_folder.importlib.util.find_spec
    monkeypatch.setattr(hf_folder.importlib.util, "find_spec",
                        lambda name, *a: None if name == "pyarrow" else find_spec(name, *a))
    dest = tmp_path / "hf"
    code, output = run("export", str(sample_build), "--out", str(dest), "--format", "hf")
    assert code == 0, output
    assert "form: JSON Lines with image paths, because pyarrow is not installed" in output
    assert 'pip install "rsgpt4v[hf]"' in output
    assert not (dest / "data").exists()
    meta = front(dest / "README.md")
    assert meta["configs"][0]["data_files"] == [{"split": "train", "path": "train.jsonl"},
                                                {"split": "val", "path": "val.jsonl"}]
    rows = [json.loads(line) for line in (dest / "train.jsonl").read_text().splitlines()]
    assert all((dest / r["image"]).is_file() for r in rows)
    assert "the Hub's viewer shows no pictures" in (dest / "README.md").read_text()
    mlc = pytest.importorskip("mlcroissant")
    assert len(list(mlc.Dataset(jsonld=dest / "croissant.json").records("records"))) == \
        sum(1 for _ in records(sample_build))


def test_a_split_name_datasets_refuses_is_named(sample_build: Path, tmp_path: Path) -> None:
    copy = tmp_path / "out"
    shutil.copytree(sample_build, copy)
    (copy / "val.jsonl").rename(copy / "val-hard.jsonl")
    code, output = run("export", str(copy), "--out", str(tmp_path / "hf"), "--format", "hf")
    assert code == 2
    assert output.count("\n") == 1 and "val-hard.jsonl" in output and "letters, digits and _" in output


def test_an_unreadable_manifest_is_named_and_the_card_says_so(sample_build: Path, tmp_path: Path) -> None:
    copy = tmp_path / "out"
    shutil.copytree(sample_build, copy)
    (copy / "manifest.json").write_text("{not json", encoding="utf-8")
    report = export(copy, tmp_path / "hf", "hf")
    assert any("manifest.json:1" in p and "cannot say how the records were made" in p for p in report.problems)
    card = (tmp_path / "hf" / "README.md").read_text()
    assert "how the records were made is not known" in card
    assert front(tmp_path / "hf" / "README.md")["license"] == "unknown"  # no facts read: none claimed


def test_single_source_card_names_that_sources_own_terms(sample_build: Path, tmp_path: Path) -> None:
    export(sample_build, tmp_path / "hf", "hf")
    meta = front(tmp_path / "hf" / "README.md")
    dota = available()["dota"].card.license
    assert (meta["license"], meta["license_name"], meta["license_link"]) == ("other", dota.slug, dota.link)
    card = (tmp_path / "hf" / "README.md").read_text()
    assert "**Not training data**" in card and "version v1.0" in card
    assert "Built from one source: no check for the same picture" in card


def _facts(license_id: str, name: str = "x", link: str | None = "https://example.org/terms") -> CardFacts:
    licence = License(id=license_id, name="unknown" if license_id == "unknown" else name,
                      link=None if license_id == "unknown" else link, stated_in="x")
    return CardFacts(title=name, homepage="", license=licence, citation="", citation_from="x")


@pytest.mark.parametrize(("ids", "chosen"), [
    (["cc-by-nc-4.0", "cc-by-nc-4.0"], ("cc-by-nc-4.0", None, None)),
    (["unknown", "unknown"], ("unknown", None, None)),
    (["cc-by-4.0", "unknown"], ("other", MIXED_LICENSE_NAME, "LICENSE.md")),
    (["other", "other"], ("other", MIXED_LICENSE_NAME, "LICENSE.md")),
    (["other"], ("other", "x-terms", "https://example.org/terms")),
])
def test_the_front_matter_licence(ids: list[str], chosen: tuple) -> None:
    facts = {f"s{i}": _facts(i_d, "x terms") for i, i_d in enumerate(ids)}
    got = choose_licence(facts)
    assert (got.id, got.name, got.link) == chosen


# ---- push to the Hub (a loopback stand-in; never the network) ----------------------------------

@pytest.fixture
def hub() -> MockHub:
    server = MockHub()
    yield server
    server.close()


def _push(hub: MockHub, build: Path, dest: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
           "HF_TOKEN": "hf_fake", "HF_HOME": str(tmp_path / "hf_home"), "SOURCE_DATE_EPOCH": EPOCH}
    return subprocess.run([sys.executable, "-m", "rsgpt4v", "export", str(build), "--out", str(dest), "--format", "hf",
                           "--push-to-hub", "someone/rs-sample", *extra], env=env, capture_output=True, text=True,
                          timeout=300, cwd=REPO)


def test_push_to_hub_uploads_exactly_the_export(hub: MockHub, sample_build: Path, tmp_path: Path) -> None:
    dest = tmp_path / "hf"
    result = _push(hub, sample_build, dest, tmp_path, "--private")
    assert result.returncode == 0, result.stderr
    assert "pushed to https://huggingface.co/datasets/someone/rs-sample" in result.stdout
    (create,) = hub.posted("/api/repos/create")
    assert create["body"]["name"] == "rs-sample" and create["body"]["organization"] == "someone"
    assert create["body"]["type"] == "dataset" and create["body"]["visibility"] == "private"
    assert create["auth"] == "Bearer hf_fake"
    readme = (dest / "README.md").read_text(encoding="utf-8")
    assert {r["body"]["content"] for r in hub.posted("/api/validate-yaml")} == {readme}
    assert 'load_dataset("someone/rs-sample")' in readme
    local = {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    (committed,) = hub.commits
    assert committed == local
    assert any(name.endswith(".parquet") for name in committed)
    doc = json.loads(committed["croissant.json"])
    assert doc["url"] == "https://huggingface.co/datasets/someone/rs-sample" and doc["name"] == "rs-sample"


def test_a_card_the_hub_refuses_is_one_line_exit_2(hub: MockHub, sample_build: Path, tmp_path: Path) -> None:
    hub.refuse = '"license" must be one of [apache-2.0, mit, ...]'
    result = _push(hub, sample_build, tmp_path / "hf", tmp_path)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "must be one of" in errors[0] and "someone/rs-sample" in errors[0]
    assert hub.commits == []


def test_push_without_huggingface_hub_names_the_extra(sample_build: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    result = CliRunner().invoke(app, ["export", str(sample_build), "--out", str(tmp_path / "hf"), "--format", "hf",
                                      "--push-to-hub", "someone/x"])
    assert result.exit_code == 2
    assert 'pip install "rsgpt4v[hub]"' in result.output
    assert (tmp_path / "hf" / "README.md").is_file()  # the export itself was written


def test_push_to_hub_is_for_the_hf_format(sample_build: Path, tmp_path: Path) -> None:
    code, output = run("export", str(sample_build), "--out", str(tmp_path / "x"), "--format", "llava-json",
                       "--push-to-hub", "someone/x")
    assert code == 2 and "--format hf" in output and output.count("\n") == 1


def test_judge_verdicts_in_the_records_are_counted_on_the_card(sample_build: Path, tmp_path: Path) -> None:
    copy = tmp_path / "out"
    shutil.copytree(sample_build, copy)
    lines = (copy / "train.jsonl").read_text().splitlines()
    judged = []
    for i, line in enumerate(lines):
        record = json.loads(line)
        if record["meta"]["model"]:  # model-made records carry the judge's verdict
            record["meta"]["judge"] = {"model": "gpt-4o-mini", "verdict": "supported" if i % 3 else "not_visible",
                                       "notes": []}
            judged.append(record["meta"]["judge"]["verdict"])
        lines[i] = json.dumps(record)
    (copy / "train.jsonl").write_text("\n".join(lines) + "\n")
    export(copy, tmp_path / "hf", "hf")
    card = (tmp_path / "hf" / "README.md").read_text()
    counts = Counter(judged)
    assert (f"- Judge `gpt-4o-mini`: {len(judged)} exported records checked against their image (not_visible "
            f"{counts['not_visible']}, supported {counts['supported']}).") in card
    export(sample_build, tmp_path / "plain", "hf")
    assert "Judge" not in (tmp_path / "plain" / "README.md").read_text()


def test_a_card_the_hub_would_refuse_is_never_written(sample_build: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import rsgpt4v.tools.publishing.card as card

    monkeypatch.setattr(card, "TAGS", [])
    code, output = run("export", str(sample_build), "--out", str(tmp_path / "hf"), "--format", "hf")
    assert code == 2 and "front matter would be refused: no tags" in output
    assert not any((tmp_path / "hf" / name).exists() for name in ("README.md", "LICENSE.md", "figures"))


def test_an_image_that_cannot_be_read_into_the_parquet_is_named_and_skipped(sample_build: Path, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    first = json.loads((sample_build / "train.jsonl").read_text().splitlines()[0])["image"]
    read_bytes = Path.read_bytes

    def refuse(path: Path) -> bytes:
        if path.as_posix().endswith(first):
            raise PermissionError(13, "Permission denied")
        return read_bytes(path)

    monkeypatch.setattr(Path, "read_bytes", refuse)
    report = export(sample_build, tmp_path / "hf", "hf")
    unreadable = [r for r in records(sample_build) if r["image"] == first]
    assert report.skipped == len(unreadable) > 0
    assert all(f"image {first} cannot be read (Permission denied)" in p for p in report.problems)
    assert report.tally.total == len(records(sample_build)) - len(unreadable)
