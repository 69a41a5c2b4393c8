"""Category names as people write them: readable forms, plurals and counted phrases."""

from __future__ import annotations

import re

_NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                 "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
                 "nineteen", "twenty"]
_IRREGULAR = {"person": "people", "child": "children", "ship": "ships", "bus": "buses"}


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


def counted(n: int, category: str) -> str:
    """`3 small vehicles`, `1 plane`: digits, with the noun agreeing."""
    name = readable(category)
    return f"{n} {name if n == 1 else plural(name)}"


def number_word(n: int) -> str:
    return _NUMBER_WORDS[n] if 0 <= n < len(_NUMBER_WORDS) else str(n)


def join_counts(counts: dict[str, int]) -> str:
    """`12 small vehicles, 3 planes and 1 storage tank`."""
    parts = [counted(n, cat) for cat, n in counts.items()]
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def grid_position(cx: float, cy: float) -> str:
    """Where a point (0-1 of the image) sits in a 3x3 grid: 'top left', 'centre', 'bottom centre'."""
    row = "top" if cy < 1 / 3 else "bottom" if cy > 2 / 3 else "middle"
    col = "left" if cx < 1 / 3 else "right" if cx > 2 / 3 else "centre"
    if row == "middle":
        return "centre" if col == "centre" else f"middle {col}"
    return f"{row} {col}"
