"""`rsgpt4v estimate`: requests, tokens and dollars per stage, before anything is sent.

The build runs as usual, but every request is answered locally by the mock (so later stages see
realistic inputs) and counted instead of sent, shaped by the backend profile as a build would send
it: input tokens exactly as the target model's image rule (its family's, in the price table, or the
profile's) and a text estimate give them, output tokens from the typical answer lengths in the price
table. The dollars include the re-asks that unusable answers cause (`engine.reask_rate` per request, or
the rate an earlier build's cache measured), counted apart in `reasks`; a model you serve yourself has
no price, and its hours follow from the server's measured throughput. Nothing is cached and no output
is written.
"""

from __future__ import annotations

import json
from collections import defaultdict
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
        text, image = prompt_token_parts(body, self._image_rule)
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
        if stage == "local":
            listed = len(json.loads(completion["choices"][0]["message"]["content"])["objects"])
            return expected["local_base"] + expected["local_per_object"] * listed
        return expected.get(stage, 0)


def hours(row: dict[str, Any], tokens_per_second: float) -> float:
    """Hours a server that processes `tokens_per_second` (input and output together, as measured on
    it) takes for a row's requests and their re-asks."""
    share = 1 + row["reasks"] / row["requests"] if row["requests"] else 1
    tokens = (row["text_tokens"] + row["image_tokens"] + row["output_tokens"]) * share
    return tokens / tokens_per_second / 3600


def cost_table(tally: dict[str, dict[str, float]], prices: PriceTable, model: str,
               scale: float = 1.0) -> list[dict[str, Any]]:
    """One row per stage and a total: requests and their tokens, the expected re-asks, and live and
    batch dollars for both (None when the model is not priced); `scale` extrapolates counts from a
    subset of the images to all of them."""
    keys = ("requests", "reasks", "text_tokens", "image_tokens", "output_tokens")
    exact = [{"stage": stage, **{k: v * scale for k, v in tally[stage].items()}}
             for stage in ("local", "global", "dialogue") if stage in tally]
    exact.append({"stage": "total", **{k: sum(r[k] for r in exact) for k in keys}})
    rows = []
    for row in exact:
        # A re-ask costs about what the request it repeats did.
        share = 1 + row["reasks"] / row["requests"] if row["requests"] else 1
        live = prices.dollars(model, (row["text_tokens"] + row["image_tokens"]) * share, row["output_tokens"] * share)
        rows.append({"stage": row["stage"], **{k: round(row[k]) for k in keys},
                     "usd_live": None if live is None else round(live, 4),
                     "usd_batch": None if live is None else round(live * prices.batch_discount, 4)})
    return rows
