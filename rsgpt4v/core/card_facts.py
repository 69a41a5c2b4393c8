"""What a dataset card says about one source dataset: its homepage, how to cite it, its licence as its
authors state it, and its version.

Each adapter (`rsgpt4v.sources`) carries one `CardFacts`; a build copies them into its manifest
(`RunReport.cards`), where the publishing tools (`rsgpt4v.tools.publishing.card`, `rsgpt4v.tools.publishing.croissant`)
read them without importing an adapter. A licence is what the dataset's authors state, with where
that was read; "unknown" where they state none, never a guess. A fact read only second-hand (another
project quoting the authors' page) says so. RS-GPT4V's own citation is here too: every card cites it.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from rsgpt4v.core.hub_terms import HUB_LICENSES, LICENSE_NAME

UNKNOWN = "unknown"


class BibEntry(NamedTuple):
    kind: str  # article, inproceedings, misc, ...
    key: str


_ENTRY_HEAD = re.compile(r"@([A-Za-z]+)\s*\{\s*([^,\s{}]*)\s*,")


def bibtex_entries(text: str) -> list[BibEntry]:
    """The entries of a BibTeX text, in order; ValueError saying what is wrong when an entry lacks a
    type, a key or a title, its braces do not balance, or text stands outside the entries."""
    entries = []
    at = 0
    while True:
        start = text.find("@", at)
        if text[at:start if start >= 0 else len(text)].strip():
            raise ValueError(f"text outside a BibTeX entry: {text[at:start if start >= 0 else None].strip()[:40]!r}")
        if start < 0:
            break
        head = _ENTRY_HEAD.match(text, start)
        if head is None:
            raise ValueError(f"no @type{{key, at {text[start:start + 30]!r}")
        if not head.group(2):
            raise ValueError(f"@{head.group(1)} entry without a key")
        depth, end = 0, None
        for i in range(text.index("{", start), len(text)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                end = i
                break
        if end is None:
            raise ValueError(f"@{head.group(1)}{{{head.group(2)}: unbalanced braces (an entry never closed)")
        body = text[head.end():end]
        if not re.search(r"(^|[\s,])title\s*=", body, re.IGNORECASE):
            raise ValueError(f"@{head.group(1)}{{{head.group(2)}: no title field")
        entries.append(BibEntry(head.group(1).lower(), head.group(2)))
        at = end + 1
    if not entries:
        raise ValueError("no BibTeX entry")
    if text.count("{") != text.count("}"):
        raise ValueError("unbalanced braces")
    return entries


class License(BaseModel):
    """A dataset's licence as its authors state it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str  # the Hub's id: a listed licence, "other" (terms of their own), or "unknown" (none stated)
    name: str  # as the authors state it; "unknown" when they state none
    link: str | None = None  # where the terms are, when stated
    stated_in: str  # where the statement was read (a URL and what it says), or where nothing was found
    second_hand: bool = False  # read in another project quoting the authors, not on the authors' page

    @field_validator("id")
    @classmethod
    def _listed(cls, value: str) -> str:
        if value not in HUB_LICENSES:
            raise ValueError(f"licence id {value!r} is not one of the Hub's (core/hub_terms.py)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> License:
        if (self.id == UNKNOWN) != (self.name == UNKNOWN):
            raise ValueError("a licence is unknown in both its id and its name, or in neither")
        if self.id == "other" and not self.link:
            raise ValueError("terms of their own (id other) need the link where they are stated")
        return self

    @property
    def slug(self) -> str:
        """The name as a Hub `license_name`: lower-case words joined by dashes."""
        slug = re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")
        assert LICENSE_NAME.match(slug), slug
        return slug


class CardFacts(BaseModel):
    """One source dataset's facts for a dataset card."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str  # the dataset's name as its authors write it
    homepage: str  # where the authors publish it ("" when the adapter reads any dataset of a format)
    license: License
    citation: str  # BibTeX, one or more entries, as the authors ask to be cited
    citation_from: str  # where the BibTeX comes from: verbatim from the authors, or how it was put together
    version: str | None = None  # the release the adapter reads, when the dataset has several
    images: str | None = None  # whose images these are when they are another dataset's (their terms apply too)

    @field_validator("citation")
    @classmethod
    def _parses(cls, value: str) -> str:
        if value:
            bibtex_entries(value)
        return value

    def lines(self) -> list[str]:
        """The facts as `rsgpt4v sources --details` prints them, one per line, the BibTeX last."""
        lic = self.license
        named = lic.name if lic.id in (UNKNOWN, "other") or lic.name == lic.id else f"{lic.name} ({lic.id})"
        lines = [f"title: {self.title}", f"homepage: {self.homepage or '(none: the data is whatever you convert)'}",
                 f"licence: {named}" + (f" <{lic.link}>" if lic.link else "")
                 + (" [second-hand]" if lic.second_hand else ""),
                 f"licence stated in: {lic.stated_in}"]
        if self.version:
            lines.append(f"version: {self.version}")
        if self.images:
            lines.append(f"images: {self.images}")
        lines.append(f"citation from: {self.citation_from}")
        return [*lines, *(f"  {line}" for line in self.citation.splitlines())]

    @classmethod
    def unstated(cls, name: str) -> CardFacts:
        """The facts of a source whose adapter states none (a plugin): nothing claimed."""
        return cls(title=name, homepage="", citation="", citation_from="the adapter gives no citation",
                   license=License(id=UNKNOWN, name=UNKNOWN, stated_in="the adapter states no licence"))


RSGPT4V_CITATION = """@misc{xu2024rsgpt4v,
  title={RS-GPT4V: A Unified Multimodal Instruction-Following Dataset for Remote Sensing Image Understanding},
  author={Xu, Linrui and Zhao, Ling and Guo, Wang and Li, Qiujun and Long, Kewang and Zou, Kaiqi and Wang, Yuhan and Li, Haifeng},
  year={2024},
  eprint={2406.12479},
  archivePrefix={arXiv},
  primaryClass={cs.CV}
}"""
RSGPT4V_CITATION_FROM = (
    "the arXiv record 2406.12479 and the author list of GeoX-Lab/RS-GPT4V's README; the README's own "
    "BibTeX (key 10197260) leaves out the second author, Ling Zhao")
RSGPT4V_URL = "https://arxiv.org/abs/2406.12479"
