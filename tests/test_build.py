"""End to end: `rsgpt4v build` through the CLI, the real openai client, the mock and a loopback server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import LoopbackServer, completion
from PIL import Image
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.core.issue_codes import IssueCode
from rsgpt4v.core.schema import Defect
from rsgpt4v.llm.mock import completion_for
from rsgpt4v.sources import dota
from rsgpt4v.tools.stats import stats

runner = CliRunner()


def _build(*args: str, env: dict[str, str] | None = None):
    return runner.invoke(app, ["build", "--no-progress", *args], env=env, catch_exceptions=False)


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for f in sorted(out.glob("*.jsonl")) for line in f.read_text().splitlines()]


def test_sample_dry_run_writes_llava_records_for_every_task(sample_build: Path) -> None:
    records = _records(sample_build)
    assert len(records) >= 10
    tasks = {r["task"] for r in records}
    assert tasks == {"caption", "detailed_description", "grounded_description", "region_description",
                     "region_attributes", "grounding",
                     "multi_turn_reasoning", "detection", "counting", "presence"}
    assert {r["split"] for r in records} == {"train", "val"}
    for r in records:
        conv = r["conversations"]
        assert [c["from"] for c in conv] == ["human", "gpt"] * (len(conv) // 2) and len(conv) >= 2
        text = "".join(c["value"] for c in conv)
        assert text.count("<image>") == 1 and conv[0]["value"].startswith("<image>\n")
        assert all(c["value"].strip() for c in conv)
        image = sample_build / r["image"]
        with Image.open(image) as im:
            x0, y0, x1, y1 = r["meta"]["window"]
            assert im.size == (x1 - x0, y1 - y0)
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids))


def test_large_sample_image_is_tiled(sample_build: Path) -> None:
    windows = {tuple(r["meta"]["window"]) for r in _records(sample_build) if r["meta"]["source_image"].endswith("P9001.png")}
    assert len(windows) > 1
    assert all(x1 - x0 <= 1024 and y1 - y0 <= 1024 for x0, y0, x1, y1 in windows)


def test_boxes_in_text_match_pixel_boxes_in_meta(sample_build: Path) -> None:
    from rsgpt4v.records.boxtext import BOX_PATTERNS, parse_box

    checked = 0
    for r in _records(sample_build):
        if r["task"] not in ("detection", "grounding", "region_description"):
            continue
        x0, y0, x1, y1 = r["meta"]["window"]
        text = "\n".join(c["value"] for c in r["conversations"])
        found = [m.group(0) for m in BOX_PATTERNS["llava"].finditer(text)]
        assert len(found) == len(r["meta"]["boxes"])
        for box_text, pixel in zip(found, r["meta"]["boxes"]):
            back = parse_box(box_text, "llava", x1 - x0, y1 - y0, r["meta"]["box_space"])
            assert all(abs(a - b) <= 0.005 * max(x1 - x0, y1 - y0) + 1e-9 for a, b in zip(back, pixel))
            checked += 1
    assert checked > 10


def test_counting_and_detection_agree_with_labels(sample_build: Path) -> None:
    from rsgpt4v.language.naming import display
    from rsgpt4v.sources.dota import VOCABULARIES, parse_label_file

    label = Path(__file__).resolve().parents[1] / "rsgpt4v/sample_data/dota/train/labelTxt/P9003.txt"
    counts: dict[str, int] = {}
    for obj in parse_label_file(label).objects:
        counts[obj.category] = counts.get(obj.category, 0) + 1
    records = {r["task"]: r for r in _records(sample_build) if r["id"].startswith("dota/train/P9003/")}
    turns = records["counting"]["conversations"]
    asked = 0
    for question, answer in zip(turns[::2], turns[1::2]):
        category = next(c for c in VOCABULARIES["2.0"] if display(c, "dota").plural in question["value"])
        n = counts.get(category, 0)
        assert (str(n) in answer["value"]) if n else ("no" in answer["value"].lower() or "any" in answer["value"])
        asked += 1
    assert asked == len(counts) + 1          # each present category, and one absent
    assert records["counting"]["meta"]["answers_from"] == "labels"
    detection = records["detection"]
    assert len(detection["meta"]["boxes"]) == sum(min(n, 10) for n in counts.values())
    assert f"{counts['small-vehicle'] - 10} more" in json.dumps(detection["conversations"])


def test_manifest_records_config_prompts_and_usage(sample_build: Path) -> None:
    m = json.loads((sample_build / "manifest.json").read_text())
    assert m["status"] == "complete"
    assert m["config"]["tiling"] == {"window": 1024, "overlap": 200, "min_visible": 0.7, "context_visible": 0.2,
                                     "skip_empty": True}
    assert set(m["prompts"]["sha"]) == {"local", "global", "dialogue", "judge", "instructions"}
    assert "judge" not in m and "judge" not in m["usage"]["by_stage"]   # no judge unless asked for
    assert m["usage"]["api_calls"] > 0 and m["usage"]["prompt_tokens"] > 0
    assert m["counts"]["by_task"]["caption"] == m["counts"]["windows"]
    assert m["failures"]["count"] == 0


def test_same_build_twice_is_byte_identical_and_rerun_is_free(sample_build: Path, tmp_path: Path) -> None:
    second = tmp_path / "again"
    assert _build("--source", "dota", "--sample", "--dry-run", "--out", str(second)).exit_code == 0
    for f in sorted(sample_build.glob("*.jsonl")):
        assert (second / f.name).read_bytes() == f.read_bytes()
    rerun = _build("--source", "dota", "--sample", "--dry-run", "--out", str(second))
    assert "0 sent" in rerun.output
    assert json.loads((second / "manifest.json").read_text())["usage"]["api_calls"] == 0


def test_real_dota_fixture_builds_the_one_image_and_skips_six(real_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "real"
    result = _build("--source", "dota", "--root", str(real_dir / "dota_v1.0"), "--dry-run", "--out", str(out))
    assert result.exit_code == 0, result.output
    m = json.loads((out / "manifest.json").read_text())
    assert m["counts"]["samples"] == 1
    skipped_files = sorted(i["file"] for i in m["issues"]["list"] if i["kind"] == "skip" and "image" in i["reason"])
    assert skipped_files == [f"labelTxt/{n}.txt" for n in ("P0706", "P0770", "P1088", "P1234", "P2598", "P2709")]
    assert m["issues"]["skipped"] >= 6
    records = _records(out)
    assert {r["meta"]["source_image"] for r in records} == {"images/P1888.png"}
    counting = next(r for r in records if r["task"] == "counting")
    assert "small" in json.dumps(counting["conversations"])


def _bad_dataset(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "labelTxt").mkdir()
    Image.new("RGB", (300, 200), (90, 110, 80)).save(root / "images" / "P1.png")
    (root / "labelTxt" / "P1.txt").write_bytes(
        b"imagesource:GoogleEarth\r\ngsd:0.5\r\n10 10 60 10 60 40 10 40 plane 0\r\n"
        b"10 10 60 10 oops\r\n100 100 140 100 140 120 100 120 spaceship 0\r\n")
    Image.new("RGB", (300, 200)).save(root / "images" / "P2.png")
    (root / "images" / "P2.png").write_bytes((root / "images" / "P2.png").read_bytes()[:60])
    (root / "labelTxt" / "P2.txt").write_bytes(b"10 10 60 10 60 40 10 40 plane 0\r\n")
    (root / "labelTxt" / "P3.txt").write_bytes(b"10 10 60 10 60 40 10 40 ship 0\r\n")
    return root


def test_bad_input_is_skipped_named_and_counted(tmp_path: Path) -> None:
    root = _bad_dataset(tmp_path / "bad")
    out = tmp_path / "out"
    result = _build("--source", "dota", "--root", str(root), "--dry-run", "--out", str(out))
    assert result.exit_code == 0, result.output
    m = json.loads((out / "manifest.json").read_text())
    listed = {(i["file"], i.get("line"), i["kind"]) for i in m["issues"]["list"]}
    assert ("labelTxt/P1.txt", 4, "skip") in listed            # malformed line, named with its line
    assert any(f == "labelTxt/P3.txt" and k == "skip" for f, _, k in listed)   # label without image
    assert any(f == "images/P2.png" and k == "skip" for f, _, k in listed)     # truncated image
    assert any(k == "warning" and f.startswith("labelTxt/P1.txt") for f, _, k in listed)  # unknown category
    assert m["counts"]["samples"] == 1
    assert {r["meta"]["source_image"] for r in _records(out)} == {"images/P1.png"}
    assert "labelTxt/P1.txt:4" in result.output


def test_issues_are_counted_by_code_whatever_the_message_says(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _bad_dataset(tmp_path / "bad")
    assert _build("--source", "dota", "--root", str(root), "--dry-run", "--out", str(tmp_path / "a")).exit_code == 0
    # The same build with every DOTA object-line message reworded: the counts must not move.
    monkeypatch.setattr(dota, "_malformed", lambda detail: Defect(IssueCode.MALFORMED_ENTRY, f"bad line ({detail})"))
    assert _build("--source", "dota", "--root", str(root), "--dry-run", "--out", str(tmp_path / "b")).exit_code == 0
    a, b = (json.loads((tmp_path / n / "manifest.json").read_text())["issues"] for n in "ab")
    assert a["by_reason"] == b["by_reason"] == {"skip: image_missing": 1, "skip: image_unreadable": 1,
                                                "skip: malformed_entry": 1, "warning: unknown_category": 1}
    assert [i["reason"] for i in a["list"]] != [i["reason"] for i in b["list"]]
    # A damaged image is found when the image side decodes it, after later images are listed.
    assert [(i["code"], i["file"]) for i in a["list"]] == [
        ("malformed_entry", "labelTxt/P1.txt"), ("unknown_category", "labelTxt/P1.txt"),
        ("image_missing", "labelTxt/P3.txt"), ("image_unreadable", "images/P2.png")]


def test_openai_backend_sends_data_urls_and_strict_schemas(tmp_path: Path) -> None:
    server = LoopbackServer(lambda body: (200, completion_for(body)))
    try:
        env = {"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "sk-loopback-secret-123"}
        out = tmp_path / "live"
        result = _build("--source", "dota", "--sample", "--limit", "1", "--backend", "openai", "--model",
                        "gpt-4o-mini", "--out", str(out), env=env)
        assert result.exit_code == 0, result.output
    finally:
        server.close()
    assert server.bodies
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["model"]["name"] == "gpt-4o-mini" and "model" not in manifest   # recorded once
    assert {b["response_format"]["json_schema"]["name"] for b in server.bodies} == {
        "LocalResponse", "GlobalResponse", "DialogueResponse"}
    for body in server.bodies:
        assert body["model"] == "gpt-4o-mini"
        assert body["response_format"]["json_schema"]["strict"] is True
        images = [p for m in body["messages"] if isinstance(m["content"], list) for p in m["content"]
                  if p["type"] == "image_url"]
        # the local stage sends the clean window beside the marked one
        want = 2 if body["response_format"]["json_schema"]["name"] == "LocalResponse" else 1
        assert len(images) == want and all(i["image_url"]["url"].startswith("data:image/jpeg;base64,")
                                           for i in images)
    assert server.headers and all(h["authorization"] == "Bearer sk-loopback-secret-123" for h in server.headers)
    for f in out.rglob("*"):
        if f.is_file():
            assert b"sk-loopback-secret-123" not in f.read_bytes(), f


def test_a_profile_in_the_config_names_the_token_parameter(tmp_path: Path) -> None:
    """Ollama reads max_tokens only (it drops max_completion_tokens without a word): its profile says so."""
    server = LoopbackServer(lambda body: (200, completion_for(body)))
    config = tmp_path / "ollama.yaml"
    config.write_text("model: {profile: ollama}\n")
    try:
        env = {"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "x"}
        result = _build("--source", "dota", "--sample", "--limit", "1", "--config", str(config),
                        "--out", str(tmp_path / "o"), env=env)
        assert result.exit_code == 0, result.output
    finally:
        server.close()
    assert server.bodies and all("max_completion_tokens" not in b and b["max_tokens"] > 0 for b in server.bodies)


def test_model_that_always_refuses_fails_windows_not_the_run(tmp_path: Path) -> None:
    server = LoopbackServer(lambda body: (200, completion(None, refusal="I'm sorry, I can't assist with that.")))
    try:
        env = {"OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "sk-x"}
        out = tmp_path / "refused"
        result = _build("--source", "dota", "--sample", "--limit", "1", "--out", str(out), env=env)
        assert result.exit_code == 0, result.output
    finally:
        server.close()
    m = json.loads((out / "manifest.json").read_text())
    assert m["failures"]["count"] > 0
    assert m["usage"]["by_stage"]["local"]["failures"] == {"refusal": m["usage"]["by_stage"]["local"]["api_calls"] // 3}
    assert {f["kind"] for f in m["failures"]["list"]} == {"refusal"}
    # every listed failure is one the engine counted, so stats' counts by kind add up to the list
    assert stats(out)["manifest"]["failures"]["by_reason"] == {"refusal": m["failures"]["count"]}
    tasks = {r["task"] for r in _records(out)}
    assert tasks == {"detection", "counting", "presence"}
    assert "sorry" not in json.dumps(_records(out)).lower()


def test_missing_key_is_one_clear_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["build", "--source", "dota", "--sample", "--out", str(tmp_path / "o")],
                           env={"OPENAI_API_KEY": ""})
    assert result.exit_code == 2
    assert "OPENAI_API_KEY is not set" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args, message", [
    (["--source", "nope", "--sample"], "unknown source 'nope'"),
    (["--source", "dota", "--root", "/does/not/exist"],
     "/does/not/exist: no such folder; give --root the dataset folder as downloaded"),
    (["--source", "dota"], "exactly one of --root PATH or --sample"),
])
def test_bad_arguments_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["build", "--dry-run", "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == 2
    assert message in result.output


def test_sources_lists_dota() -> None:
    result = runner.invoke(app, ["sources"])
    assert result.exit_code == 0
    assert any(line.split()[0] == "dota" and "DOTA" in line for line in result.output.splitlines())
    assert "-O version=...  1.0, 1.5 or 2.0: which labelTxt-vX folder to read" in result.output


def test_every_adapter_option_is_explained() -> None:
    from rsgpt4v.sources import adapter_options, available

    for name, cls in available().items():
        for option in adapter_options(cls):
            assert len(cls.options_help.get(option, "").split()) >= 5, (name, option)


def test_adapter_options_pass_through_and_unknown_ones_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "v15"
    (root / "images").mkdir(parents=True)
    (root / "labelTxt").mkdir()
    Image.new("RGB", (200, 200)).save(root / "images" / "P1.png")
    (root / "labelTxt" / "P1.txt").write_bytes(b"10.0 10.0 60.0 10.0 60.0 40.0 10.0 40.0 container-crane 0\r\n")
    strict = _build("--source", "dota", "--root", str(root), "--dry-run", "-O", "version=1.0", "--out", str(tmp_path / "a"))
    warnings = json.loads((tmp_path / "a" / "manifest.json").read_text())["issues"]["warnings"]
    assert strict.exit_code == 0 and warnings == 1          # container-crane is not a v1.0 class
    _build("--source", "dota", "--root", str(root), "--dry-run", "-O", "version=1.5", "--out", str(tmp_path / "b"))
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["issues"]["warnings"] == 0
    bad = runner.invoke(app, ["build", "--source", "dota", "--root", str(root), "--dry-run", "-O", "obb=true",
                              "--out", str(tmp_path / "c")])
    assert bad.exit_code == 2 and "KEY one of: version" in bad.output


def test_images_keep_their_source_compression(tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    (root / "images").mkdir(parents=True)
    (root / "labelTxt").mkdir()
    Image.new("RGB", (300, 200), (120, 90, 60)).save(root / "images" / "J1.jpg", quality=80)
    Image.new("RGB", (1300, 300), (60, 90, 120)).save(root / "images" / "J2.jpg", quality=80)
    Image.new("RGB", (300, 200), (90, 120, 60)).save(root / "images" / "T1.tif")
    for stem in ("J1", "J2", "T1"):
        (root / "labelTxt" / f"{stem}.txt").write_bytes(b"10 10 60 10 60 40 10 40 plane 0\r\n"
                                                        b"1210 10 1260 10 1260 40 1210 40 ship 0\r\n")
    out = tmp_path / "out"
    assert _build("--source", "dota", "--root", str(root), "--dry-run", "--out", str(out)).exit_code == 0
    images = {r["image"] for r in _records(out)}
    assert images == {"images/dota/train/J1__0_0_300_200.jpg", "images/dota/train/J2__0_0_1024_300.jpg",
                      "images/dota/train/J2__276_0_1300_300.jpg", "images/dota/train/T1__0_0_300_200.png"}
    # a whole JPEG is copied byte for byte: no second round of compression
    assert (out / "images/dota/train/J1__0_0_300_200.jpg").read_bytes() == (root / "images" / "J1.jpg").read_bytes()


def test_plugins_register_through_entry_points(monkeypatch, tmp_path: Path) -> None:
    import rsgpt4v.sources as registry
    from rsgpt4v.sources.base import Source

    class Mine(Source):
        name = "mine"
        description = "A lab's own dataset"
        task_kind = "classification"

        def __iter__(self):
            return iter(())

    class EntryPoint:
        def __init__(self, name: str) -> None:
            self.name = name

        def load(self) -> type[Source]:
            return Mine

    monkeypatch.setattr(registry, "entry_points",
                        lambda group: [EntryPoint("mine"), EntryPoint("dota")] if group == "rsgpt4v.sources" else [])
    assert registry.get_source("mine") is Mine
    assert registry.get_source("dota").__name__ == "DOTA"        # a plugin may not shadow a built-in
    listing = runner.invoke(app, ["sources"]).output
    assert any(line.startswith("mine") and "A lab's own dataset" in line for line in listing.splitlines())
