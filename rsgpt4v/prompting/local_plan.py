"""Which objects each local request lists: a per-window cap, then requests sized to fit their answer.

A careful model writes about `local.output_tokens_per_object` tokens per object, so a request lists
no more objects than `max_output_tokens.local` holds with that budget. A dense window becomes
several requests; their objects are spread over the window (each request's objects lie far apart),
so the marks drawn on one image stay few and apart, and legible. An answer cut at the token limit
is split in two, never resent unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rsgpt4v.core.config import BuildConfig
from rsgpt4v.imaging.geometry import polygon_area
from rsgpt4v.prompting.marks import Mark


@dataclass(frozen=True)
class LocalPlan:
    """The requests of one window (their marks) and the marks named only by counts."""

    chunks: list[list[Mark]]
    omitted: list[Mark]


def objects_per_request(cfg: BuildConfig) -> int:
    """How many objects one local answer holds within its output-token limit."""
    limit = cfg.model.max_output_tokens.get("local", 1000)
    room = limit - cfg.local.output_tokens_base
    return max(1, min(cfg.local.max_objects, room // cfg.local.output_tokens_per_object))


def select_listed(marks: Sequence[Mark], cap: int) -> list[Mark]:
    """Which objects to describe when there are more than `cap`: every category gets its turn
    (rare ones are not crowded out by hundreds of vehicles), whole and large objects first."""
    by_category: dict[str, list[Mark]] = {}
    for m in sorted(marks, key=lambda m: (m.obj.truncated, -polygon_area(m.obj.polygon), m.id)):
        by_category.setdefault(m.obj.category, []).append(m)
    queues = sorted(by_category.values(), key=lambda q: (len(q), q[0].obj.category))
    chosen: list[Mark] = []
    while len(chosen) < cap and any(queues):
        for queue in queues:
            if queue and len(chosen) < cap:
                chosen.append(queue.pop(0))
    return sorted(chosen, key=lambda m: m.id)


def _centre(m: Mark) -> tuple[float, float]:
    b = m.obj.box
    return (b[0] + b[2]) / 2, (b[1] + b[3]) / 2


def spread(marks: Sequence[Mark], n_chunks: int) -> list[list[Mark]]:
    """`marks` dealt into `n_chunks` groups of near-equal size whose members lie far apart: each mark
    goes to the open group whose nearest member is farthest from it."""
    if n_chunks <= 1:
        return [sorted(marks, key=lambda m: m.id)]
    capacity = math.ceil(len(marks) / n_chunks)
    groups: list[list[Mark]] = [[] for _ in range(n_chunks)]
    for mark in sorted(marks, key=lambda m: m.id):
        c = _centre(mark)

        def room(group: list[Mark]) -> float:
            return min((math.dist(c, _centre(o)) for o in group), default=math.inf)

        open_groups = [i for i, g in enumerate(groups) if len(g) < capacity]
        best = max(open_groups, key=lambda i: (room(groups[i]), -len(groups[i]), -i))
        groups[best].append(mark)
    return [sorted(g, key=lambda m: m.id) for g in groups if g]


def plan_local(marks: Sequence[Mark], cfg: BuildConfig) -> LocalPlan:
    cap, overflow = cfg.local.max_objects, cfg.local.overflow
    if len(marks) <= cap or overflow == "chunk":
        described, omitted = list(marks), []
    else:
        described = select_listed(marks, cap)
        ids = {m.id for m in described}
        omitted = [m for m in marks if m.id not in ids]
    per_request = objects_per_request(cfg)
    return LocalPlan(spread(described, math.ceil(len(described) / per_request)) if described else [], omitted)


def split(chunk: Sequence[Mark]) -> list[list[Mark]]:
    """A request's marks in two requests of about half the size, each still spread out."""
    return spread(chunk, 2)
