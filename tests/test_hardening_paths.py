"""Issue 11: nothing is written outside --out; split and source names are checked where paths are built."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import write_image, write_json
from PIL import Image
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.core.paths import UnsafePath, safe_name, under
from rsgpt4v.records.writer import DatasetWriter

runner = CliRunner()


def _rsicd(root: Path, split: str) -> None:
    for name in ("a_1.jpg", "b_2.jpg"):
        write_image(root / "RSICD_images" / name)
    write_json(root / "dataset_rsicd.json", {"images": [
        {"filename": "a_1.jpg", "imgid": 0, "split": split, "sentences": [{"raw": "a plane on the apron ."}]},
        {"filename": "b_2.jpg", "imgid": 1, "split": "train", "sentences": [{"raw": "some green fields ."}]},
    ]})


def _outside(folder: Path, out: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if not p.is_relative_to(out)}


@pytest.mark.parametrize("split", ["../../x", "../escaped", "/abs/train", "a/b", "bad\x00name", ".hidden", "", "   "])
def test_unsafe_split_in_a_captions_json_is_a_named_issue(tmp_path: Path, split: str) -> None:
    work = tmp_path / "deep" / "er"
    root, out = work / "root", work / "out"
    _rsicd(root, split)
    before = _outside(tmp_path, out)
    result = runner.invoke(app, ["build", "--no-progress", "--dry-run", "--source", "rsicd", "--root", str(root),
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert _outside(tmp_path, out) == before, "a file was written outside --out"
    assert sorted(p.name for p in out.glob("*.jsonl")) == ["train.jsonl"]
    manifest = json.loads((out / "manifest.json").read_text())
    reasons = [i["reason"] for i in manifest["issues"]["list"]]
    if split.strip():
        assert any(r.startswith("images[0] (filename 'a_1.jpg'): split ") and "cannot name an output file" in r
                   for r in reasons), reasons
    else:
        assert any("no split" in r for r in reasons) or any("cannot name an output file" in r for r in reasons)
    assert manifest["counts"]["samples"] == 1


def test_unsafe_split_reaching_the_writer_is_refused(tmp_path: Path) -> None:
    writer = DatasetWriter(tmp_path / "out", "png")
    for split in ("../x", "/tmp/train", "a/b", "x\x00y"):
        with pytest.raises(UnsafePath):
            writer.write(split, {"id": 1})
    with pytest.raises(UnsafePath):
        writer.plan("images/dota/../../../x", tmp_path / "s.tif", (0, 0, 4, 4), whole=False)
    with pytest.raises(UnsafePath):
        writer.image("images/dota/../../../x", Image.new("RGB", (4, 4)), tmp_path / "s.tif")
    assert list((tmp_path / "out").iterdir()) == []


def test_symlink_inside_out_pointing_away_is_not_followed(tmp_path: Path) -> None:
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "images").mkdir(parents=True)
    (out / "images" / "dota").symlink_to(elsewhere, target_is_directory=True)
    writer = DatasetWriter(out, "png")
    with pytest.raises(UnsafePath, match="symbolic link"):
        writer.plan("images/dota/train/P1__0_0_4_4", tmp_path / "s.tif", (0, 0, 4, 4), whole=False)
    assert list(elsewhere.iterdir()) == []


def test_safe_names() -> None:
    assert all(safe_name(n) for n in ("train", "val", "test_phili", "trainval", "v1.5", "split-2"))
    assert not any(safe_name(n) for n in ("", ".", "..", "../x", "a/b", "a\\b", "x\x00", ".git", "a b", 3, None))
    with pytest.raises(UnsafePath):
        under(Path("/o"), "/etc/passwd")
