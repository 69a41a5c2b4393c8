"""What the hierarchical prompter returns for one scene: the stages' answers and what went wrong."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

from rsgpt4v.core.responses import DialogueResponse, GlobalResponse, ObjectNote


class StageFailure(NamedTuple):
    """A stage that ended without a usable answer: `kind` is what the run report counts (the engine's,
    a stage check's or QC's), `reason` the message ("kind: detail")."""

    stage: str
    kind: str
    reason: str


@dataclass
class SceneAnswers:
    """The three stages' answers for one scene; a stage that failed leaves its slot empty.

    `left_out` counts listed objects that got no note, by reason (`summarised`: named by counts
    only, past `local.max_objects`; otherwise the kind of the failure that cost the note).
    """

    notes: dict[int, ObjectNote] = field(default_factory=dict)
    scene_text: GlobalResponse | None = None
    dialogue: DialogueResponse | None = None
    failures: list[StageFailure] = field(default_factory=list)
    left_out: Counter[str] = field(default_factory=Counter)
    deferred: bool = False
