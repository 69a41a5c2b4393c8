"""The output record contract has one verdict: every command that reads records rejects the same
broken records with the same reason, and the build refuses to render a record that breaks it."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rsgpt4v.core.files import located
from rsgpt4v.core.schema import Record, Turn
from rsgpt4v.records.boxtext import FLAVOURS
from rsgpt4v.records.model import RecordKind, check_record, record_problems
from rsgpt4v.records.writer import ContractError, render
from rsgpt4v.tools.export import export
from rsgpt4v.tools.merge import merge
from rsgpt4v.tools.preview import preview
from rsgpt4v.tools.stats import stats
from rsgpt4v.tools.validate import validate


def _turns(r: dict) -> list[dict]:
    return r["conversations"]


def _swap_first_turns(r: dict) -> None:
    _turns(r)[0], _turns(r)[1] = _turns(r)[1], _turns(r)[0]


def _token_to_third_turn(r: dict) -> None:
    _turns(r)[0]["value"] = _turns(r)[0]["value"].removeprefix("<image>\n")
    _turns(r)[2]["value"] = "<image>\n" + _turns(r)[2]["value"]


# (what is broken, how, the one reason every command gives)
BROKEN: list[tuple[str, Callable[[dict], Any], str]] = [
    ("not an object", lambda r: [1, 2], "not an object: the record is a JSON list"),
    ("missing id", lambda r: r.pop("id"), "shape: no 'id'"),
    ("id a number", lambda r: r.update(id=7), "shape: 'id' is a JSON number, not a string"),
    ("blank id", lambda r: r.update(id=" "), "empty value: 'id' is empty"),
    ("missing image", lambda r: r.pop("image"), "shape: no 'image'"),
    ("conversations not a list", lambda r: r.update(conversations="hi"),
     "shape: 'conversations' must be a non-empty list"),
    ("no turns", lambda r: r.update(conversations=[]), "shape: 'conversations' must be a non-empty list"),
    ("turn not an object", lambda r: _turns(r).__setitem__(3, "yes"),
     "shape: turn 4 must be an object with string 'from' and 'value'"),
    ("turn without a value", lambda r: _turns(r)[1].pop("value"),
     "shape: turn 2 must be an object with string 'from' and 'value'"),
    ("gpt speaks first", _swap_first_turns, "roles: turn 1 is from 'gpt', expected 'human'"),
    ("openai role names", lambda r: _turns(r)[1].update({"from": "assistant"}),
     "roles: turn 2 is from 'assistant', expected 'gpt'"),
    ("ends with a question", lambda r: _turns(r).append({"from": "human", "value": "Why?"}),
     "roles: the last turn (9) is from 'human'; a conversation ends with 'gpt'"),
    ("empty answer", lambda r: _turns(r)[3].update(value=" \n"), "empty value: turn 4 (gpt) is empty"),
    ("no image token", lambda r: _turns(r)[0].update(value="How many planes?"),
     "image token: no <image> though the record has an image"),
    ("image token in an answer", lambda r: _turns(r)[1].update(value="<image> " + _turns(r)[1]["value"]),
     "image token: <image> in a gpt turn (turn 2)"),
    ("image token in a later question", _token_to_third_turn,
     "image token: <image> is in turn 3, not in the first human turn (1)"),
    ("meta a list", lambda r: r.update(meta=[1]), "shape: 'meta' is a JSON list, not an object"),
    ("meta a null", lambda r: r.update(meta=None), "shape: 'meta' is a JSON null, not an object"),
    ("meta a JSON string of a list", lambda r: r.update(meta="[1]"),
     "shape: 'meta' is a JSON string that does not hold an object"),
    ("task a number", lambda r: r.update(task=3), "shape: 'task' is a JSON number, not a string"),
]


@pytest.fixture(scope="module")
def broken_build(sample_build: Path, tmp_path_factory) -> tuple[Path, dict[int, str]]:
    """A build folder whose val.jsonl holds a sound record, the same record with meta as a JSON string
    (as the exports write it), then one broken record per BROKEN case; the expected reason per line."""
    out = tmp_path_factory.mktemp("broken") / "out"
    out.mkdir()
    shutil.copytree(sample_build / "images", out / "images")
    manifest = json.loads((sample_build / "manifest.json").read_text(encoding="utf-8"))
    good = next(json.loads(line) for line in (sample_build / "val.jsonl").read_text().splitlines()
                if json.loads(line)["task"] == "counting")
    as_string = {**copy.deepcopy(good), "id": "meta-as-string", "meta": json.dumps(good["meta"])}
    lines, expected = [good, as_string], {}
    for n, (case, change, reason) in enumerate(BROKEN, start=3):
        record = {**copy.deepcopy(good), "id": f"broken-{case}"}
        changed = change(record)
        lines.append(changed if isinstance(changed, list) else record)
        expected[n] = reason
    (out / "val.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    # the manifest counts what the folder holds, as the build's own would
    manifest["counts"].update(records=len(lines), by_task={"counting": len(lines)},
                              by_split={"val": {"counting": len(lines)}})
    (out / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return out, expected


def _validate(out: Path, tmp: Path) -> list[str]:
    return [str(v) for v in validate([out / "val.jsonl"]).violations]


def _export(out: Path, tmp: Path) -> list[str]:
    return export(out, tmp / "export", "llava-jsonl").problems


def _preview(out: Path, tmp: Path) -> list[str]:
    return preview(out, tmp / "preview", n=100).bad_lines


def _stats(out: Path, tmp: Path) -> list[str]:
    return [located(b["file"], b["line"], b["reason"]) for b in stats(out)["bad_lines"]["list"]]


def _merge(out: Path, tmp: Path) -> list[str]:
    return merge([out], tmp / "merged").bad_lines


COMMANDS = {"validate": _validate, "export": _export, "preview": _preview, "stats": _stats, "merge": _merge}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_rejects_the_same_records_for_the_same_reason(broken_build, tmp_path: Path,
                                                                    command: str) -> None:
    out, expected = broken_build
    path = out / "val.jsonl"
    assert COMMANDS[command](out, tmp_path) == [located(path, n, reason) for n, reason in expected.items()]


def test_the_sample_build_meets_the_contract(sample_build: Path) -> None:
    records = [json.loads(line) for f in sorted(sample_build.glob("*.jsonl")) for line in f.read_text().splitlines()]
    assert records and all(record_problems(r) == [] for r in records)


def test_a_record_may_list_every_fault_it_has() -> None:
    record = {"id": 1, "conversations": [{"from": "gpt", "value": ""}, {"from": "human"}], "meta": "x"}
    assert record_problems(record) == ["shape: 'id' is a JSON number, not a string", "shape: no 'image'",
                                       "shape: turn 2 must be an object with string 'from' and 'value'",
                                       "shape: 'meta' is a JSON string that does not hold an object"]
    assert check_record(record).turns is None
    record = {"id": "x", "image": "a.png", "conversations": [{"from": "gpt", "value": "<image>"}]}
    verdict = check_record(record)
    assert [f.kind for f in verdict.faults] == [RecordKind.ROLES, RecordKind.IMAGE_TOKEN]
    assert verdict.turns == record["conversations"]


def test_other_tools_records_without_task_source_split_or_meta_meet_the_contract() -> None:
    record = {"id": "x", "image": "a.png", "conversations": [{"from": "human", "value": "Describe.\n<image>"},
                                                             {"from": "gpt", "value": "A port."}]}
    assert record_problems(record) == []


def test_the_build_refuses_to_render_a_record_that_breaks_the_contract() -> None:
    record = Record(id="dota/val/x/caption", image="images/x.png", task="caption", source="dota", split="val",
                    turns=[Turn(question="Describe the image.", answer="  ")])
    with pytest.raises(ContractError, match=r"^record 'dota/val/x/caption' breaks the output record contract: "
                                            r"empty value: turn 2 \(gpt\) is empty$"):
        render(record, "llava", 100, 100, "image")


def test_box_text_that_cannot_be_read_is_named_alike_by_the_commands_that_read_boxes(broken_build, tmp_path: Path
                                                                                      ) -> None:
    """Beyond the contract, export and preview need the box text's flavour and space; validate asks
    for them only of a record that names a flavour (other tools' records have no box text)."""
    out, _ = broken_build
    folder = tmp_path / "out"
    folder.mkdir()
    shutil.copytree(out / "images", folder / "images")
    good = json.loads((out / "val.jsonl").read_text().splitlines()[0])
    cases = [({**good, "id": "no-meta", "meta": {}}, "box format: no meta.box_format: the flavour of the box "
                                                    "text is not known"),
             ({**good, "id": "pixels", "meta": {**good["meta"], "box_format": "pixels"}},
              f"box format: meta.box_format 'pixels' is not one of {', '.join(FLAVOURS)}"),
             ({**good, "id": "padded", "meta": {**good["meta"], "box_space": "padded"}},
              "box format: meta.box_space 'padded' is not one of square, image")]
    path = folder / "val.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [good] + [r for r, _ in cases]), encoding="utf-8")
    expected = [located(path, n, reason) for n, (_, reason) in enumerate(cases, start=2)]
    assert export(folder, tmp_path / "export", "llava-jsonl").problems == expected
    assert preview(folder, tmp_path / "preview", n=10).bad_lines == expected
    assert [str(v) for v in validate([path]).violations] == expected[1:]
