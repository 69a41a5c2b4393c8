"""The judge stage's verdicts: a window's answers as numbered sentences, and what the verdicts mean.

After QC, a second model gets the clean window, its labelled objects and every sentence the stages
wrote for it, and says of each: supported, contradicted (with the reason) or not visible. An
*answer* is what one request of a stage returned and a record is made of: a local note (judged by
its description), the global answer (caption and description, read without mention ids) and the
dialogue (its answers). Detectors over-trust a response's first sentences (HalDec-Bench, 2026), so
the sentences of all answers go out in one seeded shuffled order, numbered in that order.

A contradicted answer goes back to its stage once, told which sentences and why (`feedback`); its
new version is judged again, and contradicted a second time it is dropped. Each record made from
the answers carries `meta.judge` (`record_meta`): the judge's model, the verdict of its answers
(`supported`; `not_visible` when a sentence could not be checked; `unjudged` when the judge gave no
usable answer) and notes naming what was sent back and what could not be seen. Nothing here sends a
request (that is `prompting.prompter`'s).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from rsgpt4v.core.responses import DialogueResponse, GlobalResponse, JudgeResponse, ObjectNote
from rsgpt4v.language.mentions import plain
from rsgpt4v.language.words import sentences

SUPPORTED, CONTRADICTED, NOT_VISIBLE, UNJUDGED = "supported", "contradicted", "not_visible", "unjudged"
# A record is as doubtful as its most doubtful answer.
_RANK = {SUPPORTED: 0, NOT_VISIBLE: 1, UNJUDGED: 2}
_NOTE_CHARS = 200


class Unit(NamedTuple):
    """One answer: `("local", note id)`, `("global", 0)` or `("dialogue", 0)`."""

    stage: str
    key: int = 0


GLOBAL, DIALOGUE = Unit("global"), Unit("dialogue")


class Sentence(NamedTuple):
    """A sentence to judge: its number in the request, its answer, its text, and for a local note the
    id of the object it is about."""

    number: int
    unit: Unit
    text: str
    about: int | None


def judged_sentences(notes: Mapping[int, ObjectNote], scene_text: GlobalResponse | None,
                     dialogue: DialogueResponse | None, order_key: str,
                     only: Iterable[Unit] | None = None) -> list[Sentence]:
    """The sentences of the answers (of `only` those, when given), in an order seeded by `order_key`."""
    texts: list[tuple[Unit, str, int | None]] = []
    for note_id, note in sorted(notes.items()):
        texts += [(Unit("local", note_id), s, note_id) for s in sentences(note.description)]
    if scene_text is not None:
        texts += [(GLOBAL, s, None) for s in sentences(scene_text.caption) + sentences(plain(scene_text.description))]
    if dialogue is not None:
        texts += [(DIALOGUE, s, None) for turn in dialogue.turns for s in sentences(turn.answer)]
    if only is not None:
        wanted = set(only)
        texts = [t for t in texts if t[0] in wanted]
    return numbered(texts, order_key)


def numbered(texts: Sequence[tuple[Unit, str, int | None]], order_key: str) -> list[Sentence]:
    """(unit, text, about) in an order seeded by `order_key`, numbered from 1 in that order."""
    shuffled = list(texts)
    random.Random(order_key).shuffle(shuffled)
    return [Sentence(i, unit, text, about) for i, (unit, text, about) in enumerate(shuffled, start=1)]


@dataclass
class Round:
    """One judge answer read per answer: the contradicted sentences with their reasons, the unseeable ones."""

    contradicted: dict[Unit, list[tuple[str, str]]] = field(default_factory=dict)
    not_visible: dict[Unit, list[str]] = field(default_factory=dict)
    tally: Counter[str] = field(default_factory=Counter)

    @classmethod
    def read(cls, judged: Sequence[Sentence], resp: JudgeResponse) -> Round:
        by_number = {s.number: s for s in judged}
        found = cls()
        for v in sorted(resp.verdicts, key=lambda v: v.id):
            sentence = by_number[v.id]
            found.tally[v.verdict] += 1
            if v.verdict == CONTRADICTED:
                found.contradicted.setdefault(sentence.unit, []).append((sentence.text, v.reason.strip()))
            elif v.verdict == NOT_VISIBLE:
                found.not_visible.setdefault(sentence.unit, []).append(sentence.text)
        return found


def feedback(round_: Round, units: Iterable[Unit]) -> str:
    """What a stage is told when its answer goes back: each contradicted sentence and what the image shows."""
    wrong = []
    for unit in sorted(set(units)):
        about = f"object {unit.key}: " if unit.stage == "local" else ""
        wrong += [f'{about}"{text}" ({reason})' for text, reason in round_.contradicted.get(unit, [])]
    return ("a check against the image found these statements wrong: " + "; ".join(wrong)
            + ". Correct them to what the image shows, or leave them out")


def _short(text: str) -> str:
    return text if len(text) <= _NOTE_CHARS else text[:_NOTE_CHARS - 3] + "..."


@dataclass
class JudgeOutcome:
    """What the judge made of one window's answers: the verdict and notes of each answer kept, and counts."""

    model: str
    verdicts: dict[Unit, str] = field(default_factory=dict)
    notes: dict[Unit, list[str]] = field(default_factory=dict)
    first: Counter[str] = field(default_factory=Counter)     # sentence verdicts of the first request
    second: Counter[str] = field(default_factory=Counter)    # of the request on the answers sent back
    re_asked: Counter[str] = field(default_factory=Counter)  # answers sent back, by stage
    dropped: Counter[str] = field(default_factory=Counter)   # answers dropped, by stage
    unjudged: int = 0                                        # judge requests without a usable answer

    def settle(self, units: Iterable[Unit], round_: Round | None) -> None:
        """The verdict of answers judged in `round_` (None: the judge gave no usable answer)."""
        for unit in units:
            if round_ is None:
                self.verdicts[unit] = UNJUDGED
                continue
            unseen = round_.not_visible.get(unit, [])
            self.verdicts[unit] = NOT_VISIBLE if unseen else SUPPORTED
            self.notes.setdefault(unit, []).extend(f'not visible: "{_short(t)}"' for t in unseen)

    def sent_back(self, unit: Unit, round_: Round) -> None:
        self.re_asked[unit.stage] += 1
        self.notes.setdefault(unit, []).extend(f'sent back once: "{_short(t)}" ({_short(r)})'
                                               for t, r in round_.contradicted[unit])

    def drop(self, unit: Unit) -> None:
        self.dropped[unit.stage] += 1
        self.verdicts.pop(unit, None)
        self.notes.pop(unit, None)

    def record_meta(self, units: Iterable[Unit]) -> dict[str, object]:
        """`meta.judge` of a record made from `units`: the worst verdict among them, and their notes."""
        units = list(dict.fromkeys(units))
        verdict = max((self.verdicts.get(u, UNJUDGED) for u in units), key=_RANK.__getitem__, default=UNJUDGED)
        return {"model": self.model, "verdict": verdict, "notes": [n for u in units for n in self.notes.get(u, [])]}

