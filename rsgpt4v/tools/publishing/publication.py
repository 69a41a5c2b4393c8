"""The facts a published `hf` export states, gathered once for both of its descriptions: the dataset card
(`rsgpt4v.tools.publishing.card`) and the Croissant metadata (`rsgpt4v.tools.publishing.croissant`).

Counts come from the rows the export wrote (`Tally`, fed one record at a time), so the card's tables
are the data's own; how the data was made (model, prompts, cost, QC, leakage) and each source's
homepage, licence and citation come from the build's manifest (`RunReport`, `cards`). A source
whose manifest gives no facts (a build older than the facts, a plugin without them) is stated as
unknown, never guessed.

The licence the card's front matter names: the sources' one listed licence when they share it;
`unknown` when none states one; else `other`, named after the one source's own terms, or for a mix
`rsgpt4v-mixed-source-licenses` with LICENSE.md listing each source's.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rsgpt4v.core.card_facts import UNKNOWN, CardFacts
from rsgpt4v.core.hub_terms import size_category
from rsgpt4v.core.report import RunReport
from rsgpt4v.tools.publishing.hf_folder import HfForm
from rsgpt4v.tools.stats import Histogram

MIXED_LICENSE_NAME = "rsgpt4v-mixed-source-licenses"
LICENSE_FILE = "LICENSE.md"
# The Hub task category of each task's records; every record is also image-text-to-text.
TASK_CATEGORIES = {
    "caption": "image-to-text", "detailed_description": "image-to-text", "region_description": "image-to-text",
    "grounded_description": "image-to-text",
    "vqa": "visual-question-answering", "presence": "visual-question-answering",
    "counting": "visual-question-answering", "region_attributes": "visual-question-answering",
    "multi_turn_reasoning": "visual-question-answering",
    "detection": "object-detection", "grounding": "object-detection", "classification": "image-classification",
}
TAGS = ["remote-sensing", "aerial-imagery", "instruction-tuning", "geospatial", "rsgpt4v"]
_SPLIT_ORDER = ("train", "validation", "val", "test")


def split_order(name: str) -> tuple[int, str]:
    """Splits as a card lists them: training first, then validation, test, and any other by name."""
    return (_SPLIT_ORDER.index(name) if name in _SPLIT_ORDER else len(_SPLIT_ORDER), name)


@dataclass
class Tally:
    """The exported rows, counted as they are written: by source, task and split, each task's answer
    lengths in words, the box format and space of the text, and the verdicts of a judge model on the
    records it checked (`meta.judge`: its model and verdict)."""

    rows: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    answer_words: dict[str, Histogram] = field(default_factory=dict)
    boxes: Counter[tuple[str, str]] = field(default_factory=Counter)
    verdicts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (judge model, verdict) -> records

    def add(self, record: dict[str, Any]) -> None:
        task = record.get("task") or "(none)"
        self.rows[(record.get("source") or "(none)", task, record.get("split") or "(none)")] += 1
        words = self.answer_words.setdefault(task, Histogram())
        for turn in record["conversations"]:
            if turn["from"] == "gpt":
                words.add(len(turn["value"].split()))
        self.boxes[(record["meta"]["box_format"], record["meta"].get("box_space", "image"))] += 1
        judge = record["meta"].get("judge")
        if isinstance(judge, dict):
            self.verdicts[(str(judge.get("model")), str(judge.get("verdict")))] += 1

    @property
    def total(self) -> int:
        return sum(self.rows.values())

    def by(self, *axes: int) -> Counter[tuple[str, ...]]:
        """Rows summed over the other axes; `axes` index (source, task, split)."""
        out: Counter[tuple[str, ...]] = Counter()
        for key, n in self.rows.items():
            out[tuple(key[a] for a in axes)] += n
        return out

    def sources(self) -> list[str]:
        return sorted({s for s, _, _ in self.rows})

    def tasks(self) -> list[str]:
        return sorted({t for _, t, _ in self.rows})

    def splits(self) -> list[str]:
        return sorted({s for _, _, s in self.rows}, key=split_order)


@dataclass(frozen=True)
class Licence:
    """What the card's front matter says of the licence: the Hub id, and for `other` its name and link."""

    id: str
    name: str | None = None
    link: str | None = None


def choose_licence(facts: dict[str, CardFacts]) -> Licence:
    """The front matter's licence for these sources (see the module docstring)."""
    ids = {f.license.id for f in facts.values()}
    if ids == {UNKNOWN} or not ids:
        return Licence(UNKNOWN)
    if len(ids) == 1 and ids != {"other"}:
        return Licence(ids.pop())
    if len(facts) == 1:
        (only,) = facts.values()
        return Licence("other", only.license.slug, only.license.link)
    return Licence("other", MIXED_LICENSE_NAME, LICENSE_FILE)


def publication_date() -> str:
    """The date the card gives: SOURCE_DATE_EPOCH's (the reproducible-builds convention, so an export can
    be made byte for byte again), else today's, in UTC."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = datetime.fromtimestamp(int(epoch), UTC) if epoch and epoch.isdigit() else datetime.now(UTC)
    return moment.date().isoformat()


@dataclass
class Publication:
    """Everything the card and the Croissant file say, in one place."""

    dest: Path
    form: HfForm
    data_files: dict[str, list[Path]]
    tally: Tally
    manifest: RunReport | None
    facts: dict[str, CardFacts]  # the sources present in the rows, with their facts
    unstated: list[str]  # sources present whose manifest gives no facts
    licence: Licence
    date: str
    repo: str | None
    left_out: int  # records of the build the export could not write

    @property
    def url(self) -> str | None:
        return f"https://huggingface.co/datasets/{self.repo}" if self.repo else None

    @property
    def title(self) -> str:
        titles = [f.title for f in self.facts.values()]
        if not titles:
            return "RS-GPT4V-style remote-sensing instructions"
        if len(titles) <= 3:
            return f"RS-GPT4V-style remote-sensing instructions from {', '.join(titles)}"
        return f"RS-GPT4V-style remote-sensing instructions from {len(titles)} datasets"

    @property
    def task_categories(self) -> list[str]:
        found = {TASK_CATEGORIES[t] for t in self.tally.tasks() if t in TASK_CATEGORIES}
        return ["image-text-to-text", *sorted(found)]

    @property
    def size_category(self) -> str:
        return size_category(self.tally.total)

    @property
    def mock(self) -> bool:
        """Written by the offline mock model (`--dry-run`): placeholder text, not training data."""
        return self.manifest is not None and self.manifest.backend == "mock"

    @property
    def model_written(self) -> bool:
        return self.manifest is not None and (self.manifest.usage.api_calls + self.manifest.usage.cache_hits) > 0


def gather(dest: Path, form: HfForm, data_files: dict[str, list[Path]], tally: Tally, manifest: RunReport | None,
           repo: str | None, left_out: int) -> Publication:
    known = (manifest.cards if manifest is not None else None) or {}
    present = tally.sources()
    facts = {name: known.get(name) or CardFacts.unstated(name) for name in present}
    data_files = {split: data_files[split] for split in sorted(data_files, key=split_order)}
    return Publication(dest=dest, form=form, data_files=data_files, tally=tally, manifest=manifest, facts=facts,
                       unstated=[name for name in present if name not in known], licence=choose_licence(facts),
                       date=publication_date(), repo=repo, left_out=left_out)
