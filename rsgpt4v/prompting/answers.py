"""What the hierarchical prompter returns for one scene: the stages' answers and what went wrong."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

from rsgpt4v.core.responses import DialogueResponse, GlobalResponse, ObjectNote
from rsgpt4v.prompting.marks import Mark
from rsgpt4v.quality.judge import JudgeOutcome


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
    only, past `local.max_objects`; otherwise the kind of the failure that cost the note). `chunks`
    says which local request (its marks) wrote each note, so the judge can send a note back to it;
    `judge` is what the judge made of the answers (None: no judge).
    """

    notes: dict[int, ObjectNote] = field(default_factory=dict)
    chunks: dict[int, list[Mark]] = field(default_factory=dict)
    judge: JudgeOutcome | None = None
    scene_text: GlobalResponse | None = None
    dialogue: DialogueResponse | None = None
    failures: list[StageFailure] = field(default_factory=list)
    left_out: Counter[str] = field(default_factory=Counter)
    deferred: bool = False
