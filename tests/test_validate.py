"""`validate`: a clean sample build passes; every kind of damage is named with its file and line."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

import rsgpt4v.cli
import rsgpt4v.records.reader
from rsgpt4v.core.files import ReadKind
from rsgpt4v.records.model import RecordKind
from rsgpt4v.tools.validate import REFUSAL_PHRASES, Kind, Violation, main_validate, validate


@pytest.fixture
def sample(sample_build: Path) -> Path:
    return sample_build


def _lines(sample: Path) -> list[str]:
    return (sample / "val.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)


def _line_of(lines: list[str], task: str) -> int:
    """1-based line number of the first record of a task."""
    return next(n for n, line in enumerate(lines, 1) if json.loads(line)["task"] == task)


def _broken_copy(sample: Path, tmp_path: Path, edit: Callable[[list[str]], None]) -> Path:
    """val.jsonl of the sample after `edit` (in place on its lines), beside a link to the sample's images."""
    (tmp_path / "images").symlink_to(sample / "images", target_is_directory=True)
    lines = _lines(sample)
    edit(lines)
    path = tmp_path / "val.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    return path


def _edit_record(task: str, change: Callable[[dict], None]) -> Callable[[list[str]], None]:
    def edit(lines: list[str]) -> None:
        n = _line_of(lines, task)
        rec = json.loads(lines[n - 1])
        change(rec)
        lines[n - 1] = json.dumps(rec) + "\n"
    return edit


def _found(report) -> list[tuple[int | None, str]]:
    return [(v.line, v.kind) for v in report.violations]


def test_sample_build_is_clean(sample: Path, capsys) -> None:
    report = validate([sample / "train.jsonl", sample / "val.jsonl"])
    assert (report.files, report.records, report.count) == (2, 69, 0)
    assert main_validate([sample / "train.jsonl", sample / "val.jsonl"]) == 0
    assert capsys.readouterr() == ("checked 69 records in 2 files: 0 violations\n", "")


def test_a_folder_stands_for_its_data_files_but_the_manifest(sample: Path, tmp_path: Path) -> None:
    report = validate([sample])
    assert (report.files, report.records, report.count) == (2, 69, 0)
    broken = _broken_copy(sample, tmp_path, _edit_record("caption", lambda r: r.update(id=7)))
    (tmp_path / "manifest.json").write_text("{}", encoding="utf-8")
    report = validate([tmp_path])
    assert (report.files, report.records) == (1, len(_lines(sample)))
    assert [(v.file, v.line, v.kind) for v in report.violations] == [(broken, _line_of(_lines(sample), "caption"),
                                                                      "shape")]


def _set_answer(turn: int, text: str) -> Callable[[dict], None]:
    return lambda r: r["conversations"][turn].update(value=text)


def _widen_grounding_box(r: dict) -> None:
    answer = r["conversations"][1]
    x1, y1, _, y2 = re.fullmatch(r"\[(\S+), (\S+), (\S+), (\S+)\]", answer["value"]).groups()
    answer["value"] = f"[{x1}, {y1}, 1.20, {y2}]"


def _second_image_token(r: dict) -> None:
    r["conversations"][2]["value"] = "<image>\n" + r["conversations"][2]["value"]


def _swap_first_turns(r: dict) -> None:
    c = r["conversations"]
    c[0], c[1] = c[1], c[0]


def _openai_roles(r: dict) -> None:
    for turn in r["conversations"]:
        turn["from"] = {"human": "user", "gpt": "assistant"}[turn["from"]]


CASES = {
    "missing image": ("grounding", lambda r: r.update(image="images/dota/val/nowhere.png"), ["image missing"]),
    "two image tokens": ("counting", _second_image_token, ["image token"]),
    "no image token": ("caption", lambda r: r["conversations"][0].update(value="Describe it."), ["image token"]),
    "image token in an answer": ("caption", _set_answer(1, "<image> an airport"), ["image token"]),
    "gpt speaks first": ("caption", _swap_first_turns, ["roles"]),
    "openai role names": ("presence", _openai_roles, ["roles"]),
    "ends with a question": ("caption", lambda r: r["conversations"].append({"from": "human", "value": "Why?"}),
                             ["roles"]),
    "empty answer": ("caption", _set_answer(1, "  \n"), ["empty value"]),
    "box out of range": ("grounding", _widen_grounding_box, ["box out of range"]),
    "box without its pixel box": ("grounding", lambda r: r["meta"].update(boxes=[]), ["box count"]),
    "refusal": ("caption", _set_answer(1, "I'm sorry, I can't assist with that."), ["refusal/meta-talk"]),
    "meta-talk with a curly apostrophe": ("detailed_description", _set_answer(1, "Based on the provided "
                                          "annotations there are planes. I\u2019m sorry."), ["refusal/meta-talk"]),
    "empty conversation": ("caption", lambda r: r.update(conversations=[]), ["shape"]),
    "turn without a value": ("caption", lambda r: r["conversations"][1].pop("value"), ["shape"]),
}


@pytest.mark.parametrize("case", CASES)
def test_each_damage_is_one_violation_on_its_line(sample: Path, tmp_path: Path, case: str, capsys) -> None:
    task, change, kinds = CASES[case]
    path = _broken_copy(sample, tmp_path, _edit_record(task, change))
    line = _line_of(_lines(sample), task)
    report = validate([path])
    assert _found(report) == [(line, kind) for kind in kinds]
    assert all(isinstance(k, (Kind, RecordKind)) for k in report.by_kind)
    n = len(_lines(sample))
    assert report.records == n
    assert main_validate([path]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(f"{path}:{line}: {kinds[0]}: ")
    assert captured.out == f"checked {n} records in 1 files: 1 violations (1 {kinds[0]})\n"


def test_a_violation_kind_is_given_not_read_back_from_its_message(tmp_path: Path) -> None:
    # Kinds of read problems and of record checks are counted side by side: no name may serve both.
    names = [{k.value for k in kinds} for kinds in (Kind, RecordKind, ReadKind)]
    assert sum(map(len, names)) == len(set().union(*names))
    v = Violation(tmp_path / "a.jsonl", 4, Kind.BOX_COUNT, "2 llava boxes in the text: 1 in meta.boxes")
    assert v.kind is Kind.BOX_COUNT
    assert str(v) == f"{tmp_path / 'a.jsonl'}:4: box count: 2 llava boxes in the text: 1 in meta.boxes"


def test_duplicate_ids_are_found_within_and_across_files(sample: Path, tmp_path: Path) -> None:
    lines = _lines(sample)
    first, second = _line_of(lines, "caption"), _line_of(lines, "counting")
    path = _broken_copy(sample, tmp_path, _edit_record(
        "counting", lambda r: r.update(id=json.loads(lines[first - 1])["id"])))
    report = validate([path])
    assert _found(report) == [(second, "duplicate id")]
    assert f"first at {path}:{first}" in report.violations[0].reason

    again = tmp_path / "again.jsonl"
    again.write_text("".join(_lines(sample)), encoding="utf-8")
    report = validate([sample / "val.jsonl", again, sample / "val.jsonl"])
    assert report.files == 2  # a file named twice is read once
    assert [(v.file, v.line, v.kind) for v in report.violations] == [(again, n, "duplicate id")
                                                                     for n in range(1, len(_lines(sample)) + 1)]


def test_unreadable_lines_are_named_and_the_rest_is_checked(sample: Path, tmp_path: Path, capsys) -> None:
    def edit(lines: list[str]) -> None:
        lines[2] = "[1, 2]\n"
        lines[4] = '{"id": "x", "image": \n'
        lines[-1] = lines[-1][: len(lines[-1]) // 2]

    n = len(_lines(sample))
    path = _broken_copy(sample, tmp_path, edit)
    report = validate([path])
    assert _found(report) == [(3, "not an object"), (5, "invalid JSON"), (n, "truncated")]
    assert report.by_kind == {RecordKind.NOT_AN_OBJECT: 1, ReadKind.INVALID_JSON: 1, ReadKind.TRUNCATED: 1}
    assert report.records == n
    assert main_validate([path]) == 1
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    assert err[0] == f"{path}:3: not an object: the record is a JSON list"
    assert err[1] == f"{path}:5: invalid JSON: Expecting value: column 22"
    assert err[2].startswith(f"{path}:{n}: truncated: the last line is cut off")
    assert captured.out == f"checked {n} records in 1 files: 3 violations (1 invalid JSON, 1 not an object, 1 truncated)\n"


def test_damaged_image_is_unreadable_and_each_image_is_opened_once(sample: Path, tmp_path: Path,
                                                                    monkeypatch) -> None:
    opened: list[str] = []
    real_open = Image.open

    def counting_open(fp, *args, **kwargs):
        opened.append(str(fp))
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(rsgpt4v.records.reader.Image, "open", counting_open)
    assert validate([sample]).count == 0
    assert len(opened) == len(set(opened)) == len(list((sample / "images").rglob("*.png"))) == 7

    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    lines = [json.loads(line) for line in _lines(sample)[:2]]
    for rec in lines:
        rec["image"] = "images/bad.png"
    (tmp_path / "x.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    assert _found(validate([tmp_path / "x.jsonl"])) == [(1, "image unreadable"), (2, "image unreadable")]


def test_another_tools_json_list_with_geochat_boxes(tmp_path: Path, capsys) -> None:
    Image.new("RGB", (200, 100)).save(tmp_path / "a.png")
    (tmp_path / "pics").mkdir()
    Image.new("RGB", (50, 40)).save(tmp_path / "pics" / "b.png")

    def rec(rid: str, image: str, answer: str, fmt: str = "geochat", boxes: int = 1, first: str = "human") -> dict:
        return {"id": rid, "image": image,
                "conversations": [{"from": first, "value": "<image>\n[refer] the plane"},
                                  {"from": "gpt", "value": answer}],
                "meta": {"box_format": fmt, "boxes": [[0, 0, 1, 1]] * boxes}}

    records = [
        rec("ok", "a.png", "{<10><20><30><40>|<0>}"),
        rec("wide", "a.png", "{<10><20><130><40>|<0>}"),
        {"id": "plain", "image": "pics/b.png", "conversations": [{"from": "human", "value": "<image>\nWhat?"},
                                                                 {"from": "gpt", "value": "A field."}]},
        rec("user", "a.png", "{<10><20><30><40>|<0>}", first="user"),
        rec("inverted", "pics/b.png", "{<50><20><30><40>|<0>} and {<1><2><3><4>|<0>}", boxes=2),
        rec("pixels", "pics/b.png", "[10, 5, 60, 30]", fmt="pixel"),
        rec("ok", "a.png", "{<10><20><30><40>|<0>} again", boxes=2),
    ]
    path = tmp_path / "other_tool.json"
    path.write_text(json.dumps(records, indent=2), encoding="utf-8")
    starts = [n for n, line in enumerate(path.read_text().splitlines(), 1) if line == "  {"]
    report = validate([path])
    assert report.records == 7
    assert _found(report) == [(starts[1], "box out of range"), (starts[3], "roles"), (starts[4], "box inverted"),
                              (starts[5], "box out of range"), (starts[6], "duplicate id"), (starts[6], "box count")]
    assert "outside the 50x40 image (pixel)" in report.violations[3].reason
    assert main_validate([path], max_shown=2) == 1
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [f"{path}:{starts[1]}: {report.violations[0].reason}",
                                         f"{path}:{starts[3]}: {report.violations[1].reason}",
                                         "... 4 more"]
    assert captured.out.splitlines() == ["checked 7 records in 1 files: 6 violations (2 box out of range, 1 box count, "
                                         "1 box inverted, 1 duplicate id, 1 roles)"]


def test_square_space_boxes_on_the_padding_are_named(tmp_path: Path) -> None:
    # 200 x 100 on LLaVA's 200 x 200 canvas: the image spans y 0.25..0.75; a box centred at y 0.1 is padding.
    Image.new("RGB", (200, 100)).save(tmp_path / "a.png")

    def rec(rid: str, box: str, space: str) -> dict:
        return {"id": rid, "image": "a.png", "conversations": [{"from": "human", "value": "<image>\nWhere?"},
                                                               {"from": "gpt", "value": box}],
                "meta": {"box_format": "llava", "box_space": space, "boxes": [[0, 0, 1, 1]]}}

    path = tmp_path / "x.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        rec("in", "[0.10, 0.30, 0.20, 0.40]", "square"), rec("pad", "[0.10, 0.05, 0.20, 0.15]", "square"),
        rec("img", "[0.10, 0.05, 0.20, 0.15]", "image")]) + "\n", encoding="utf-8")
    assert _found(validate([path])) == [(2, "box on the padding")]


def test_a_turned_geochat_rectangle_may_reach_past_the_frame_but_not_lie_outside(tmp_path: Path) -> None:
    # GeoChat's unrotated rectangle of a long object turned near an edge runs past 0..100, as written.
    Image.new("RGB", (100, 100)).save(tmp_path / "a.png")

    def rec(rid: str, box: str) -> dict:
        return {"id": rid, "image": "a.png", "conversations": [{"from": "human", "value": "<image>\nWhere?"},
                                                               {"from": "gpt", "value": box}],
                "meta": {"box_format": "geochat", "box_space": "image", "boxes": [[0, 0, 1, 1]]}}

    path = tmp_path / "x.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        rec("edge", "{<-3><40><24><52>|<62>}"), rec("far", "{<96><40><104><52>|<30>}"),
        rec("outside", "{<101><40><130><52>|<30>}"), rec("flat", "{<-3><40><24><52>|<0>}")]) + "\n",
        encoding="utf-8")
    assert _found(validate([path])) == [(3, "box out of range"), (4, "box out of range")]


def test_cut_or_wrong_json_files(tmp_path: Path) -> None:
    good = {"id": "a", "image": "a.png", "conversations": [{"from": "human", "value": "<image>\nHi"},
                                                            {"from": "gpt", "value": "Hello."}]}
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    text = json.dumps([good, {**good, "id": "b"}], indent=2)
    (tmp_path / "cut.json").write_text(text[:-40], encoding="utf-8")
    (tmp_path / "object.json").write_text(json.dumps(good), encoding="utf-8")
    (tmp_path / "comma.json").write_text(f"[\n{json.dumps({**good, 'id': 'c'})},\n]\n", encoding="utf-8")
    report = validate([tmp_path / "cut.json", tmp_path / "object.json", tmp_path / "comma.json"])
    cut_line = text[:-40].count("\n") + 1
    assert [(v.file.name, v.line, v.kind) for v in report.violations] == [("cut.json", cut_line, "truncated"),
                                                                           ("object.json", None, "not a list"),
                                                                           ("comma.json", 3, "invalid JSON")]
    assert report.records == 5  # a, then the cut; the object; c, then the comma
    assert str(report.violations[1]).startswith(f"{tmp_path / 'object.json'}: not a list: ")


def test_extra_phrases_add_to_the_refusal_list(sample: Path) -> None:
    assert "i'm sorry" in REFUSAL_PHRASES
    report = validate([sample / "val.jsonl"], extra_phrases=["aerial view"])
    saying = {n for n, line in enumerate(_lines(sample), 1)
              if any(t["from"] == "gpt" and "aerial view" in t["value"].lower()
                     for t in json.loads(line)["conversations"])}
    assert saying and {v.line for v in report.violations} == saying
    assert {v.kind for v in report.violations} == {"refusal/meta-talk"}


def test_missing_path_exits_2(tmp_path: Path, capsys) -> None:
    assert main_validate([tmp_path / "nope.jsonl"]) == 2
    assert f"{tmp_path / 'nope.jsonl'} does not exist" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError):
        validate([tmp_path / "nope.jsonl"])


def test_validate_flags_what_export_refuses_and_reads_what_the_build_writes(tmp_path: Path) -> None:
    """Image paths outside the folder and boxes that are not numbers are named; an image larger than
    PIL's default limit but within the build's image.max_pixels is read, not called unreadable."""
    big = tmp_path / "images" / "big.png"
    big.parent.mkdir()
    Image.new("L", (14000, 14000)).save(big)               # 196 Mpx: over PIL's 179 Mpx error threshold
    base = {"conversations": [{"from": "human", "value": "<image>\nWhere is it?"},
                              {"from": "gpt", "value": "[0.10, 0.20, 0.30, 0.40]"}],
            "meta": {"box_format": "llava", "boxes": [[1400.0, 2800.0, 4200.0, 5600.0]]}}
    lines = [{**base, "id": "big", "image": "images/big.png"},
             {**base, "id": "abs", "image": str(big)},
             {**base, "id": "up", "image": "../images/big.png"},
             {**base, "id": "nan", "image": "images/big.png",
              "meta": {"box_format": "llava", "boxes": [[float("nan"), 2800.0, 4200.0, 5600.0]]}}]
    path = tmp_path / "x.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    assert _found(validate([path])) == [(2, "image outside the folder"), (3, "image outside the folder"),
                                        (4, "box not finite")]
