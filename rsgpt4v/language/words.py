"""Words as people write them: readable category names, plurals, numbers read from text and
positions in a 3x3 grid."""

from __future__ import annotations

import math
import re

_NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                 "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
                 "nineteen", "twenty"]
_TENS = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_IRREGULAR = {"person": "people", "child": "children", "ship": "ships", "bus": "buses", "aircraft": "aircraft"}
# Quantity words that stand for a number ("a dozen cars") or only bound it from below ("dozens of").
_QUANTITIES: dict[tuple[str, ...], tuple[int, float]] = {
    ("half", "a", "dozen"): (6, 6), ("a", "dozen"): (12, 12), ("dozen",): (12, 12),
    ("a", "couple", "of"): (2, 2), ("a", "pair", "of"): (2, 2), ("a", "single"): (1, 1), ("a", "lone"): (1, 1),
    ("a", "hundred"): (100, 100), ("dozens", "of"): (24, float("inf")), ("scores", "of"): (40, float("inf")),
    ("hundreds", "of"): (200, float("inf")), ("thousands", "of"): (2000, float("inf")),
}


def readable(category: str) -> str:
    """`small-vehicle`, `Expressway_Service_area`, `BaseballField` -> words in lower case."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", category)
    return re.sub(r"[\s_\-]+", " ", spaced).strip().lower()


def plural(noun: str) -> str:
    """Plural of the last word of a readable category name."""
    head, _, last = noun.rpartition(" ")
    if last in _IRREGULAR:
        last = _IRREGULAR[last]
    elif re.search(r"(s|x|z|ch|sh)$", last):
        last += "es"
    elif re.search(r"[^aeiou]y$", last):
        last = last[:-1] + "ies"
    else:
        last += "s"
    return f"{head} {last}" if head else last


def _word_value(word: str) -> int | None:
    """`seven` -> 7, `forty` -> 40, `twenty-four` -> 24; None for anything else (`twenty-eleven`)."""
    if word in _NUMBER_WORDS[:20]:
        return _NUMBER_WORDS.index(word)
    tens, _, unit = word.partition("-")
    if tens in _TENS and (not unit or unit in _NUMBER_WORDS[1:10]):
        return 20 + 10 * _TENS.index(tens) + (_NUMBER_WORDS.index(unit) if unit else 0)
    return None


def read_number(tokens: list[str], i: int) -> tuple[float, float, int] | None:
    """The number phrase starting at `tokens[i]` (lower-case words): its value as a range (low, high)
    and the index after it, or None when there is none or it cannot be read ("twenty-eleven",
    "1.5", "3rd"). Digits ("48", "1,200", a range "40-50"), words in full ("forty", "twenty-four",
    "twenty four", "two hundred", "forty-odd"), "a dozen", "a couple of", and lower bounds such as
    "dozens of"."""
    for phrase, (low, high) in _QUANTITIES.items():
        if tuple(tokens[i:i + len(phrase)]) == phrase:
            return low, high, i + len(phrase)
    token = tokens[i]
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+|\d+", token):
        value = int(token.replace(",", ""))
        return value, value, i + 1
    if m := re.fullmatch(r"(\d+)-(\d+)", token):
        low, high = sorted((int(m.group(1)), int(m.group(2))))
        return low, high, i + 1
    if token.endswith("-odd") and (value := _word_value(token[:-4])):
        return value, math.ceil(value * 1.25), i + 1
    value = _word_value(token)
    if value is None:
        return None
    end = i + 1
    if token in _TENS and end < len(tokens) and tokens[end] in _NUMBER_WORDS[1:10]:
        value += _NUMBER_WORDS.index(tokens[end])
        end += 1
    if end < len(tokens) and tokens[end] == "hundred" and 0 < value < 10:
        value *= 100
        end += 1
    return value, value, end


def grid_position(cx: float, cy: float) -> str:
    """Where a point (0-1 of the image) sits in a 3x3 grid: 'top left', 'centre', 'bottom centre'."""
    row = "top" if cy < 1 / 3 else "bottom" if cy > 2 / 3 else "middle"
    col = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else "centre"
    if row == "middle":
        return "centre" if col == "centre" else f"middle {col}"
    return f"{row} {col}"


def sentences(text: str) -> list[str]:
    """The sentences of a text, split after a full stop, question or exclamation mark."""
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]
