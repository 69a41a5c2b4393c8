"""Grounding checks: is the model's text consistent with the annotations and fit to train on?

Each check returns a Problem (kind, detail) or None; a Problem makes the engine regenerate the
answer with the detail named in the prompt, and after the last attempt the answer is dropped and
its kind counted in the manifest. Checks, all configurable under `qc:`:

- qc_count: a number stated for a category ("5 planes", "three cars") differs from its count;
- qc_absent_category: the text names a category the annotated image does not contain;
- qc_refusal / qc_meta_talk: "I'm sorry...", "as an AI", "the provided annotations", "bounding box";
- qc_length: an empty, too short or runaway answer.
Counts and categories are checked only where annotations are exhaustive: annotated samples of
detection sources.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence

from rsgpt4v.config import QCConfig
from rsgpt4v.language import number_word, plural, readable
from rsgpt4v.prompting.models import DialogueResponse, GlobalResponse, LocalResponse
from rsgpt4v.schema import Problem, Scene

_NUMBERS = {number_word(n): n for n in range(0, 21)} | {"a dozen": 12, "dozen": 12}
# Words between a number and its noun that mean the number is not the total ("3 more planes",
# "one of the planes", "about 10 cars").
_NOT_A_TOTAL = {"of", "more", "other", "additional", "further", "extra", "remaining", "than", "fewer", "less"}
_HEDGES = ("about", "around", "approximately", "roughly", "nearly", "almost", "over", "at least", "up to",
           "more than", "fewer than", "less than", "some")


def _phrase_pattern(phrases: Iterable[str]) -> re.Pattern[str] | None:
    terms = [re.escape(p.strip().lower()) for p in phrases if p.strip()]
    return re.compile(r"\b(?:" + "|".join(terms) + r")s?\b") if terms else None


class QualityChecker:
    """The checks for one source: its vocabulary, synonyms and thresholds."""

    def __init__(self, cfg: QCConfig, vocabulary: Callable[[], Sequence[str]], task_kind: str) -> None:
        self.cfg = cfg
        self.exhaustive = task_kind == "detection"
        self._refusal = _phrase_pattern(cfg.refusal_phrases)
        self._meta = _phrase_pattern(cfg.meta_phrases)
        # A source may learn its categories while it is read (COCO files name their own): the
        # patterns follow the vocabulary as it grows.
        self._vocabulary = vocabulary
        self._compiled: dict[str, re.Pattern[str]] = {}
        alternation = "|".join(sorted(_NUMBERS, key=len, reverse=True))
        self._number = re.compile(rf"\b(\d+|{alternation})\b((?:\s+[a-z]+(?:-[a-z]+)*){{1,3}})")

    @property
    def _terms(self) -> dict[str, re.Pattern[str]]:
        for category in self._vocabulary():
            if category not in self._compiled:
                self._compiled[category] = self._category_terms(category)
        return self._compiled

    def _category_terms(self, category: str) -> re.Pattern[str]:
        names = {readable(category)} | {readable(s) for s in self.cfg.synonyms.get(category, [])}
        forms = {f for n in names for f in (n, plural(n))}
        escaped = sorted((re.escape(f).replace(r"\ ", r"[\s-]+") for f in forms), key=len, reverse=True)
        return re.compile(r"\b(?:" + "|".join(escaped) + r")\b")

    def text(self, scene: Scene, text: str, kind: str) -> Problem | None:
        """Every check on one piece of model text; `kind` names its length limits."""
        problem = self.style(text, kind)
        if problem is None and self.exhaustive and scene.sample.annotated:
            lowered = text.lower()
            problem = self._counts(scene, lowered) or self._absent(scene, lowered)
        return problem

    def style(self, text: str, kind: str) -> Problem | None:
        """Length, refusals and talk about the input: checks that need no annotations."""
        lowered = text.lower()
        words = len(text.split())
        label = kind.replace("_", " ")
        if kind in self.cfg.max_words and words > self.cfg.max_words[kind]:
            return Problem("qc_length", f"the {label} has {words} words; keep it under {self.cfg.max_words[kind]}")
        if words < self.cfg.min_words.get(kind, 1):
            return Problem("qc_length", f"the {label} is too short ({words} words)")
        if self._refusal and (m := self._refusal.search(lowered)):
            return Problem("qc_refusal", f"the text contains a refusal or an apology ({m.group(0)!r}); describe "
                                         "what the image shows instead")
        if self._meta and (m := self._meta.search(lowered)):
            return Problem("qc_meta_talk", f"the text talks about the input ({m.group(0)!r}); write as someone "
                                           "looking at the image, without mentioning annotations, lists or boxes")
        return None

    def _counts(self, scene: Scene, text: str) -> Problem | None:
        if not self.cfg.counts:
            return None
        counts = scene.counts()
        for m in self._number.finditer(text):
            before = text[max(0, m.start() - 12):m.start()].rstrip()
            if any(before.endswith(h) for h in _HEDGES):
                continue
            category = self._noun_after(m.group(2).split())
            if category is None:
                continue
            raw, actual = m.group(1), counts.get(category, 0)
            stated = int(raw) if raw.isdigit() else _NUMBERS[raw]
            if stated != actual:
                noun = readable(category) if actual == 1 else plural(readable(category))
                return Problem("qc_count", f"the text says '{raw}{m.group(2)}' but the image has {actual} {noun}")
        return None

    def _noun_after(self, words: list[str]) -> str | None:
        """The category named right after a number, adjectives allowed between ('3 white planes')."""
        for start in range(len(words)):
            if words[start] in _NOT_A_TOTAL:
                return None
            rest = " ".join(words[start:])
            for category, terms in self._terms.items():
                if terms.match(rest):
                    return category
        return None

    def _absent(self, scene: Scene, text: str) -> Problem | None:
        if not self.cfg.absent_categories:
            return None
        present = {o.category for o in scene.sample.objects}
        for category, terms in self._terms.items():
            if category in present or category in self.cfg.absence_exempt:
                continue
            if (m := terms.search(text)) and not _shares_a_term(m.group(0), present, self._compiled):
                return Problem("qc_absent_category", f"the text mentions {m.group(0)!r}, but there is no "
                                                     f"{readable(category)} in this image")
        return None

    def local(self) -> Callable[[LocalResponse], Problem | None]:
        def check(resp: LocalResponse) -> Problem | None:
            for note in resp.objects:
                for text in (note.description, note.referring_expression):
                    if problem := self.style(text, "object_description"):
                        return Problem(problem.kind, f"object {note.id}: {problem.detail}")
            return None
        return check

    def scene_text(self, scene: Scene) -> Callable[[GlobalResponse], Problem | None]:
        def check(resp: GlobalResponse) -> Problem | None:
            return self.text(scene, resp.caption, "caption") or self.text(scene, resp.description, "description")
        return check

    def dialogue(self, scene: Scene) -> Callable[[DialogueResponse], Problem | None]:
        def check(resp: DialogueResponse) -> Problem | None:
            for i, turn in enumerate(resp.turns, start=1):
                problem = self.text(scene, turn.answer, "dialogue_answer")
                if problem:
                    return Problem(problem.kind, f"answer {i}: {problem.detail}")
            return None
        return check


def _shares_a_term(found: str, present: set[str], terms: dict[str, re.Pattern[str]]) -> bool:
    """A word that also names a category that is present ('tank' for a storage tank) is no hallucination."""
    return any(terms[c].fullmatch(found) for c in present if c in terms)


def both(*checks: Callable[[object], Problem | None]) -> Callable[[object], Problem | None]:
    """The first problem any of the checks finds."""
    def check(resp: object) -> Problem | None:
        for one in checks:
            problem = one(resp)
            if problem is not None:
                return problem
        return None
    return check
