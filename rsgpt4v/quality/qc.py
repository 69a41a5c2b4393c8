"""Grounding checks: is the model's text true of the labelled image and fit to train on?

Every piece of model text is checked: local notes (descriptions and referring expressions), the
caption and description, dialogue questions and answers. A check returns a Problem whose detail
names the rule that was broken (never the labelled total, which would invite the model to turn a
true sub-count into a false total); the engine regenerates the answer with it, and after the last
attempt drops it. Kinds, all configurable under `qc:`:

- qc_count: a number for a kind of object that the labels contradict (see `count_claims`);
- qc_absent_category: the text names a category the annotated image does not contain;
- qc_refusal: hard and soft refusals ("I'm sorry", "it is not possible to determine", "unfortunately");
- qc_meta_talk: talk about the input: annotations, notes, lists, marks, outlines, labels, ids, "number 5";
- qc_dataset_spelling: a label as the dataset spells it ("large-vehicles");
- qc_unseeable: proper names, dates, seasons and times of day, which no image shows;
- qc_form: a local description that does not open as asked, a referring expression by list order,
- qc_reasoning: a dialogue whose turns only restate counts or categories, or whose first question
  gives its answer away;
- qc_length: an empty, too short or runaway text;
- qc_mention: a grounded description's mention (`[words](id)`, see `language.mentions`) of an id the
  window does not have, whose words name another kind than its objects', or written wrong (a stray
  bracket or id); a caption with a mention.
Counts and categories are checked only where annotations are exhaustive: annotated samples of
detection sources. `QualityChecker.report()` counts the rejections by kind with one example each,
for the run report.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any

from rsgpt4v.core.config import QCConfig
from rsgpt4v.core.responses import DialogueResponse, GlobalResponse, LocalResponse
from rsgpt4v.core.schema import Problem, Scene
from rsgpt4v.language.mentions import mentions, plain, stray
from rsgpt4v.language.naming import display, is_dataset_spelling, spelling_pattern
from rsgpt4v.language.words import plural, readable, sentences
from rsgpt4v.quality.count_claims import UNITS, Terms, read_claims, tokens, wrong


class QCKind(StrEnum):
    """What QC rejects a text for, as `qc.rejected` and the stage failures count it (README: Faithful data)."""

    COUNT = "qc_count"
    ABSENT_CATEGORY = "qc_absent_category"
    REFUSAL = "qc_refusal"
    META_TALK = "qc_meta_talk"
    DATASET_SPELLING = "qc_dataset_spelling"
    UNSEEABLE = "qc_unseeable"
    FORM = "qc_form"
    REASONING = "qc_reasoning"
    LENGTH = "qc_length"
    MENTION = "qc_mention"


_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})

_REFUSALS = [
    r"\bi(?:'m| am) (?:sorry|unable|not able)\b", r"\bsorry\b", r"\bi (?:cannot|can't|can not|could not|couldn't)\b",
    r"\bunable to (?:assist|help|identify|determine|tell|see|say|provide|describe|make)\b", r"\bas an ai\b",
    r"\blanguage model\b", r"\bi apologi[sz]e\b", r"\bunfortunately\b",
    r"\b(?:not |im)possible to (?:determine|tell|identify|say|know|see|confirm|establish|judge)\b",
    r"\b(?:cannot|can't|can not) be (?:determined|identified|confirmed|known|ascertained|established|told)\b",
    r"\bthere(?: is|'s) no way to (?:tell|know|determine|say)\b",
    r"\b(?:difficult|hard) to (?:determine|tell|say|identify)\b", r"\bfrom (?:this|the) image alone\b",
    r"\bthe (?:image|resolution) (?:does not|doesn't|do not) (?:allow|permit|show enough)\b",
]
# What the prompt hands the model, and the words that point at one of its parts.
_DOCUMENT = (r"(?:list|lists|data|notes|annotations|labels|counts|metadata|inputs?|information|entries|records|prompt|"
             r"instructions)")
_DETERMINER = r"(?:the|this|that|these|those|my|your|our|an?)"
_META = [
    r"\bannotat\w*", r"\bbounding box",
    r"\baccording to (?:the |these |those |my |your )?(?:notes?|annotations?|labels?|lists?|data|counts?|"
    r"descriptions?|captions?|information|input|metadata|image|marks?|objects?)\b", r"\bground truth\b", r"\bmetadata\b", r"\bdataset\b",
    r"\bbased on the (?:notes?|list|labels?|counts?|data|information|description|caption|input|objects?)\b",
    r"\bas (?:described|listed|noted|labelled|labeled|given|provided|mentioned)\b",
    r"\b(?:the|these|those|my|your|object|provided|given) notes?\b", r"\b(?:the|this|that|a) list\b", r"\blisted\b",
    r"\b(?:the|a|its|their|numbered|coloured|colored|drawn) marks?\b",
    r"\bmarked with (?:a |an )?(?:numbers?|ids?|labels?|digits?|outlines?)\b",
    r"\boutlined in (?:bright |light |dark )?(?:red|green|blue|yellow|orange|purple|magenta|cyan|pink|lime)\b",
    r"\bhighlighted\b",
    r"\b(?:red|green|blue|yellow|orange|purple|magenta|cyan|pink|lime|coloured|colored) "
    r"(?:outline|box|frame|border|mark|marker|label|tag)s?\b",
    r"\b(?:counts?|notes?|labels?|list|information|data|objects?) (?:provided|given|supplied)\b",
    r"\b(?:i was|we were|we are|i am) told\b", r"\byou (?:gave|provided|listed|supplied|mentioned)\b",
    r"\b(?:marked|tagged|numbered) #?\d+\b",
    r"\blabel(?:s|led|ed|ling)?\b", r"\bids?\b", r"\bnumbers? \d+\b", r"\bno\. ?\d+", r"#\s?\d+",
    r"\bcoordinates\b", r"\bpixels?\b", r"\bthe provided\b", r"\bthe given\b", r"\bthe input\b",
    r"\b(?:the|this|image) (?:caption|description)\b", r"\bground sample distance\b",
    r"\b(?:object|item|entry|mark|box|region|category|vehicle|instance|target) \d+\b",
    # The prompt's inputs as a source: "from the object list", "in the data", "the counts show".
    rf"\b(?:from|in|on|per|by|using|according to|based on|judging by|going by) {_DETERMINER} (?:[a-z-]+ ){{0,2}}?"
    rf"{_DOCUMENT}\b",
    rf"\b(?:object|item|category|annotation|label|input|given|provided|supplied|reference) {_DOCUMENT}\b",
    rf"\b{_DETERMINER} (?:[a-z-]+ )?{_DOCUMENT} (?:shows?|says?|lists?|indicates?|mentions?|states?|reports?|"
    r"suggests?|gives?|names?|includes?|records?|confirms?)\b",
]
_UNSEEABLE = [
    r"\b(?:autumn|autumnal|summer|summertime|winter|wintertime|springtime)\b", r"\bin (?:the )?(?:spring|fall)\b",
    r"\b(?:january|february|april|june|july|august|september|october|november|december)\b",
    r"\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|weekend|weekday)s?\b",
    r"\b(?:morning|afternoon|evening|night|nighttime|dawn|dusk|sunrise|sunset|midday|noon|midnight)s?\b",
    r"\b(?:owned|operated|managed) by\b", r"\bo'clock\b", r"\b\d{1,2}:\d{2}\b", r"\b[ap]\.m\.", r"\brush hour\b",
    r"\b(?:19|20)\d{2}\b(?!\s+[a-z])",   # a year, not "2000 cars"
]
_PROPER = re.compile(r"(?<=[a-z0-9,;)] )[A-Z][a-z]+(?:[-'][A-Za-z]+)*")
_ORDINAL = re.compile(r"\b(?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|last|\d+(?:st|nd|rd|th))\b")
_SPATIAL = re.compile(r"\b(?:left|right|top|bottom|north\w*|south\w*|east\w*|west\w*|row|line|from|edge|corner|end|"
                      r"side|upper|lower|middle|centre|center|column|group|cluster|nearest|closest|pier|apron)\b")
# What a reasoning question asks: why, how (not how many), what if, what follows, where could ...
_REASONING = re.compile(
    r"\bwhy\b|\bhow\b(?! (?:many|much)\b)|\bwhat if\b|\bif\b|\b(?:could|would|might|should)\b|\bsuggests?\b|"
    r"\bindicates?\b|\bexplain|\bpurpose\b|\bused for\b|\bfunction\b|\bcompare|\bwhich\b.*\b(?:better|more|most|less|"
    r"larger|largest|smaller|busiest)\b|\bwhere (?:are|is|do|does|could|would|might)\b|\bwhat (?:kind|type|sort) of\b|"
    r"\blikely\b|\bimpl(?:y|ies|ication)\b|\bwhat (?:does|do) .* (?:tell|show|reveal)\b|\bdifference\b|\bsafe")
_SITE_WORDS = re.compile(r"\b(?:depot|airport|airfield|harbou?r|port|marina|terminal|station|parking lot|car park|"
                         r"stadium|school|factory|refinery|dock|quay|shipyard|dockyard)s?\b")
# A first question that asks whether a kind is there: "Is this a ...", "Are there ...", "Does the image show ...".
_YES_NO = re.compile(r"^(?:(?:is|are|was|were) (?:this|that|these|those|it|there)|(?:does|do|did) (?:this|the|it)"
                     r"(?: (?:image|scene|picture|photo|area|site|view))? (?:show|contain|depict|hold|have)|"
                     r"(?:can|could|do) (?:you|we|i) see)\b")
# Where the noun phrase a yes/no question asks about ends ("Is there a pattern | to how the buses ...").
_SPAN_ENDS = {"to", "that", "which", "how", "where", "why", "when", "of", "for", "in", "on", "at", "near", "by",
              "with", "between", "from", "among", ",", "?", ".", ";", ":"}
# An answer that opens by saying what the scene or its objects are: "It is a depot", "These are buses".
_IDENTIFYING = re.compile(
    r"^(?:yes|no)\b|^(?:it|this|that|these|those|they|the (?:scene|image|area|site|place|picture|photo|view))"
    r"(?: (?:is|are|was|were)|'s)(?: (?:most|very|almost))?(?: \w+ly)? (?:a|an|the|one|some|many|several|mostly|"
    r"mainly)\b|^(?:it|this|the (?:scene|image|area|site|picture|photo|view)) (?:shows?|depicts?|contains?|holds?)\b")
# A question that asks for a count or a presence, and an answer that only gives one back.
_COUNT_QUESTION = re.compile(r"^\s*(?:how many|is there|are there|do you see|can you see|what (?:kinds? of )?objects)")
_RESTATING = re.compile(r"^\s*(?:yes|no)\b|\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
                        r"dozen|twenty|thirty|forty|fifty|hundred)\b")
_BARE_ANSWER_WORDS = 12
# Words before a category that say it is not there ("no ships", "without any cars"): no hallucination.
_NEGATORS = {"no", "not", "without", "nor", "neither", "none", "any", "lacks", "absent"}
_EXAMPLE_CHARS = 300


class QualityChecker:
    """The checks for one source: its vocabulary, display names and thresholds."""

    def __init__(self, cfg: QCConfig, vocabulary: Callable[[], Sequence[str]], exhaustive_labels: bool) -> None:
        self.cfg = cfg
        self.exhaustive = exhaustive_labels
        self._refusal = re.compile("|".join(_REFUSALS + [re.escape(p.lower()) for p in cfg.refusal_phrases]))
        self._meta = re.compile("|".join(_META + [re.escape(p.lower()) for p in cfg.meta_phrases]))
        self._unseeable = re.compile("|".join(_UNSEEABLE))
        # A source may learn its categories while it is read (COCO files name their own): the
        # terms follow the vocabulary as it grows.
        self._vocabulary = vocabulary
        self._terms: dict[tuple[str, int], Terms] = {}
        self.rejected: Counter[str] = Counter()
        self.examples: dict[str, tuple[str, str]] = {}

    # ---- the checks a build runs -------------------------------------------------------------

    def local(self, scene: Scene | None = None) -> Callable[[LocalResponse], Problem | None]:
        def check(resp: LocalResponse) -> Problem | None:
            for note in resp.objects:
                for text, kind in ((note.description, "object_description"),
                                   (note.referring_expression, "referring_expression")):
                    if problem := self._checked(scene, text, kind, f"object {note.id}: "):
                        return problem
            return None
        return _SceneCheck(self, scene, check)

    def scene_text(self, scene: Scene) -> Callable[[GlobalResponse], Problem | None]:
        """The caption, and the description as a reader sees it (mentions' ids dropped) with its mentions."""
        def check(resp: GlobalResponse) -> Problem | None:
            return (self._mentions(scene, resp.caption, "caption", grounded=False)
                    or self._checked(scene, resp.caption, "caption", "caption: ")
                    or self._mentions(scene, resp.description, "description", grounded=True)
                    or self._checked(scene, plain(resp.description), "description", "description: "))
        return _SceneCheck(self, scene, check)

    def dialogue(self, scene: Scene) -> Callable[[DialogueResponse], Problem | None]:
        def check(resp: DialogueResponse) -> Problem | None:
            for i, turn in enumerate(resp.turns, start=1):
                problem = (self._checked(scene, turn.question, "dialogue_question", f"question {i}: ")
                           or self._checked(scene, turn.answer, "dialogue_answer", f"answer {i}: "))
                if problem:
                    return problem
            problem = self.reasoning(scene, [(t.question, t.answer) for t in resp.turns])
            if problem:
                self._count(scene, problem, " / ".join(t.question for t in resp.turns[:2]))
            return problem
        return _SceneCheck(self, scene, check)

    def report(self) -> dict[str, dict[str, object]]:
        """Rejections by kind, each with one example text (of the first scene, in scene-key order):
        QC's own, and those of the stage checks run beside it (`both`: ids, turns, ...)."""
        return {kind: {"count": n, "example": self.examples[kind][1]} for kind, n in sorted(self.rejected.items())}

    # ---- single texts -----------------------------------------------------------------------

    def text(self, scene: Scene | None, text: str, kind: str) -> Problem | None:
        """Every check on one piece of model text; `kind` names its length limits and form rules."""
        problem = self.style(text, kind)
        if problem is None and scene is not None:
            problem = self._spelling(scene, text) or self._numbered(scene, text)
        if problem is None and scene is not None and self.exhaustive and scene.sample.annotated:
            problem = self._counts(scene, text) or self._absent(scene, text)
        return problem

    def style(self, text: str, kind: str) -> Problem | None:
        """Length, form, refusals, meta-talk and unseeable claims: checks that need no annotations."""
        plain = text.translate(_APOSTROPHES)
        lowered = plain.lower()
        words = len(text.split())
        label = kind.replace("_", " ")
        if kind in self.cfg.max_words and words > self.cfg.max_words[kind]:
            return Problem(QCKind.LENGTH, f"the {label} has {words} words; keep it under {self.cfg.max_words[kind]}")
        if words < self.cfg.min_words.get(kind, 1):
            return Problem(QCKind.LENGTH, f"the {label} is too short ({words} words)")
        if m := self._refusal.search(lowered):
            return Problem(QCKind.REFUSAL, f"the text contains a refusal or an apology ({m.group(0)!r}); describe "
                                         "what the image shows instead, and where a detail cannot be made out, "
                                         "say only that")
        if m := self._meta.search(lowered):
            return Problem(QCKind.META_TALK, f"the text talks about the input ({m.group(0)!r}); write as someone "
                                           "looking at the image, without mentioning annotations, notes, lists, "
                                           "marks, outlines, labels, ids or numbers given to objects")
        if m := self._unseeable.search(lowered):
            return Problem(QCKind.UNSEEABLE, f"the text claims what no image shows ({m.group(0)!r}): no names, "
                                           "dates, seasons or times of day")
        if kind in self.cfg.proper_name_kinds and (m := self._proper_name(plain)):
            return Problem(QCKind.UNSEEABLE, f"the text names a place, owner, make or operator ({m!r}), which the "
                                           "image cannot show")
        return self._form(lowered, text, kind)

    def _form(self, lowered: str, text: str, kind: str) -> Problem | None:
        openings = self.cfg.description_openings
        if kind == "object_description" and openings and (text.split() or [""])[0] not in openings:
            return Problem(QCKind.FORM, f"the description must be one sentence opening with "
                                      f"{' or '.join(repr(o) for o in openings)}")
        if kind == "referring_expression" and _ORDINAL.search(lowered) and not _SPATIAL.search(lowered):
            return Problem(QCKind.FORM, "the referring expression picks the object by its order in a list; use "
                                      "its appearance and its place in the image")
        return None

    def _proper_name(self, text: str) -> str | None:
        allowed = {w for c in self._vocabulary() for w in display(c).singular.split()}
        for m in _PROPER.finditer(text):
            if m.group(0).lower() not in allowed and m.group(0) not in self.cfg.allowed_capitalised:
                return m.group(0)
        return None

    # ---- label checks -----------------------------------------------------------------------

    def terms(self, source: str) -> Terms:
        vocabulary = tuple(self._vocabulary())
        key = (source, len(vocabulary))
        if key not in self._terms:
            words: dict[str, set[str]] = {}
            plurals: set[str] = set()
            for category in vocabulary:
                name = display(category, source)
                extra = [readable(s) for s in self.cfg.synonyms.get(category, [])]
                forms = {*name.words(), readable(category), plural(readable(category))}
                forms |= {f for e in extra for f in (e, plural(e))}
                words[category] = forms
                plurals |= {name.plural, plural(readable(category)), *(plural(a) for a in (*name.also, *extra))}
            self._terms[key] = Terms(words)
            self._terms[key].mark_plural(plurals)
        return self._terms[key]

    def _spelling(self, scene: Scene, text: str) -> Problem | None:
        lowered = text.lower()
        for category in self._vocabulary():
            if is_dataset_spelling(category) and (m := spelling_pattern(category).search(lowered)):
                name = display(category, scene.sample.source)
                return Problem(QCKind.DATASET_SPELLING, f"the text writes the dataset's label {m.group(0)!r}; write "
                                                      f"plain words such as {name.plural!r}"
                                                      + (f" or {plural(name.also[0])!r}" if name.also else ""))
        return None

    def _numbered(self, scene: Scene, text: str) -> Problem | None:
        """'bus 59', 'the numbered plane': an object called by the number or mark it was given."""
        toks = tokens(text)
        terms = self.terms(scene.sample.source)
        for i in range(len(toks)):
            found = terms.at(toks, i)
            end = found[1] if found else len(toks)
            if found and i > 0 and toks[i - 1] in {"numbered", "marked", "outlined", "highlighted", "tagged"}:
                return Problem(QCKind.META_TALK, f"the text speaks of the marks drawn for the request "
                                               f"({' '.join(toks[i - 1:end])!r}); describe the object as it is")
            if end < len(toks) and toks[end].isdigit() and (end + 1 == len(toks) or toks[end + 1] not in UNITS):
                return Problem(QCKind.META_TALK, f"the text calls an object by a number "
                                               f"({' '.join(toks[i:end + 1])!r}); name it by its appearance and "
                                               "its place in the image")
        return None

    def _counts(self, scene: Scene, text: str) -> Problem | None:
        if not self.cfg.counts:
            return None
        for claim in read_claims(text, self.terms(scene.sample.source)):
            reason = wrong(claim, scene)
            if reason:
                name = display(claim.category, scene.sample.source).plural
                return Problem(QCKind.COUNT, f"{claim.quote!r}: the number of {name} {reason}. State a total only as "
                                           "labelled; "
                                           "where you see a different number, describe the group without a total "
                                           "('many', 'rows of'), and give a number for a part only when you are "
                                           "sure of it")
        return None

    def _absent(self, scene: Scene, text: str) -> Problem | None:
        if not self.cfg.absent_categories:
            return None
        present = {o.category for o in scene.sample.objects}
        terms = self.terms(scene.sample.source)
        toks = tokens(text)
        for i in range(len(toks)):
            found = terms.at(toks, i)
            if found is None:
                continue
            category, end, _ = found
            if category in present or category in self.cfg.absence_exempt or _NEGATORS & set(toks[max(0, i - 3):i]):
                continue
            phrase = " ".join(toks[i:end])
            if any(_names(terms, phrase, c) for c in present):
                continue    # "tank" names a storage tank that is there
            return Problem(QCKind.ABSENT_CATEGORY, f"the text mentions {phrase!r}, but there is no "
                                                 f"{display(category, scene.sample.source).singular} in this image; "
                                                 "describe only what is there")
        return None

    def _mentions(self, scene: Scene, text: str, kind: str, grounded: bool) -> Problem | None:
        """A text's mentions: ids of the window's objects, words that name their kind (if any), well formed."""
        problem = None
        found = mentions(text)
        if (bad := stray(text)) is not None:
            problem = Problem(QCKind.MENTION, f"{kind}: {bad!r} is not part of a mention; write each mention of a "
                                              "noted object as [words](id), and no other brackets or ids")
        elif found and not grounded:
            problem = Problem(QCKind.MENTION, f"{kind}: the {kind} ties no words to ids; write it in plain words")
        for mention in found if problem is None else ():
            if missing := [i for i in mention.ids if not 1 <= i <= len(scene.objects)]:
                problem = Problem(QCKind.MENTION, f"{kind}: [{mention.phrase}] is tied to id {missing[0]}, which "
                                                  "no object of this image has; use only the ids of the notes")
                break
            kinds = {scene.objects[i - 1].category for i in mention.ids}
            named = self._kinds(scene, tokens(mention.phrase))
            if wrong := [c for c in named if c in self._vocabulary() and c not in kinds]:
                source = scene.sample.source
                problem = Problem(QCKind.MENTION, f"{kind}: the words [{mention.phrase}] name "
                                                  f"{display(wrong[0], source).plural}, but their ids are "
                                                  f"{' and '.join(sorted(display(c, source).plural for c in kinds))}")
                break
        if problem is not None:
            self._count(scene, problem, text)
        return problem

    # ---- dialogues ------------------------------------------------------------------------

    def reasoning(self, scene: Scene, turns: list[tuple[str, str]]) -> Problem | None:
        """Turns that only restate a count or a category are not reasoning; at least
        `min_reasoning_share` of the questions must ask why, how, what if or what follows, and the
        first question must not contain its own answer."""
        if not turns:
            return None
        if self.cfg.open_first_question and (found := self._gives_away(scene, *turns[0])):
            return Problem(QCKind.REASONING, f"question 1 contains its own answer ({found!r}); open with a question "
                                           "whose answer the image has to give, such as what the scene is used for")
        reasoning = 0
        for i, (question, answer) in enumerate(turns, start=1):
            q = question.translate(_APOSTROPHES).lower()
            a = answer.lower()
            bare = (len(sentences(answer)) == 1 and len(answer.split()) <= _BARE_ANSWER_WORDS
                    and (_COUNT_QUESTION.search(q) or _RESTATING.search(a)))
            if bare and not _REASONING.search(q):
                return Problem(QCKind.REASONING, f"turn {i} only restates a count or a category; ask why, how, what "
                                               "if or what follows, and answer with the visible evidence")
            reasoning += bool(_REASONING.search(q))
        needed = self.cfg.min_reasoning_share * len(turns)
        if reasoning < needed:
            return Problem(QCKind.REASONING, f"only {reasoning} of {len(turns)} questions ask for reasoning; at least "
                                           f"{self.cfg.min_reasoning_share:.0%} must ask why, how, what if or what "
                                           "follows")
        return None

    def _gives_away(self, scene: Scene, question: str, answer: str) -> str | None:
        """The kind of object or place by which a first question contains its own answer, or None.

        A question contains its answer when it asks whether a kind is there ("Is this a bus depot?",
        "Are there buses?": the answer is yes), or when its answer says what the scene is ("It is a
        depot where buses are parked") and the question already names what that answer names ("How
        are the buses arranged?"). Naming an object to ask why or how about it ("Why are the buses
        parked in rows?", answered with a reason) gives nothing away."""
        asked = " ".join(s for s in sentences(question) if s.endswith("?")) or question
        toks = tokens(asked.translate(_APOSTROPHES).lower())
        named = self._kinds(scene, toks)
        if not named:
            return None
        opener = _YES_NO.match(" ".join(toks))
        if opener:
            start = len(opener.group(0).split())
            span = toks[start:next((i for i in range(start, len(toks)) if toks[i] in _SPAN_ENDS), len(toks))]
            if found := self._kinds(scene, span):
                return next(iter(found.values()))
        first = (sentences(answer) or [""])[0].translate(_APOSTROPHES).lower()
        if _IDENTIFYING.match(first):
            shared = [k for k in self._kinds(scene, tokens(first)) if k in named]
            if shared:
                return named[shared[0]]
        return None

    def _kinds(self, scene: Scene, toks: list[str]) -> dict[str, str]:
        """The kinds of object (categories) and of place (site words) the tokens name: kind -> words."""
        found: dict[str, str] = {}
        terms = self.terms(scene.sample.source)
        for i, tok in enumerate(toks):
            if (hit := terms.at(toks, i)) is not None:
                found.setdefault(hit[0], " ".join(toks[i:hit[1]]))
            elif site := _SITE_WORDS.fullmatch(" ".join(toks[i:i + 2])) or _SITE_WORDS.fullmatch(tok):
                found.setdefault(_singular(site.group(0)), site.group(0))
        return found

    # ---- bookkeeping --------------------------------------------------------------------------

    def _checked(self, scene: Scene | None, text: str, kind: str, where: str) -> Problem | None:
        problem = self.text(scene, text, kind)
        if problem is None:
            return None
        problem = Problem(problem.kind, where + problem.detail)
        self._count(scene, problem, text)
        return problem

    def _count(self, scene: Scene | None, problem: Problem, text: str) -> None:
        self.rejected[problem.kind] += 1
        key = (scene.key if scene is not None else "", _offending(text, problem.detail))
        if problem.kind not in self.examples or key < self.examples[problem.kind]:
            self.examples[problem.kind] = key


def _singular(word: str) -> str:
    return word[:-1] if word.endswith("s") else word


def _offending(text: str, detail: str) -> str:
    """The sentence of `text` that the problem quotes, else the text, shortened for the run report."""
    quoted = re.search(r"'([^']+)'|\"([^\"]+)\"", detail)
    if quoted:
        needle = (quoted.group(1) or quoted.group(2)).lower()
        for sentence in sentences(text):
            if needle in " ".join(tokens(sentence)) or needle in sentence.translate(_APOSTROPHES).lower():
                return sentence
    return text if len(text) <= _EXAMPLE_CHARS else text[:_EXAMPLE_CHARS - 3] + "..."


def _names(terms: Terms, phrase: str, category: str) -> bool:
    """Whether `phrase` also names `category` ('tank' names a storage tank)."""
    toks = tokens(phrase)
    return any(seq == tuple(toks) and c == category for entries in terms.by_first.values() for seq, c in entries)


class _SceneCheck:
    """A QC check bound to its scene, which also counts the problems of the checks run beside it
    (`both`), so the run report lists every rejection by kind with an example."""

    def __init__(self, checker: QualityChecker, scene: Scene | None, check: Callable[[Any], Problem | None]) -> None:
        self.checker, self.scene, self.check = checker, scene, check

    def __call__(self, resp: Any) -> Problem | None:
        return self.check(resp)

    def count(self, problem: Problem) -> None:
        self.checker._count(self.scene, problem, problem.detail)


def both(*checks: Callable[[Any], Problem | None]) -> Callable[[Any], Problem | None]:
    """The first problem any of the checks finds; a QC check among them counts the others' too."""
    counters = [c for c in checks if isinstance(c, _SceneCheck)]

    def check(resp: Any) -> Problem | None:
        for one in checks:
            problem = one(resp)
            if problem is not None:
                if not isinstance(one, _SceneCheck):
                    for counter in counters:
                        counter.count(problem)
                return problem
        return None
    return check

