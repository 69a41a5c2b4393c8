"""`rsgpt4v estimate`: requests, tokens and dollars per stage, before anything is sent.

The build runs as usual, but every request is answered locally by the mock (so later stages see
realistic inputs) and counted instead of sent, shaped by the backend profile as a build would send
it: input tokens exactly as the target model's image rule (its family's, in the price table, or the
profile's) and a text estimate give them, output tokens from the typical answer lengths in the price
table. Each stage is priced at its own model's prices: the judge's (`--judge`) at the judge's. The
dollars include the re-asks that unusable answers cause (`engine.reask_rate` per request, or the rate
an earlier build's cache measured), counted apart in `reasks`; a model you serve yourself has no
price, and its hours follow from the server's measured throughput (`hours`). Nothing is cached and no
output is written.

No pixel is decoded or encoded: a request's image tokens need only the window's size, so the build
sends sized placeholders. By default only a seeded sample of the images is looked at
(`stratified_sample`: strata of images of like size, each sampled in proportion), and each image
looked at stands for the images of its stratum; `extrapolate` gives the total with the 95 % margin
the sample implies. `--exact` looks at every image.
"""

from __future__ import annotations

import json
import math
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rsgpt4v.llm.cost import PriceTable, prompt_token_parts
from rsgpt4v.llm.engine import Engine
from rsgpt4v.llm.mock import completion_for
from rsgpt4v.llm.request import ChatRequest


class EstimatingEngine(Engine):
    """An engine that prices requests instead of sending them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tally: dict[str, dict[str, float]] = defaultdict(lambda: {"requests": 0, "reasks": 0, "text_tokens": 0,
                                                                      "image_tokens": 0, "output_tokens": 0})

    async def complete(self, request: ChatRequest) -> dict[str, Any]:
        body = request.body(self.server.profile)
        completion = completion_for(body)
        text, image = prompt_token_parts(body, self.image_rule(request.model))
        row = self.tally[request.stage]
        row["requests"] += 1
        # The mock's answers are always usable; real ones are not: budget the re-asks they cause.
        row["reasks"] += self.cfg.reask_rate
        row["text_tokens"] += text
        row["image_tokens"] += image
        row["output_tokens"] += self._expected_output(request.stage, completion)
        return completion

    def _expected_output(self, stage: str, completion: dict[str, Any]) -> int:
        expected = self.prices.expected_output
        answer = json.loads(completion["choices"][0]["message"]["content"])
        if stage == "local":
            return expected["local_base"] + expected["local_per_object"] * len(answer["objects"])
        if stage == "judge":
            return expected.get("judge_base", 0) + expected.get("judge_per_sentence", 0) * len(answer["verdicts"])
        return expected.get(stage, 0)


def hours(row: dict[str, Any], tokens_per_second: float) -> float:
    """Hours a server that processes `tokens_per_second` (input and output together, as measured on
    it) takes for a row's requests and their re-asks."""
    share = 1 + row["reasks"] / row["requests"] if row["requests"] else 1
    tokens = (row["text_tokens"] + row["image_tokens"] + row["output_tokens"]) * share
    return tokens / tokens_per_second / 3600


def cost_table(tally: Tally, prices: PriceTable, models: Mapping[str, str]) -> list[dict[str, Any]]:
    """One row per stage and a total: requests and their tokens, the expected re-asks, and live and
    batch dollars for both, each stage at the prices of its model in `models` (None when a model is
    not priced)."""
    keys = TALLY_KEYS
    exact = [{"stage": stage, **dict(tally[stage])} for stage in ("local", "global", "dialogue", "judge")
             if stage in tally]
    rows = []
    for row in exact:
        # A re-ask costs about what the request it repeats did.
        share = 1 + row["reasks"] / row["requests"] if row["requests"] else 1
        live = prices.dollars(models[row["stage"]], (row["text_tokens"] + row["image_tokens"]) * share,
                              row["output_tokens"] * share)
        rows.append({"stage": row["stage"], **{k: round(row[k]) for k in keys},
                     "usd_live": None if live is None else round(live, 4),
                     "usd_batch": None if live is None else round(live * prices.batch_discount, 4)})
    money = [r["usd_live"] for r in rows]
    total = None if any(m is None for m in money) else round(sum(money), 4)  # type: ignore[arg-type]
    rows.append({"stage": "total", **{k: round(sum(r[k] for r in exact)) for k in keys}, "usd_live": total,
                 "usd_batch": None if total is None else round(total * prices.batch_discount, 4)})
    return rows


Tally = dict[str, dict[str, float]]
TALLY_KEYS = ("requests", "reasks", "text_tokens", "image_tokens", "output_tokens")
# Strata of images of like size; each sampled stratum gives at least two images, for its spread.
_STRATA = 4
_Z95 = 1.96


@dataclass(frozen=True)
class SamplePlan:
    """Which images an estimate looks at: per stratum, every image's index and those picked."""

    strata: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]

    @property
    def weights(self) -> dict[int, float]:
        """Each picked image's weight: how many images of its stratum it stands for."""
        return {i: len(every) / len(picked) for every, picked in self.strata for i in picked}

    @property
    def looked_at(self) -> int:
        return sum(len(picked) for _, picked in self.strata)

    @property
    def exact(self) -> bool:
        return all(len(every) == len(picked) for every, picked in self.strata)


def stratified_sample(sizes: Sequence[int], n: int | None, seed: int) -> SamplePlan:
    """A seeded sample of `n` of the images whose pixel counts are `sizes` (all of them for None or
    when there are no more): the images in order of size cut into up to four strata of equal count,
    each sampled in proportion to its count (at least two)."""
    everyone = tuple(range(len(sizes)))
    if n is None or n >= len(sizes):
        return SamplePlan(((everyone, everyone),))
    order = sorted(everyone, key=lambda i: (sizes[i], i))
    k = max(1, min(_STRATA, n // 2))
    cuts = [round(j * len(order) / k) for j in range(k + 1)]
    rng = random.Random(seed)
    strata = []
    for lo, hi in zip(cuts, cuts[1:]):
        members = tuple(sorted(order[lo:hi]))
        take = min(len(members), max(2, round(n * len(members) / len(order))))
        strata.append((members, tuple(sorted(rng.sample(members, take)))))
    return SamplePlan(tuple(strata))


def extrapolate(plan: SamplePlan, values: Mapping[int, float]) -> tuple[float, float]:
    """The total of a per-image figure over all images from the images looked at (`values`, by
    index; an image that made no requests counts 0), and the 95 % margin of that total (the
    stratified estimator's standard error times 1.96; 0 when every image was looked at)."""
    total = variance = 0.0
    for every, picked in plan.strata:
        xs = [values.get(i, 0.0) for i in picked]
        mean = sum(xs) / len(xs)
        total += len(every) * mean
        if len(xs) > 1:
            s2 = sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)
            variance += len(every) ** 2 * (1 - len(xs) / len(every)) * s2 / len(xs)
    return total, _Z95 * math.sqrt(variance)


def weighted_tally(per_image: Mapping[int, Tally], weights: Mapping[int, float]) -> Tally:
    """The tallies of the images looked at, each times its weight, added up per stage."""
    total: Tally = defaultdict(lambda: dict.fromkeys(TALLY_KEYS, 0.0))
    for i, tally in per_image.items():
        for stage, row in tally.items():
            for key in TALLY_KEYS:
                total[stage][key] += row[key] * weights.get(i, 1.0)
    return dict(total)


def tally_delta(after: Tally, before: Tally) -> Tally:
    """What was tallied between two snapshots (`snapshot`) of an engine's tally."""
    return {stage: {k: row[k] - before.get(stage, {}).get(k, 0.0) for k in TALLY_KEYS} for stage, row in after.items()}


def snapshot(tally: Tally) -> Tally:
    return {stage: dict(row) for stage, row in tally.items()}
