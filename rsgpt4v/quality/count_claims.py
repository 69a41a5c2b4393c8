"""Numbers that text states for a kind of object, read the way a careful reader reads them, and
checked against the labelled objects of a scene.

A number attached to a category is a claim only where it counts that category: "two car parks",
"the 12 m buses", "one bus lane" and "two rows of buses" count other things. What a claim says
depends on its sentence:

- total:  "In all, 48 buses are parked here", "Forty buses stand in the rows" -> must equal the labels;
- part:   "the middle row alone holds 17 buses", "one of the planes", "3 more cars", "two planes side
          by side" -> must not exceed the labels;
- region: "a dozen cars in the car park on the right" -> must agree with the labelled objects on that
          side of the image (between its outer third and its half, a reader's tolerance);
- alone:  "two buses stand alone" -> must agree with the objects that have no neighbour of their kind
          close by.
The words that decide are read in the number's own stretch of its clause. A sentence that counts
several groups of one kind ("forty buses in the rows, and ten more by the fence") gives parts whose
sum must not exceed the labels. Hedges keep their meaning: "about 50" is 40-60, "more than 80" is
81 or more, "nearly 50" is 40-50. A phrase that cannot be read as a number is no claim.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from rsgpt4v.core.schema import Obj, Scene
from rsgpt4v.language.words import read_number

_TOKEN = re.compile(r"\d{1,3}(?:,\d{3})+(?![\d.])|\d+(?:\.\d+)?[a-z]*(?:-[a-z0-9]+)*|[a-z]+(?:['-][a-z0-9]+)*|[.,;:!?()%]")
_CLAUSE_BREAKS = {";", ":", "while", "whereas", "but", "and", "with"}
# Hedges before a number, longest first: how they turn the number n into a range.
_HEDGES: list[tuple[tuple[str, ...], str]] = sorted([
    (("about",), "approx"), (("around",), "approx"), (("approximately",), "approx"), (("roughly",), "approx"),
    (("some",), "approx"), (("circa",), "approx"), (("an", "estimated"), "approx"), (("close", "to"), "near"),
    (("more", "or", "less"), "approx"), (("nearly",), "near"), (("almost",), "near"), (("just", "under"), "near"),
    (("more", "than"), "above"), (("over",), "above"), (("above",), "above"), (("upwards", "of"), "above"),
    (("in", "excess", "of"), "above"), (("at", "least"), "min"), (("no", "fewer", "than"), "min"),
    (("no", "less", "than"), "min"), (("fewer", "than"), "below"), (("less", "than"), "below"),
    (("under",), "below"), (("below",), "below"), (("up", "to"), "max"), (("at", "most"), "max"),
    (("no", "more", "than"), "max"),
], key=lambda h: -len(h[0]))
# Words between a number and a noun that make the number count something else.
UNITS = {"m", "metre", "metres", "meter", "meters", "km", "kilometre", "kilometres", "ft", "feet", "foot",
          "storey", "storeys", "story", "stories", "floor", "floors", "lane", "lanes", "hectare", "hectares", "ha",
          "percent", "per", "cent", "%", "tonne", "tonnes", "ton", "tons", "seat", "seats", "degree", "degrees",
          "x", "by", "times", "hour", "hours", "minute", "minutes", "year", "years", "row", "rows", "line", "lines",
          "group", "groups", "cluster", "clusters", "column", "columns", "pair", "pairs", "block", "blocks",
          "kinds", "kind", "types", "type", "sorts", "sizes", "colours", "colors", "shades"}
_STOP = {"of", "for", "with", "and", "or", "in", "on", "at", "to", "from", "by", "near", "than", "is", "are", "was",
         "were", "be", "the", "a", "an", "that", "which", "who", "their", "its", "as", "into", "onto", "each",
         "fewer", "less", "not", "no", "but", "while", "along", "beside", "behind", "between", "across",
         ",", ".", ";", ":", "!", "?", "(", ")"}
_MORE = {"more", "other", "additional", "further", "extra", "remaining"}
# Nouns after a category word that make it a modifier: "car park", "bus lane", "jet bridge".
COMPOUND_HEADS = {"park", "parks", "parking", "lane", "lanes", "stop", "stops", "station", "stations", "depot",
                  "depots", "shelter", "shelters", "bay", "bays", "bridge", "bridges", "farm", "farms", "yard", "yards",
                  "wash", "dealership", "garage", "garages", "lot", "lots", "ramp", "ramps", "route", "routes",
                  "terminal", "terminals", "hangar", "hangars", "house", "houses", "deck", "decks", "pad", "pads",
                  "space", "spaces", "wing", "wings", "shadow", "shadows", "length", "lengths", "size", "sizes",
                  "roof", "roofs", "traffic", "maintenance", "repair", "service", "fleet", "fleets", "turning",
                  "tree", "trees", "ski", "skis", "engine", "engines", "fuel"}
_TOTAL = [("in", "total"), ("in", "all", ","), ("in", "all", "."), ("altogether",), ("a", "total", "of"),
          ("overall",), ("all", "told"), ("in", "the", "whole"), ("in", "the", "entire"), ("the", "whole", "image"),
          ("the", "whole", "scene"), ("the", "entire", "image"), ("the", "entire", "scene")]
_PART_WORDS = {"row", "line", "column", "group", "cluster", "block", "section", "part", "half", "pair", "each",
               "middle", "centre", "center", "central", "another", "rest", "them", "these", "those", "some",
               "outside", "except", "besides", "apart", "among", "beyond", "further", "also"}
_PART_PHRASES = [("side", "by", "side"), ("next", "to", "each", "other"), ("beside", "each", "other"),
                 ("alongside", "each", "other"), ("nose", "to", "tail"), ("together",), ("of", "them"),
                 ("of", "these"), ("of", "the")]
_ALONE_AFTER = [("alone",), ("isolated",), ("apart",), ("on", "its", "own"), ("on", "their", "own"),
                ("by", "itself"), ("by", "themselves"), ("separately",), ("away", "from", "the", "others"),
                ("away", "from", "the", "rest")]
_ALONE_BEFORE = {"lone", "isolated", "solitary", "separate"}
_SIDES = {"left": ("x", 0), "west": ("x", 0), "western": ("x", 0), "westernmost": ("x", 0),
          "right": ("x", 1), "east": ("x", 1), "eastern": ("x", 1), "easternmost": ("x", 1),
          "top": ("y", 0), "north": ("y", 0), "northern": ("y", 0), "upper": ("y", 0), "northernmost": ("y", 0),
          "bottom": ("y", 1), "south": ("y", 1), "southern": ("y", 1), "lower": ("y", 1),
          "southernmost": ("y", 1)}
# A side word after these is a heading, not a place: "pointing south", "aligned east-west".
_HEADING = {"pointing", "point", "points", "facing", "face", "faces", "heading", "head", "heads", "aligned",
            "oriented", "orientated", "towards", "toward", "running", "runs", "run", "extending", "extends",
            "extend", "turned", "angled", "nose", "bow", "to", "right-hand", "left-hand"}
_AREA_WORDS = {"half", "part", "left", "right", "edge", "side", "third", "corner", "end", "area", "section", "centre",
               "center", "middle"}
_NOT_A_SIDE_AFTER = {"next", "beside", "by", "in", "at", "on", "behind", "over", "behind", "empty", "of", "alone"}


def tokens(text: str) -> list[str]:
    """Lower-case words, numbers and punctuation; curly quotes and dashes made plain."""
    text = text.lower().translate(str.maketrans({"\u2019": "'", "\u2018": "'", "\u2013": "-", "\u2014": " - "}))
    return _TOKEN.findall(text)


class Terms:
    """Which token sequences name which category: every form QC reads as that category."""

    def __init__(self, words: dict[str, Iterable[str]]) -> None:
        self.by_first: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        for category, forms in words.items():
            for form in forms:
                seq = tuple(tokens(form))
                if seq:
                    self.by_first.setdefault(seq[0], []).append((seq, category))
        for entries in self.by_first.values():
            entries.sort(key=lambda e: -len(e[0]))
        self.plural: set[tuple[str, ...]] = set()

    def mark_plural(self, forms: Iterable[str]) -> None:
        self.plural |= {tuple(tokens(f)) for f in forms}

    def at(self, toks: list[str], i: int) -> tuple[str, int, bool] | None:
        """The category named at toks[i], the index after its name and whether the name is plural;
        None when no category is named there or the name is only a modifier ("car park")."""
        for seq, category in self.by_first.get(toks[i], ()):
            end = i + len(seq)
            if tuple(toks[i:end]) != seq:
                continue
            if end < len(toks) and toks[end] in COMPOUND_HEADS:
                return None
            if i > 0 and toks[i - 1] in {"jet", "air", "boarding", "passenger"} and seq[-1].startswith("bridge"):
                return None
            return category, end, seq in self.plural
        return None


@dataclass(frozen=True)
class Claim:
    category: str
    low: float
    high: float
    scope: str                                  # total | part | region | alone
    sides: tuple[tuple[str, int], ...] = ()     # for region and part: ("x", 0) is the left side
    quote: str = ""
    sentence: int = 0                           # which sentence of the text it is in
    subset: bool = False                        # "17 of them": a part of a group already counted
    said_total: bool = False                    # a total because the sentence says so ("in all")


def _starts(toks: list[str], i: int, phrase: tuple[str, ...]) -> bool:
    return tuple(toks[i:i + len(phrase)]) == phrase


def _contains(toks: list[str], phrase: tuple[str, ...]) -> bool:
    return any(_starts(toks, i, phrase) for i in range(len(toks)))


def _hedge(toks: list[str], i: int, low: float, high: float) -> tuple[float, float, int]:
    """The range a hedge before toks[i] makes of the number, and the hedge's length in tokens."""
    for phrase, kind in _HEDGES:
        if i >= len(phrase) and tuple(toks[i - len(phrase):i]) == phrase:
            ranges = {"approx": (math.floor(low * 0.8), math.ceil(high * 1.2)), "near": (math.floor(low * 0.8), high),
                      "above": (low + 1, math.inf), "min": (low, math.inf), "below": (0, max(high - 1, 0)),
                      "max": (0, high)}
            return (*ranges[kind], len(phrase))
    return low, high, 0


def _clauses(toks: list[str]) -> list[tuple[int, int]]:
    """Spans of the clauses of a text: sentences split further at ';', 'and', 'while' ..."""
    spans, start = [], 0
    for i, tok in enumerate(toks):
        if tok in {".", "!", "?"} or tok in _CLAUSE_BREAKS:
            if i > start:
                spans.append((start, i))
            start = i + 1
    if start < len(toks):
        spans.append((start, len(toks)))
    return spans


def _sentence(toks: list[str], i: int) -> list[str]:
    start = max((k + 1 for k in range(i) if toks[k] in {".", "!", "?"}), default=0)
    end = next((k for k in range(i, len(toks)) if toks[k] in {".", "!", "?"}), len(toks))
    return toks[start:end]


def _sides(clause: list[str]) -> tuple[tuple[str, int], ...]:
    found: list[tuple[str, int]] = []
    for k, tok in enumerate(clause):
        for part in tok.split("-") if tok.count("-") == 1 and tok not in {"north-south", "east-west"} else [tok]:
            side = _SIDES.get(part)
            if side is None or (k > 0 and clause[k - 1] in _HEADING):
                continue
            following = clause[k + 1] if k + 1 < len(clause) else ""
            if part in {"left", "right"} and following in _NOT_A_SIDE_AFTER:
                continue
            if part in {"upper", "lower"} and following not in _AREA_WORDS:
                continue    # "the lower of the two planes" compares, it does not place
            if side not in found and not any(f[0] == side[0] for f in found):
                found.append(side)
    return tuple(found)


def read_claims(text: str, terms: Terms) -> list[Claim]:
    """Every number the text attaches to a category, with what its sentence makes of it. The words
    that decide (a row, a side, alone) are looked for in the number's own stretch of its clause,
    between the numbers before and after it."""
    toks = tokens(text)
    numbers: list[tuple[int, float, float, int]] = []
    i = 0
    while i < len(toks):
        number = read_number(toks, i)
        if number is None:
            i += 1
            continue
        low, high, j = number
        if i > 0 and toks[i - 1] == "between" and toks[j:j + 1] == ["and"] and (upper := read_number(toks, j + 1)):
            high, j = upper[1], upper[2]                   # "between 40 and 50 buses"
        if j < len(toks) and toks[j] in {"odd", "-odd"}:
            high, j = math.ceil(low * 1.25), j + 1         # "forty odd buses"
        numbers.append((i, low, high, j))
        i = j
    clauses = _clauses(toks)

    def claim(number: tuple[int, float, float, int], segment: tuple[int, int]) -> Claim | None:
        i, low, high, j = number
        return _claim_at(toks, i, j, low, high, terms, segment) or _elliptic(toks, i, j, low, high, terms, segment)

    def clause(i: int) -> tuple[int, int]:
        return next(((s, e) for s, e in clauses if s <= i < e), (i, i + 1))

    # Only numbers that count a category (or part of one: "17 of them") bound the stretches;
    # "three rows" does not.
    counting = [n for n in numbers if claim(n, clause(n[0])) is not None
                or toks[n[3]:n[3] + 2] in (["of", w] for w in ("them", "these", "those", "the"))]
    claims: list[Claim] = []
    for k, number in enumerate(counting):
        start, stop = clause(number[0])
        segment = (max(start, counting[k - 1][3]) if k else start,
                   min(stop, counting[k + 1][0]) if k + 1 < len(counting) else stop)
        found = claim(number, segment)
        if found is not None:
            claims.append(found)
    return _partitions(claims)


def _partitions(claims: list[Claim]) -> list[Claim]:
    """A sentence that counts several groups of one kind ("three ships at the pier, and three more at
    anchor") gives parts, not totals; their sum must not exceed the labels (an extra claim). Where
    it also states the total ("14 cars in all: ten in a row, and four more by the road"), the others
    break it down."""
    groups: dict[tuple[int, str], list[int]] = {}
    for k, c in enumerate(claims):
        if not c.subset:
            groups.setdefault((c.sentence, c.category), []).append(k)
    out = list(claims)
    for members in groups.values():
        if len(members) < 2 or any(claims[k].said_total for k in members):
            continue    # one group, or a stated total that the others break down
        for k in members:
            if out[k].scope == "total" and not out[k].said_total:
                out[k] = replace(out[k], scope="part")
        group = [claims[k] for k in members]
        out.append(Claim(group[0].category, sum(c.low for c in group), math.inf, "part",
                         quote=" + ".join(c.quote for c in group), sentence=group[0].sentence))
    return out


def _claim_at(toks: list[str], i: int, j: int, low: float, high: float, terms: Terms,
              segment: tuple[int, int]) -> Claim | None:
    part = subset = False
    if j < len(toks) and toks[j] == "of":
        if j + 1 < len(toks) and toks[j + 1] in {"the", "these", "those", "them", "its", "their"}:
            part = subset = True
            j += 2
        else:
            return None
    alone = i > 0 and toks[i - 1] in _ALONE_BEFORE or bool(_ALONE_BEFORE & set(toks[i:j]))
    for k in range(j, min(j + 4, len(toks))):
        tok = toks[k]
        found = terms.at(toks, k)
        if found is not None:
            category, end, is_plural = found
            if not is_plural and high > 1 and not part:
                return None    # "two car parks": the category word is a modifier
            return _classify(toks, i, end, category, low, high, part, alone, segment, subset)
        if tok in UNITS or tok in _STOP or re.match(r"\d", tok):
            return None
        if tok in _MORE:
            part = True
        alone = alone or tok in _ALONE_BEFORE
    return None


def _elliptic(toks: list[str], i: int, j: int, low: float, high: float, terms: Terms,
              segment: tuple[int, int]) -> Claim | None:
    """A number whose noun is left out counts the category named before it in the sentence:
    'a white plane, one of 5 on the apron' (the whole group), 'and ten more stand by the fence' and
    'another three' (one more group)."""
    more = toks[j:j + 1] and toks[j] in _MORE | {"others"} or i > 0 and toks[i - 1] in {"another", "further"}
    one_of = i >= 2 and toks[i - 1] == "of" and read_number(toks, i - 2) is not None
    if not (more or one_of):
        return None
    for k in range(i - 1, -1, -1):
        if toks[k] in {".", "!", "?"}:
            return None
        found = terms.at(toks, k)
        if found is not None:
            claim = _classify(toks, i, j + bool(more and toks[j:j + 1]), found[0], low, high, bool(more), False,
                              segment)
            return replace(claim, scope="part") if more else claim
    return None


def _classify(toks: list[str], i: int, end: int, category: str, low: float, high: float, part: bool,
              alone: bool, segment: tuple[int, int], subset: bool = False) -> Claim:
    low, high, hedged = _hedge(toks, i, low, high)
    claim = Claim(category, low, high, "total", quote=" ".join(toks[i - hedged:end]), subset=subset,
                  sentence=sum(t in {".", "!", "?"} for t in toks[:i]))
    sentence = _sentence(toks, i)
    start, stop = segment
    clause = toks[start:stop]
    after = toks[end:stop]
    if alone or any(_starts(after, k, p) for k in range(min(len(after), 5)) for p in _ALONE_AFTER):
        return replace(claim, scope="alone")
    if any(_contains(sentence, p) for p in _TOTAL):
        return replace(claim, said_total=True)
    before = toks[start:i]
    sides = _sides(clause)
    part = (part or any(t in _PART_WORDS for t in clause) or any(_contains(clause, p) for p in _PART_PHRASES)
            or "alone" in before)
    # "One plane is taxiing": a single one is picked out of the group unless the text says it is the only one.
    if low == high == 1 and not {"only", "just", "exactly"} & set(before[-2:]):
        part = True
    # "These two planes", "those three": a group already singled out.
    if before[-1:] and before[-1] in {"these", "those"}:
        part = True
    if part:
        return replace(claim, scope="part", sides=sides)
    if sides:
        return replace(claim, scope="region", sides=sides)
    return claim


def _centre(scene: Scene, obj: Obj) -> tuple[float, float]:
    x0, y0, _, _ = scene.window
    return (((obj.box[0] + obj.box[2]) / 2 - x0) / scene.width, ((obj.box[1] + obj.box[3]) / 2 - y0) / scene.height)


def _in(sides: tuple[tuple[str, int], ...], point: tuple[float, float], share: float) -> bool:
    for axis, end in sides:
        value = point[0] if axis == "x" else point[1]
        if (value >= share) if end == 0 else (value <= 1 - share):
            return False
    return True


def _length(obj: Obj) -> float:
    poly = obj.polygon
    if len(poly) == 4:
        return max(math.dist(poly[0], poly[1]), math.dist(poly[1], poly[2]))
    return max(obj.box[2] - obj.box[0], obj.box[3] - obj.box[1])


def lone_range(objs: list[Obj]) -> tuple[int, int]:
    """How many of `objs` stand alone: no other within 1.5 lengths (sure), within 0.75 (arguable)."""
    def alone(factor: float) -> int:
        n = 0
        for o in objs:
            c = ((o.box[0] + o.box[2]) / 2, (o.box[1] + o.box[3]) / 2)
            near = min((math.dist(c, ((p.box[0] + p.box[2]) / 2, (p.box[1] + p.box[3]) / 2))
                        for p in objs if p is not o), default=math.inf)
            n += near > factor * _length(o)
        return n
    return alone(1.5), alone(0.75)


def wrong(claim: Claim, scene: Scene) -> str | None:
    """Why the claim disagrees with the scene's labels, as a rule to follow; None when it agrees.
    Objects cut off by the window edge (`scene.context`) are not counted, but a model that sees them
    may: a number that includes them is no lie."""
    objs = [o for o in scene.objects if o.category == claim.category]
    seen = objs + [o for o in scene.context if o.category == claim.category]
    if claim.scope == "alone":
        sure, arguable = lone_range(objs)[0], lone_range(seen)[1]
        # "A lone bus stands ..." picks one of them; "two buses stand alone" says how many do.
        if (claim.high < sure and claim.high > 1) or claim.low > arguable:
            return "standing alone does not match the image"
        return None
    if claim.scope == "total":
        if claim.high < len(objs) or claim.low > len(seen):
            return "is given as a total that the labels do not support"
        return None
    loose = sum(_in(claim.sides, _centre(scene, o), 0.5) for o in seen) if claim.sides else len(seen)
    if claim.scope == "part":
        return None if claim.low <= loose else "in one part of the image is more than the image holds there"
    strict = sum(_in(claim.sides, _centre(scene, o), 1 / 3) for o in objs)
    if claim.high < strict or claim.low > loose:
        return "on one side of the image does not match what is there"
    return None
