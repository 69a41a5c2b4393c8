"""Issue 19: `merge` never writes into its inputs, refuses an input given twice, checks each input's
split files against its manifest before merging, refuses two different images under one path unless
told to rename, and places a symbolically linked image as a real file."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from rsgpt4v.cli import app

runner = CliRunner()


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under `folder`: files by content digest, links by target."""
    seen = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_symlink():
            seen[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            seen[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return seen


def copy_of(build: Path, dest: Path, id_prefix: str = "") -> Path:
    shutil.copytree(build, dest)
    if id_prefix:
        for split in dest.glob("*.jsonl"):
            lines = [json.loads(line) for line in split.read_text().splitlines()]
            split.write_text("".join(json.dumps({**r, "id": id_prefix + r["id"]}) + "\n" for r in lines))
    return dest


def merge(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["merge", *args], catch_exceptions=False)
    return result.exit_code, result.output


def one_error(code: int, output: str) -> str:
    assert code == 2, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    return lines[0]


@pytest.fixture
def two(sample_build: Path, tmp_path: Path) -> tuple[Path, Path]:
    return copy_of(sample_build, tmp_path / "a"), copy_of(sample_build, tmp_path / "b", "b-")


@pytest.mark.parametrize("where", ["b", "b/sub", "b/images/x"])
def test_out_equal_to_or_inside_an_input_is_refused_and_the_input_untouched(two, tmp_path: Path, where: str) -> None:
    a, b = two
    before = snapshot(b)
    line = one_error(*merge(str(a), str(b), "--out", str(tmp_path / where)))
    assert "merge never writes into a folder it reads" in line and str(b) in line
    assert snapshot(b) == before
    assert not (tmp_path / "b" / "sub").exists()


def test_an_input_inside_the_images_merge_writes_is_refused(two, tmp_path: Path) -> None:
    a, _ = two
    inner = copy_of(a, tmp_path / "out" / "images" / "old")
    before = snapshot(inner)
    line = one_error(*merge(str(a), str(inner), "--out", str(tmp_path / "out")))
    assert "where merge writes images" in line
    assert snapshot(inner) == before


@pytest.mark.parametrize("spelling", ["same", "dotted", "linked"])
def test_the_same_input_twice_is_refused(two, tmp_path: Path, spelling: str) -> None:
    a, _ = two
    other = {"same": a, "dotted": tmp_path / "b" / ".." / "a", "linked": tmp_path / "link"}[spelling]
    if spelling == "linked":
        other.symlink_to(a, target_is_directory=True)
    line = one_error(*merge(str(a), str(other), "--out", str(tmp_path / "m")))
    assert "is given twice" in line if spelling == "same" else f"{a} and {other} are the same folder" in line
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("damage", ["missing", "cut at a line", "emptied"])
def test_a_split_file_that_lost_records_is_refused_by_name(two, tmp_path: Path, damage: str) -> None:
    a, b = two
    train = b / "train.jsonl"
    counted = sum(json.loads((b / "manifest.json").read_text())["counts"]["by_split"]["train"].values())
    if damage == "missing":
        train.unlink()
    elif damage == "cut at a line":
        lines = train.read_bytes().splitlines(keepends=True)
        train.write_bytes(b"".join(lines[: len(lines) // 3]))
    else:
        train.write_bytes(b"")
    line = one_error(*merge(str(a), str(b), "--out", str(tmp_path / "m")))
    assert str(train) in line and f"manifest counts {counted}" in line
    assert not (tmp_path / "m").exists()


def _repaint(image: Path) -> None:
    with Image.open(image) as im:
        im.convert("RGB").point(lambda v: 255 - v).save(image)


def test_two_different_images_under_one_path_are_refused(two, tmp_path: Path) -> None:
    a, b = two
    rel = json.loads((b / "train.jsonl").read_text().splitlines()[0])["image"]
    _repaint(b / rel)
    line = one_error(*merge(str(a), str(b), "--out", str(tmp_path / "m")))
    assert f"{rel} is one image in {a} and another in {b}" in line and "--image-conflict rename" in line
    assert not (tmp_path / "m").exists()


def test_rename_keeps_both_pictures_and_points_each_record_at_its_own(two, tmp_path: Path) -> None:
    a, b = two
    rel = json.loads((b / "train.jsonl").read_text().splitlines()[0])["image"]
    _repaint(b / rel)
    code, output = merge(str(a), str(b), "--out", str(tmp_path / "m"), "--image-conflict", "rename")
    assert code == 0, output
    m = tmp_path / "m"
    records = [json.loads(line) for line in (m / "train.jsonl").read_text().splitlines()]
    mine = {r["id"]: r["image"] for r in records}
    originals = {r["id"]: r["image"] for r in map(json.loads, (a / "train.jsonl").read_text().splitlines())}
    for record_id, image in originals.items():
        assert mine[record_id] == image
        assert (m / image).read_bytes() == (a / image).read_bytes()
        theirs = mine["b-" + record_id]
        assert (m / theirs).read_bytes() == (b / image).read_bytes()
        assert (theirs == image) == (image != rel)


def test_a_symlinked_image_is_merged_and_exported_as_a_real_file(two, tmp_path: Path) -> None:
    a, _ = two
    rel = json.loads((a / "val.jsonl").read_text().splitlines()[0])["image"]
    elsewhere = tmp_path / "elsewhere.png"
    shutil.move(a / rel, elsewhere)
    (a / rel).symlink_to(elsewhere)
    code, output = merge(str(a), "--out", str(tmp_path / "m"))
    assert code == 0, output
    assert not (tmp_path / "m" / rel).is_symlink() and (tmp_path / "m" / rel).read_bytes() == elsewhere.read_bytes()
    result = runner.invoke(app, ["export", str(a), "--out", str(tmp_path / "e"), "--format", "llava-jsonl"])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "e" / rel).is_symlink() and (tmp_path / "e" / rel).read_bytes() == elsewhere.read_bytes()


def test_an_unknown_conflict_rule_is_refused(two, tmp_path: Path) -> None:
    a, b = two
    line = one_error(*merge(str(a), str(b), "--out", str(tmp_path / "m"), "--image-conflict", "newest"))
    assert "--image-conflict must be one of fail, rename" in line


@pytest.mark.parametrize("command", ["export", "preview"])
@pytest.mark.parametrize("where", [".", "sub", "images/x"])
def test_export_and_preview_never_write_into_the_build_they_read(two, tmp_path: Path, command: str,
                                                                where: str) -> None:
    a, _ = two
    before = snapshot(a)
    result = runner.invoke(app, [command, str(a), "--out", str(a / where)])
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert "never writes into a folder it reads" in line
    assert snapshot(a) == before
