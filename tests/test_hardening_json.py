"""Issue 11: hostile JSON (nested 100k deep, 5000-digit integers) is one named issue in every json
adapter and every reader command, never a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import write_image
from typer.testing import CliRunner

from rsgpt4v.cli import app

runner = CliRunner()

DEEP = "[" * 100_000 + "]" * 100_000
HUGE = "1" * 5000

# source, the json file it reads, an image folder it needs to exist
ADAPTERS = [
    ("rsicd", "dataset_rsicd.json", "RSICD_images"),
    ("ucm-captions", "dataset.json", "imgs"),
    ("coco", "annotations/instances_train2017.json", "train2017"),
    ("floodnet-vqa", "Questions/Training Question.json", "Images/Train_Image"),
    ("rsvqa-lr", "LR_split_train_questions.json", "Images_LR"),
]


def _layout(root: Path, source: str, json_file: str, images: str, text: str) -> None:
    write_image(root / images / "1.png")
    if source == "rsvqa-lr":
        for kind in ("images", "answers"):
            (root / f"LR_split_train_{kind}.json").write_text(json.dumps({kind: []}))
    (root / json_file).parent.mkdir(parents=True, exist_ok=True)
    (root / json_file).write_text(text)


@pytest.mark.parametrize("hostile, reason", [(DEEP, "nested too deeply to read"),
                                             ('{"images": [' + HUGE + "]}", "an integer too long to read")])
@pytest.mark.parametrize("source, json_file, images", ADAPTERS)
def test_hostile_json_is_a_skipped_file_in_every_adapter(tmp_path: Path, source: str, json_file: str, images: str,
                                                         hostile: str, reason: str) -> None:
    root, out = tmp_path / "root", tmp_path / "out"
    _layout(root, source, json_file, images, hostile)
    result = runner.invoke(app, ["build", "--no-progress", "--dry-run", "--source", source, "--root", str(root),
                                 "--out", str(out)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code in (0, 2), result.output
    assert f"{json_file}: invalid JSON: {reason}" in result.output
    if result.exit_code == 0:
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["issues"]["skipped"] >= 1
        assert any(i["reason"] == f"invalid JSON: {reason}" for i in manifest["issues"]["list"])


@pytest.fixture(scope="module")
def hostile_build(tmp_path_factory, sample_build: Path) -> Path:
    """The sample build with one deeply nested line and one line holding a 5000-digit integer appended."""
    out = tmp_path_factory.mktemp("hostile") / "out"
    shutil.copytree(sample_build, out)
    with open(out / "train.jsonl", "a", encoding="utf-8") as f:
        f.write(DEEP + "\n")
        f.write('{"id": ' + HUGE + "}\n")
    return out


def _lines(out: Path) -> tuple[int, int]:
    n = len((out / "train.jsonl").read_text().splitlines())
    return n - 1, n


@pytest.mark.parametrize("command", ["validate", "stats", "preview", "export", "merge"])
def test_hostile_jsonl_line_is_named_in_every_reader(tmp_path: Path, hostile_build: Path, command: str) -> None:
    args = {"validate": [str(hostile_build)],
            "stats": [str(hostile_build)],
            "preview": [str(hostile_build), "--out", str(tmp_path / "p")],
            "export": [str(hostile_build), "--out", str(tmp_path / "e")],
            "merge": [str(hostile_build), "--out", str(tmp_path / "m")]}[command]
    result = runner.invoke(app, [command, *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    deep, huge = _lines(hostile_build)
    output = result.output
    assert f"train.jsonl:{deep}: invalid JSON: nested too deeply to read" in output, output[-2000:]
    assert f"train.jsonl:{huge}: invalid JSON: an integer too long to read" in output, output[-2000:]
