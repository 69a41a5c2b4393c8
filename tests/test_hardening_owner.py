"""Issue 11: one owner per output folder, images rewritten when their content changes, stale files
removed, identical requests in flight sent once."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from conftest import Scripted, completion
from PIL import Image
from pydantic import BaseModel
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.core.config import load_config
from rsgpt4v.core.ownership import identity, owned
from rsgpt4v.llm.cache import Cache
from rsgpt4v.llm.cost import PriceTable
from rsgpt4v.llm.engine import Engine
from rsgpt4v.llm.request import ChatRequest
from rsgpt4v.sources import sample_root

runner = CliRunner()


def _build(out: Path, *args: str):
    return runner.invoke(app, ["build", "--no-progress", "--dry-run", "--source", "dota", "--out", str(out), *args])


def _dota(root: Path, colour: tuple[int, int, int] = (90, 90, 90)) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labelTxt").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (300, 200), colour).save(root / "images" / "P1.png")
    (root / "labelTxt" / "P1.txt").write_text("10 10 60 10 60 40 10 40 ship 0\n")
    return root


def test_a_second_concurrent_build_is_stopped_with_one_line(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with owned(out, identity("dota", sample_root("dota"), None, None, None)):
        result = _build(out, "--sample")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert lines == [f"error: {out} is in use by another build (pid {__import__('os').getpid()}); wait for it to "
                     "finish or choose another --out"]
    assert not list(out.glob("*.jsonl"))


def test_the_lock_is_free_again_after_a_build(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _build(out, "--sample").exit_code == 0
    assert _build(out, "--sample").exit_code == 0


def test_another_split_into_a_built_folder_is_refused_then_replaces_it_with_force(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _build(out, "--sample").exit_code == 0
    assert sorted(p.name for p in out.glob("*.jsonl")) == ["train.jsonl", "val.jsonl"]
    train_images = sorted((out / "images" / "dota" / "train").iterdir())
    assert train_images
    result = _build(out, "--sample", "--split", "val")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"error: {out} holds another build (split None -> 'val'); choose another --out, or pass --force to replace it"]
    assert (out / "train.jsonl").exists()
    result = _build(out, "--sample", "--split", "val", "--force")
    assert result.exit_code == 0, result.output
    # The folder now holds exactly what its manifest describes.
    assert sorted(p.name for p in out.glob("*.jsonl")) == ["val.jsonl"]
    assert not (out / "images" / "dota" / "train").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["counts"]["by_split"]) == {"val"}


def test_another_source_into_a_built_folder_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _build(out, "--sample").exit_code == 0
    root = _dota(tmp_path / "other")
    result = _build(out, "--root", str(root))
    assert result.exit_code == 2
    assert f"holds another build (root {str(sample_root('dota').resolve())!r} -> {str(root.resolve())!r})" in result.output


def test_someone_elses_files_are_not_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "train.jsonl").write_text('{"id": "theirs"}\n')
    result = _build(out, "--sample")
    assert result.exit_code == 2
    assert "holds files rsgpt4v build did not write (train.jsonl)" in result.output
    assert (out / "train.jsonl").read_text() == '{"id": "theirs"}\n'


def test_a_changed_source_image_rewrites_its_window_image(tmp_path: Path) -> None:
    root, out = _dota(tmp_path / "root"), tmp_path / "out"
    assert _build(out, "--root", str(root)).exit_code == 0
    (image,) = (out / "images").rglob("*.png")
    with Image.open(image) as im:
        assert im.getpixel((5, 5)) == (90, 90, 90)
    _dota(root, colour=(200, 10, 10))
    assert _build(out, "--root", str(root)).exit_code == 0
    with Image.open(image) as im:
        assert im.getpixel((5, 5)) == (200, 10, 10)


def test_an_unchanged_image_is_not_rewritten(tmp_path: Path) -> None:
    root, out = _dota(tmp_path / "root"), tmp_path / "out"
    assert _build(out, "--root", str(root)).exit_code == 0
    (image,) = (out / "images").rglob("*.png")
    os.utime(image, ns=(10**18, 10**18))  # a time no rewrite can give it, whatever the clock's resolution
    assert _build(out, "--root", str(root)).exit_code == 0
    assert image.stat().st_mtime_ns == 10**18


def test_windows_no_longer_produced_are_removed_and_foreign_files_kept(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _build(out, "--sample").exit_code == 0
    first = {p.relative_to(out) for p in (out / "images").rglob("*.*")}
    (out / "images" / "notes.txt").write_text("mine")
    config = tmp_path / "c.yaml"
    config.write_text("tiling: {window: 600, overlap: 100}\n")
    assert _build(out, "--sample", "--config", str(config)).exit_code == 0
    now = {p.relative_to(out) for p in (out / "images").rglob("*.*")} - {Path("images/notes.txt")}
    assert first - now, "the windows of the old tiling are still there"
    referenced = {Path(json.loads(line)["image"]) for f in out.glob("*.jsonl") for line in f.read_text().splitlines()}
    assert referenced <= now
    assert all((out / p).exists() for p in now)
    assert not any((out / p).exists() for p in first - now)
    assert (out / "images" / "notes.txt").read_text() == "mine"


class Caption(BaseModel):
    caption: str


def test_identical_requests_in_flight_are_sent_once(tmp_path: Path, scripted_client) -> None:
    class Held(Scripted):
        """Answers only once the gate opens: the first request is still on its way when the second is asked."""

        def __init__(self, answers) -> None:
            super().__init__(answers)
            self.gate = asyncio.Event()

        async def __call__(self, request):
            await self.gate.wait()
            return super().__call__(request)

    handler = Held([(200, completion({"caption": "An airport."}), {})])
    engine = Engine(scripted_client(handler), Cache(tmp_path / "c.sqlite"), load_config().engine, "gpt-4o",
                    PriceTable.load())

    def build(feedback, attempt):
        return ChatRequest(stage="global", model="gpt-4o", messages=[{"role": "user", "content": "same"}],
                           response_model=Caption, params={})

    async def both():
        asks = asyncio.gather(engine.ask(build, Caption), engine.ask(build, Caption))
        for _ in range(1000):  # steps of the event loop, not time: until the second ask waits on the first's request
            if engine.stage_usage("global").cache_hits:
                break
            await asyncio.sleep(0)
        handler.gate.set()
        return await asks

    answers = asyncio.run(both())
    assert [a.parsed for a in answers] == [Caption(caption="An airport.")] * 2
    assert len(handler.bodies) == 1
    assert engine.usage["global"].api_calls == 1 and engine.usage["global"].cache_hits == 1


def test_a_foreign_jsonl_dropped_into_a_built_folder_is_noticed_and_kept(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _build(out, "--sample").exit_code == 0
    (out / "theirs.jsonl").write_text('{"id": "theirs"}\n')
    result = _build(out, "--sample")
    assert result.exit_code == 2
    assert "holds files rsgpt4v build did not write (theirs.jsonl)" in result.output
    assert _build(out, "--sample", "--force").exit_code == 0
    assert (out / "theirs.jsonl").read_text() == '{"id": "theirs"}\n'


def test_a_recipe_build_takes_the_same_lock(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (tmp_path / "data").mkdir()
    with owned(out, identity("dota", sample_root("dota"), None, None, None)):
        result = runner.invoke(app, ["build", "--no-progress", "--dry-run", "--recipe", "detection", "--data",
                                     str(tmp_path / "data"), "--skip-missing", "--out", str(out)])
    assert result.exit_code == 2
    assert "is in use by another build" in result.output
