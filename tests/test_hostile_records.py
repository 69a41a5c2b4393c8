"""Issue 19: no one record, name or value stops an export or a build. Numbers no float can hold are
bad records, named and counted; a file name too long for the file system is shortened by the build
and a record naming one is skipped by export; a disk that fills names the file being written; a
difficulty flag that is no level is an input issue."""

from __future__ import annotations

import errno
import json
import pathlib
import shutil
from pathlib import Path

import pytest
from conftest import split_out, write_image
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.core.paths import MAX_NAME_BYTES, fitted
from rsgpt4v.records.reader import finite_box
from rsgpt4v.sources.dior import parse_voc_object
from rsgpt4v.sources.dota import DOTA
from scripts.native_tree import write_tree

runner = CliRunner()
HUGE = int("9" * 400)


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _write(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


@pytest.mark.parametrize("where", ["boxes", "window", "box_polygons", "box_difficult"])
def test_a_400_digit_number_in_meta_is_a_named_bad_record_in_every_split(sample_build: Path, tmp_path: Path,
                                                                         where: str) -> None:
    out = tmp_path / "out"
    shutil.copytree(sample_build, out)
    for split in ("train", "val"):
        records = _records(out / f"{split}.jsonl")
        n = next(i for i, r in enumerate(records) if r["meta"].get("boxes"))
        meta = records[n]["meta"]
        if where == "window":
            meta["window"][2] = HUGE
        else:
            meta[where][0] = [HUGE, 1, 2, 3] if where == "boxes" else [[HUGE, 1]] * 4 if where == "box_polygons" \
                else HUGE
        _write(out / f"{split}.jsonl", records)
    result = runner.invoke(app, ["export", str(out), "--out", str(tmp_path / "e"), "--format", "llava-jsonl"])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    problems = [line for line in result.output.splitlines() if line.startswith(str(out))]
    exported = {s: len(_records(tmp_path / "e" / f"{s}.jsonl")) for s in ("train", "val")}
    if where in ("box_difficult", "window"):  # no text of them to render; a bad window gives way to the header
        assert result.exit_code == 0 and not problems, result.output
        return
    assert result.exit_code == 1, result.output
    assert [p.split(":")[0] for p in problems] == [str(out / "train.jsonl"), str(out / "val.jsonl")]
    for split in ("train", "val"):
        assert exported[split] == len(_records(out / f"{split}.jsonl")) - 1


def test_finite_box_takes_no_number_a_float_cannot_hold() -> None:
    assert finite_box([0, 1, 2.5, 3]) and not finite_box([HUGE, 1, 2, 3]) and not finite_box([True, 1, 2, 3])


def test_a_long_image_name_is_shortened_by_the_build_and_skipped_by_export(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_tree(data, per_source=3, plant=False)
    folder = data / "ucm-captions"
    long_name = "a" * 250
    (folder / "imgs" / "2.tif").rename(folder / "imgs" / f"{long_name}.tif")
    listing = (folder / "dataset.json").read_text().replace('"2.tif"', f'"{long_name}.tif"')
    (folder / "dataset.json").write_text(listing)
    out = tmp_path / "out"
    result = runner.invoke(app, ["build", "--no-progress", "--dry-run", "-s", "ucm-captions", "--root", str(folder),
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    records = [r for f in sorted(out.glob("*.jsonl")) for r in _records(f)]
    long = [r for r in records if long_name[:100] in r["image"]]
    assert long and all((out / r["image"]).is_file() for r in long)
    assert all(len(Path(r["image"]).name.encode()) <= MAX_NAME_BYTES + 4 for r in records)
    # a record naming an image too long to exist: skipped and named, the rest exported
    split = out / f"{long[0]['split']}.jsonl"
    mine = _records(split)
    mine[-1] = {**mine[-1], "image": "images/" + "x" * 300 + ".png"}
    _write(split, mine)
    result = runner.invoke(app, ["export", str(out), "--out", str(tmp_path / "e"), "--format", "llava-jsonl"])
    assert result.exit_code == 1
    problems = [line for line in result.output.splitlines() if line.startswith(str(split))]
    assert problems == [f"{split}:{len(mine)}: image images/{'x' * 73}... cannot be read (File name too long)"]
    assert sum(len(_records(p)) for p in (tmp_path / "e").glob("*.jsonl")) == len(records) - 1


def test_fitted_names_stay_distinct_and_stable() -> None:
    a, b = fitted("images/s/train/" + "é" * 150 + "1"), fitted("images/s/train/" + "é" * 150 + "2")
    assert a != b and a == fitted("images/s/train/" + "é" * 150 + "1")
    assert all(len(part.encode()) <= MAX_NAME_BYTES for part in a.split("/"))
    assert fitted("images/s/train/short__0_0_1_1") == "images/s/train/short__0_0_1_1"


@pytest.mark.parametrize("what", ["window images", "records"])
def test_a_full_disk_names_the_file_being_written(tmp_path: Path, monkeypatch, what: str) -> None:
    import jsonlines

    real = pathlib.Path.write_bytes

    def full(self: Path, data: bytes) -> int:
        if "images" in self.parts:
            raise OSError(errno.ENOSPC, "No space left on device")  # as a failed write: no file named
        return real(self, data)

    def full_lines(self, obj) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    if what == "records":
        monkeypatch.setattr(jsonlines.Writer, "write", full_lines)
    else:
        monkeypatch.setattr(pathlib.Path, "write_bytes", full)
    out = tmp_path / "out"
    # One image worker is a thread of this process, so the full disk faked here reaches it too.
    result = runner.invoke(app, ["build", "--no-progress", "--dry-run", "-s", "dota", "--sample", "--out", str(out),
                                 "--workers", "1"])
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    where, suffix = (out, ".jsonl.partial") if what == "records" else (out / "images" / "dota", ".png")
    assert line.startswith(f"error: {where}/") and f"{suffix}: no space left on the device" in line
    assert not [p for p in out.rglob("*") if p.suffix == ".tmp"]


@pytest.mark.parametrize("flag", ["1e300", "inf", "nan", "-1", "7", "0.5", "x"])
def test_a_dota_difficulty_that_is_no_level_is_an_input_issue(tmp_path: Path, flag: str) -> None:
    write_image(tmp_path / "images" / "P0001.png", (100, 100))
    (tmp_path / "labelTxt").mkdir()
    (tmp_path / "labelTxt" / "P0001.txt").write_text(f"10 10 50 10 50 50 10 50 ship {flag}\n"
                                                     "20 20 40 20 40 40 20 40 car 1.0\n")
    samples, issues = split_out(list(DOTA(tmp_path)))
    assert [(o.category, o.difficult) for o in samples[0].objects] == [("car", 1)]
    (issue,) = [i for i in issues if i.kind == "skip"]
    assert (issue.file, issue.line, issue.code) == ("labelTxt/P0001.txt", 1, "malformed_entry")
    assert f"difficult {flag!r} is not one of 0, 1, 2" in issue.reason


def test_a_dior_difficulty_that_is_no_level_skips_the_object() -> None:
    import xml.etree.ElementTree as ET

    obj = ET.fromstring("<object><name>ship</name><difficult>99999</difficult><bndbox><xmin>1</xmin><ymin>1</ymin>"
                        "<xmax>50</xmax><ymax>50</ymax></bndbox></object>")
    assert "difficult '99999' is not one of 0, 1, 2" in parse_voc_object(obj).detail
