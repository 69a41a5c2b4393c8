"""`rsgpt4v.tools.export`: box re-rendering without API calls, the four formats, model_vqa files, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import rsgpt4v
from rsgpt4v.records.boxtext import BOX_PATTERNS
from rsgpt4v.tools.export import ExportError, export, main_export

SAMPLE_DOTA = Path(rsgpt4v.__file__).parent / "sample_data" / "dota"


def _build(out: Path, *source: str) -> Path:
    result = CliRunner().invoke(rsgpt4v.cli.app, ["build", "--source", "dota", *source, "--dry-run", "--no-progress",
                                                  "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def _lines(path: Path) -> list[dict]:
    """The records of a JSONL file, `meta` decoded where an export wrote it as a JSON string."""
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [{**r, "meta": json.loads(r["meta"])} if isinstance(r.get("meta"), str) else r for r in rows]


def _records(folder: Path) -> list[dict]:
    return [r for f in sorted(folder.glob("*.jsonl")) for r in _lines(f)]


def _size(record: dict) -> tuple[int, int]:
    x0, y0, x1, y1 = record["meta"]["window"]
    return x1 - x0, y1 - y0


@pytest.fixture(scope="module")
def built(sample_build: Path) -> Path:
    return sample_build


@pytest.fixture(scope="module")
def built_with_test(tmp_path_factory) -> Path:
    """The sample DOTA tree with its val split copied to a test split, built."""
    root = tmp_path_factory.mktemp("dota") / "dota"
    shutil.copytree(SAMPLE_DOTA, root)
    shutil.copytree(root / "val", root / "test")
    return _build(tmp_path_factory.mktemp("build_test"), "--root", str(root))


@pytest.fixture
def damaged(built: Path, tmp_path: Path) -> Path:
    """A copy of the sample build, for tests that edit it."""
    copy = tmp_path / "out"
    shutil.copytree(built, copy)
    return copy


def test_llava_to_llava_is_the_same_records(built: Path, tmp_path: Path) -> None:
    export(built, tmp_path / "same", "llava-jsonl", "llava")
    export(built, tmp_path / "kept", "llava-jsonl", None)
    for split in ("train", "val"):
        original = _lines(built / f"{split}.jsonl")
        assert _lines(tmp_path / "same" / f"{split}.jsonl") == original
        assert _lines(tmp_path / "kept" / f"{split}.jsonl") == original
        # meta is a JSON string in exports: one table schema whatever the records hold
        assert all(isinstance(json.loads(line)["meta"], str)
                   for line in (tmp_path / "same" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines())


def test_geochat_round_trip_back_to_llava_restores_the_text(built: Path, tmp_path: Path) -> None:
    export(built, tmp_path / "geo", "llava-jsonl", "geochat", task_tokens=True)
    export(tmp_path / "geo", tmp_path / "back", "llava-jsonl", "llava")
    assert _lines(tmp_path / "back" / "train.jsonl") == _lines(built / "train.jsonl")


def test_llava_json_is_one_list_with_the_same_records(built: Path, tmp_path: Path) -> None:
    report = export(built, tmp_path / "lj", "llava-json", "geochat")
    assert report.records == {split: len(_lines(built / f"{split}.jsonl")) for split in ("train", "val")}
    jsonl = tmp_path / "jl"
    export(built, jsonl, "llava-jsonl", "geochat")
    for split in ("train", "val"):
        data = json.loads((tmp_path / "lj" / f"{split}.json").read_text(encoding="utf-8"))
        assert isinstance(data, list)
        data = [{**r, "meta": json.loads(r["meta"])} for r in data]
        assert data == _lines(jsonl / f"{split}.jsonl")
        assert [r["id"] for r in data] == [r["id"] for r in _lines(built / f"{split}.jsonl")]


def test_sharegpt_roles_and_image_token(built: Path, tmp_path: Path) -> None:
    export(built, tmp_path / "sg", "sharegpt", "qwen")
    rows = _records(tmp_path / "sg")
    originals = {r["id"]: r for r in _records(built)}
    assert {r["id"] for r in rows} == set(originals)
    for row in rows:
        assert set(row) == {"id", "images", "messages"}
        assert row["images"] == [originals[row["id"]]["image"]]
        roles = [m["role"] for m in row["messages"]]
        assert roles == ["user", "assistant"] * (len(roles) // 2) and roles
        assert row["messages"][0]["content"].startswith("<image>\n")
        assert sum(m["content"].count("<image>") for m in row["messages"]) == 1
        assert not any(BOX_PATTERNS["llava"].search(m["content"]) for m in row["messages"])


def test_hf_folder_card_maps_splits_to_files_that_read_back(built: Path, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    dest = tmp_path / "hf"
    export(built, dest, "hf", "geochat")
    card = (dest / "README.md").read_text(encoding="utf-8")
    assert card.startswith("---\n")
    front = yaml.safe_load(card.split("---\n")[1])
    files = {f["split"]: sorted(dest.glob(f["path"])) for f in front["configs"][0]["data_files"]}
    assert set(files) == {"train", "val"}
    for split, paths in files.items():
        assert [p.name for p in paths] == [f"{split}-00000-of-00001.parquet"]
        rows = pq.read_table(paths[0]).to_pylist()
        assert [r["id"] for r in rows] == [r["id"] for r in _lines(built / f"{split}.jsonl")]
        assert rows[0]["conversations"][0]["from"] == "human"
        assert all(json.loads(r["meta"])["box_format"] == "geochat" for r in rows)
        for r in rows:  # the image's own bytes, with its path under the build folder
            assert r["image"]["bytes"] == (built / r["image"]["path"]).read_bytes()
    assert not (dest / "images").exists()


def test_model_vqa_files_for_the_test_split(built_with_test: Path, tmp_path: Path) -> None:
    dest = tmp_path / "vqa"
    report = export(built_with_test, dest, "llava-json", "geochat")
    test_records = json.loads((dest / "test.json").read_text(encoding="utf-8"))
    assert [r["id"] for r in test_records] == [r["id"] for r in _lines(built_with_test / "test.jsonl")]
    assert test_records and report.records["test"] == len(test_records)
    assert any(BOX_PATTERNS["geochat"].search(r["conversations"][0]["value"]) for r in test_records)
    questions = _lines(dest / "eval" / "test_questions.jsonl")
    answers = _lines(dest / "eval" / "test_answers.jsonl")
    ids = [r["id"] for r in test_records]
    assert [q["question_id"] for q in questions] == [a["question_id"] for a in answers] == ids
    for q, a, r in zip(questions, answers, test_records):
        assert set(q) == set(a) == {"question_id", "image", "text", "category"}
        assert (a["image"], a["category"]) == (q["image"], q["category"])
        assert q["text"] == r["conversations"][0]["value"].removeprefix("<image>\n")
        assert "<image>" not in q["text"]
        assert q["category"] == r["task"]
        assert a["text"] == r["conversations"][1]["value"]
        assert (dest / q["image"]).is_file()


def test_no_eval_files_without_a_test_split(built: Path, tmp_path: Path) -> None:
    export(built, tmp_path / "x", "llava-jsonl", None)
    assert not (tmp_path / "x" / "eval").exists()


def test_record_whose_boxes_disagree_with_meta_is_skipped_and_named(damaged: Path, tmp_path: Path, capsys) -> None:
    path = damaged / "train.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    lineno = next(i for i, line in enumerate(lines, 1) if len(json.loads(line)["meta"]["boxes"]) >= 2)
    record = json.loads(lines[lineno - 1])
    for key in ("boxes", "box_labels", "box_polygons", "box_difficult"):
        record["meta"][key].pop()
    lines[lineno - 1] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    code = main_export(damaged, tmp_path / "x", "llava-jsonl", "geochat")
    assert code == 1
    assert f"{path}:{lineno}: " in capsys.readouterr().err
    report = export(damaged, tmp_path / "y", "llava-jsonl", "geochat")
    assert (report.skipped, report.bad_lines) == (1, 0)
    assert report.problems == [f"{path}:{lineno}: {len(record['meta']['boxes']) + 1} llava box strings in the text "
                               f"but {len(record['meta']['boxes'])} in meta.boxes"]
    exported = [r["id"] for r in _lines(tmp_path / "y" / "train.jsonl")]
    assert record["id"] not in exported and len(exported) == len(lines) - 1


def test_truncated_line_is_reported_and_the_rest_exported(damaged: Path, tmp_path: Path) -> None:
    path = damaged / "val.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2][: len(lines[2]) // 2]
    lines[4] = "[1, 2, 3]"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = export(damaged, tmp_path / "x", "sharegpt", "qwen")
    assert report.bad_lines == 2 and report.skipped == 0
    assert report.problems[0].startswith(f"{path}:3: invalid JSON: ") and ": column " in report.problems[0]
    assert report.problems[1] == f"{path}:5: not an object: the record is a JSON list"
    assert report.records["val"] == len(lines) - 2


def test_record_with_missing_image_is_skipped(damaged: Path, tmp_path: Path) -> None:
    victim = _lines(damaged / "val.jsonl")[0]["image"]
    (damaged / victim).unlink()
    report = export(damaged, tmp_path / "x", "llava-jsonl", None)
    affected = [r for r in _lines(damaged / "val.jsonl") if r["image"] == victim]
    assert report.skipped == len(affected) > 0
    assert all(f"image {victim} not found" in p for p in report.problems)
    assert victim not in {r["image"] for r in _lines(tmp_path / "x" / "val.jsonl")}


def test_images_are_placed_under_dest_once(built: Path, tmp_path: Path) -> None:
    dest = tmp_path / "x"
    first = export(built, dest, "llava-json", "geochat")
    images = {r["image"] for r in _records(built)}
    assert first.images_linked == len(images) and first.images_present == 0
    for rel in images:
        assert (dest / rel).read_bytes() == (built / rel).read_bytes()
    again = export(built, dest, "llava-json", "geochat")
    assert again.images_linked == 0 and again.images_present == len(images)


def test_export_refuses_what_it_cannot_do(built: Path, tmp_path: Path, capsys) -> None:
    with pytest.raises(ExportError, match="unknown export format"):
        export(built, tmp_path / "x", "coco", None)
    with pytest.raises(ExportError, match="unknown box format"):
        export(built, tmp_path / "x", "hf", "yolo")
    with pytest.raises(ExportError, match="export never writes into a folder it reads"):
        export(built, built, "llava-jsonl", None)
    assert main_export(tmp_path / "missing", tmp_path / "x", "hf", None) == 2
    assert "no <split>.jsonl" in capsys.readouterr().err
