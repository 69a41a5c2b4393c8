"""How often the dialogue's first question is asked again because QC says it holds its own answer.

    python scripts/first_question_reasks.py     # the seven real DOTA label files and the sample, seeds 0 and 1

Builds the windows of the real DOTA label files of the shared fixtures (on blank images of their
size where the fixtures hold no image: the fake model reads the prompt, not the pixels) and of the
bundled sample through `--backend openai` against the loopback fake server writing like a real model
(`--answer-tokens-per-object 160 --mistakes 0.2`: dialogues open as real models open them, most
naming the main kind of object). Each dialogue's verdict in the cache says why each attempt was
rejected; printed: dialogues asked, those asked again because of the first question, and those that
failed after every attempt for it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import tempfile
from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.llm.fakeserver import FakeServer, Knobs

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "fixtures" / "real"
FIRST_QUESTION = "question 1 "


def _tree(real: Path, into: Path) -> Path:
    """A DOTA folder of the real label files, each with its real image or a blank one of its extent."""
    root = into / "dota" / "train"
    (root / "labelTxt").mkdir(parents=True)
    (root / "images").mkdir()
    for folder in ("dota_v1.0", "dota_v1.0_tiled"):
        for label in sorted((real / folder / "labelTxt").glob("*.txt")):
            shutil.copy(label, root / "labelTxt" / label.name)
            image = real / folder / "images" / f"{label.stem}.png"
            if image.is_file():
                shutil.copy(image, root / "images" / image.name)
            elif not (root / "images" / image.name).exists():
                coords = [float(v) for line in label.read_text().splitlines() if len(line.split()) >= 9
                          for v in line.split()[:8]]
                Image.new("RGB", (int(max(coords[0::2])) + 8, int(max(coords[1::2])) + 8), (96, 96, 96)).save(
                    root / "images" / image.name)
    return into / "dota"


def _dialogues(cache: Path) -> tuple[int, int, int]:
    """Dialogues asked, asked again for the first question, failed for it after every attempt."""
    db = sqlite3.connect(cache)
    asked = again = failed = 0
    for (text,) in db.execute("SELECT verdict FROM verdicts WHERE stage = 'dialogue'"):
        verdict = json.loads(text)
        asked += 1
        reasons = [h["detail"] for h in verdict["history"]]
        again += any(r.startswith(FIRST_QUESTION) for r in reasons)
        failed += not verdict["ok"] and bool(reasons) and reasons[-1].startswith(FIRST_QUESTION)
    db.close()
    return asked, again, failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=REAL)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="one build of each window per seed")
    args = parser.parse_args(argv)
    knobs = Knobs(answer_tokens_per_object=160, mistakes=0.2)
    totals = [0, 0, 0]
    with tempfile.TemporaryDirectory() as scratch, FakeServer(knobs) as server:
        env = {**os.environ, "OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "sk-measure"}
        root = _tree(args.real, Path(scratch))
        runs = [(f"{name}, seed {seed}", where, seed) for seed in args.seeds
                for name, where in (("real DOTA labels", ["--root", str(root)]), ("bundled sample", ["--sample"]))]
        for name, where, seed in runs:
            out = Path(scratch) / name.replace(" ", "_").replace(",", "")
            result = CliRunner().invoke(app, ["build", "--no-progress", "--source", "dota", *where, "--backend",
                                              "openai", "--seed", str(seed), "--out", str(out)], env=env,
                                        catch_exceptions=False)
            if result.exit_code != 0:
                print(result.output, file=sys.stderr)
                return 1
            found = _dialogues(out / "cache.sqlite")
            totals = [a + b for a, b in zip(totals, found)]
            print(f"{name:<28} {found[0]:>3} dialogues, {found[1]:>3} asked again for question 1, "
                  f"{found[2]:>3} failed for it")
    asked, again, failed = totals
    print(f"{'all':<28} {asked:>3} dialogues, {again:>3} asked again for question 1 ({again / asked:.0%}), "
          f"{failed:>3} failed for it after every attempt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
