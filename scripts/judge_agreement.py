"""How far the judge can be trusted: its verdicts on a labelled set of sentences about real images.

    python scripts/judge_agreement.py                          # the mock (offline): a floor, it cannot see
    OPENAI_API_KEY=... python scripts/judge_agreement.py --backend openai --judge gpt-4o-mini
    python scripts/judge_agreement.py --backend openai --judge Qwen/Qwen2.5-VL-72B-Instruct   # OPENAI_BASE_URL

The set (tests/judge/labelled.jsonl, README beside it) holds sentences written for the real DOTA and
RSICD images of the shared fixtures, each true or false of its image, half of them false, some
about one labelled object. Each image window gets one judge request with all its sentences, built
by the build's own request path (`StageRequests.judge_request`: prompts/judge.yaml, the clean
window, the labels, the sentences in a seeded shuffled order) and sent through the build's engine.
What is measured is the judge's one job: a false sentence must come back `contradicted`, a true one
must not. Printed: per image and in all, the confusion counts and the precision and recall of
`contradicted` (not_visible counts as not contradicted), and the requests' tokens and dollars.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

from PIL import Image

from rsgpt4v.core.config import load_config
from rsgpt4v.core.responses import JudgeResponse
from rsgpt4v.core.schema import Sample, Scene
from rsgpt4v.imaging.images import fit, open_image
from rsgpt4v.imaging.tiling import clip_to_image, make_scenes
from rsgpt4v.llm.cache import Cache
from rsgpt4v.llm.client import make_client
from rsgpt4v.llm.cost import PriceTable
from rsgpt4v.llm.engine import Engine
from rsgpt4v.prompting.stages import SentImage, StageRequests
from rsgpt4v.prompting.templates import PromptSet
from rsgpt4v.quality.judge import CONTRADICTED, Unit, numbered
from rsgpt4v.sources import get_source

REPO = Path(__file__).resolve().parents[1]
SET = REPO / "tests" / "judge" / "labelled.jsonl"
REAL = REPO.parent / "shared" / "fixtures" / "real"


def _scene(real: Path, image: str, source: str, window: list[int]) -> tuple[Scene, bool]:
    """The scene of a labelled window, and whether its source labels every object."""
    path = real / image
    if source == "dota":
        adapter = get_source("dota")
        sample = next(s for s in adapter(path.parent.parent) if isinstance(s, Sample) and s.image_id == path.stem)
        with Image.open(path) as im:
            width, height = im.size
        objects, _ = clip_to_image(sample, width, height)
        scene = next(s for s in make_scenes(sample, objects, width, height, load_config().tiling)
                     if list(s.window) == window)
        return scene, adapter.exhaustive_labels
    # A captioning image: no object labels (RSICD's captions are not needed to judge).
    sample = Sample(source=source, split="train", image_id=path.stem, image_path=path, rel_image=image)
    return Scene(sample=sample, window=tuple(window), objects=()), False


async def _judge(rows: list[dict], real: Path, backend: str, judge: str, config: Path | None) -> dict:
    cfg = load_config(config, {"judge": {"model": judge}})
    client = make_client(backend, cfg.model.request_timeout_s)
    prices = PriceTable.load()
    windows: dict[tuple[str, str, tuple[int, ...]], list[dict]] = {}
    for row in rows:
        windows.setdefault((row["image"], row["source"], tuple(row["window"])), []).append(row)
    verdicts: dict[str, tuple[str, str]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        engine = Engine(client, Cache(Path(scratch) / "cache.sqlite"), cfg.engine, judge, prices)
        for (image, source, window), group in windows.items():
            scene, exhaustive = _scene(real, image, source, list(window))
            requests = StageRequests(PromptSet.load(), cfg, cfg.model.name, exhaustive_labels=exhaustive)
            fitted, scale = fit(open_image(scene.sample.image_path, cfg.image.max_pixels).crop(scene.window),
                                cfg.image.max_side)
            clean = SentImage.of(fitted, scale, cfg.image)
            judged = numbered([(Unit("label", i), r["sentence"], r["about"]) for i, r in enumerate(group)],
                              f"{cfg.seed}/{image}/judge")
            answer = await engine.ask(lambda fb, at: requests.judge_request(scene, clean, judged, fb, at),
                                      JudgeResponse, StageRequests.check_judge(judged))
            if answer.parsed is None:
                raise SystemExit(f"{image}: the judge gave no usable answer ({answer.failure})")
            by_number = {v.id: v for v in answer.parsed.verdicts}
            for s in judged:
                v = by_number[s.number]
                verdicts[group[s.unit.key]["id"]] = (v.verdict, v.reason)
        usage = engine.usage.get("judge")
    return {"verdicts": verdicts, "usage": usage.model_dump() if usage else {}}


def agreement(rows: list[dict], verdicts: dict[str, tuple[str, str]]) -> dict:
    """Confusion counts and precision/recall of `contradicted` against the labels, per image and in all."""
    def scores(subset: list[dict]) -> dict:
        c = Counter()
        for r in subset:
            said = verdicts[r["id"]][0] == CONTRADICTED
            c[("tp" if said else "fn") if not r["truth"] else ("fp" if said else "tn")] += 1
        precision = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else None
        recall = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else None
        return {"sentences": len(subset), "false": sum(not r["truth"] for r in subset), **{k: c[k] for k in
                ("tp", "fp", "fn", "tn")}, "precision": precision, "recall": recall}

    images = sorted({r["image"] for r in rows})
    return {"all": scores(rows), **{image: scores([r for r in rows if r["image"] == image]) for image in images}}


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", type=Path, default=SET, help="the labelled sentences (JSON Lines)")
    parser.add_argument("--real", type=Path, default=REAL, help="the folder of real fixtures the set is about")
    parser.add_argument("--backend", default="mock", choices=("mock", "openai"))
    parser.add_argument("--judge", default="gpt-4o-mini", help="the judge model")
    parser.add_argument("--config", type=Path, help="a build config (image detail, engine attempts, ...)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    rows = [json.loads(line) for line in args.set.read_text(encoding="utf-8").splitlines() if line.strip()]
    found = asyncio.run(_judge(rows, args.real, args.backend, args.judge, args.config))
    result = {"judge": args.judge, "backend": args.backend, "agreement": agreement(rows, found["verdicts"]),
              "usage": found["usage"],
              "wrong": [{"id": r["id"], "truth": r["truth"], "sentence": r["sentence"],
                         "verdict": found["verdicts"][r["id"]][0], "reason": found["verdicts"][r["id"]][1]}
                        for r in rows if (found["verdicts"][r["id"]][0] == CONTRADICTED) == r["truth"]]}
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"judge {args.judge} ({args.backend}) on {len(rows)} labelled sentences, "
          f"{sum(not r['truth'] for r in rows)} false")
    print(f"{'image':<36}{'sentences':>10}{'false':>7}{'tp':>5}{'fp':>5}{'fn':>5}{'tn':>5}{'precision':>11}"
          f"{'recall':>8}")
    for name, s in result["agreement"].items():
        print(f"{name:<36}{s['sentences']:>10}{s['false']:>7}{s['tp']:>5}{s['fp']:>5}{s['fn']:>5}{s['tn']:>5}"
              f"{_pct(s['precision']):>11}{_pct(s['recall']):>8}")
    u = result["usage"]
    print(f"requests {u.get('api_calls', 0)}, tokens {u.get('prompt_tokens', 0):,} in, "
          f"{u.get('completion_tokens', 0):,} out, ${u.get('cost_usd', 0.0):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
