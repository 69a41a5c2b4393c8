"""Mentions in a grounded description: `[two white buses](4, 5)` ties the words to objects by their ids.

The global stage writes its description with each mention of a noted object in this form, the ids
being the marks of the window's objects. `plain` is the text a reader sees (the words kept, the
brackets and ids dropped), `mentions` the phrases with their ids in text order, `placed` the text
with each mention replaced by what a caller writes for it, and `stray` whatever looks like a
mention or an id but cannot be read as one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

# The words of a mention hold no brackets, braces or angle brackets: box flavours use those.
_MENTION = re.compile(r"\[([^\[\](){}<>]+)\]\(\s*(\d+(?:\s*,\s*\d+)*)\s*\)")
# What is left of a mention written wrong: a bracket, or an id in parentheses ("(3)", "(3, 4)").
_STRAY = re.compile(r"[\[\]]|\(\s*\d+(?:\s*,\s*\d+)*\s*\)")


class Mention(NamedTuple):
    phrase: str
    ids: tuple[int, ...]


def _mention(m: re.Match[str]) -> Mention:
    return Mention(" ".join(m.group(1).split()), tuple(int(i) for i in m.group(2).split(",")))


def mentions(text: str) -> list[Mention]:
    """The mentions of `text`, in order."""
    return [_mention(m) for m in _MENTION.finditer(text)]


def placed(text: str, write: Callable[[Mention], str]) -> str:
    """`text` with each mention replaced by `write(mention)`."""
    return _MENTION.sub(lambda m: write(_mention(m)), text)


def plain(text: str) -> str:
    """The text a reader sees: each mention's words, without brackets and ids."""
    return placed(text, lambda m: m.phrase)


def stray(text: str) -> str | None:
    """A bracket or an id in parentheses left once the well-formed mentions are taken out, or None."""
    m = _STRAY.search(_MENTION.sub(" ", text))
    return m.group(0) if m else None
