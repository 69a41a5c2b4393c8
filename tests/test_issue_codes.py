"""Input issue codes: one stable name per problem, each made somewhere, each documented in docs/output.md;
and the kinds failed answers are counted by, one name per problem."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from rsgpt4v.core.issue_codes import IssueCode
from rsgpt4v.core.schema import Defect, Issue
from rsgpt4v.llm.engine import FailureKind
from rsgpt4v.prompting.stages import CheckKind
from rsgpt4v.quality.qc import QCKind

REPO = Path(__file__).resolve().parents[1]


def test_codes_are_distinct_snake_case_names_with_a_meaning() -> None:
    values = [c.value for c in IssueCode]
    assert len(values) == len(set(values))
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", v) for v in values), values
    assert all(c.meaning.strip() for c in IssueCode)
    assert len({c.meaning for c in IssueCode}) == len(values)


def test_every_code_is_made_somewhere() -> None:
    sources = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "rsgpt4v").rglob("*.py")
                        if p.name != "issue_codes.py")
    unused = [c.name for c in IssueCode if f"IssueCode.{c.name}" not in sources]
    assert unused == []


def test_the_docs_table_lists_every_code_with_its_meaning() -> None:
    readme = (REPO / "docs" / "output.md").read_text(encoding="utf-8")
    table = readme.split("| code | meaning |\n| --- | --- |\n", 1)[1].split("\n\n", 1)[0]
    rows = re.findall(r"^\| `([a-z_]+)` \| (.+) \|$", table, flags=re.M)
    assert rows == [(c.value, c.meaning) for c in IssueCode]


def test_an_issue_cannot_be_made_without_a_known_code() -> None:
    with pytest.raises(ValidationError):
        Issue(kind="skip", reason="no image")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Issue(kind="skip", code="no_such_code", reason="no image")
    issue = Issue(kind="skip", code="image_missing", file="a.json", reason="images[0]: no image")
    assert issue.code is IssueCode.IMAGE_MISSING
    assert issue.model_dump(mode="json")["code"] == "image_missing"


def test_a_defect_becomes_an_issue_where_it_is_found() -> None:
    defect = Defect(IssueCode.DEGENERATE_BOX, "degenerate box (area 0 px^2 < 1)")
    assert defect.issue("skip", "labels/a.txt", 3) == Issue(
        kind="skip", code=IssueCode.DEGENERATE_BOX, file="labels/a.txt", line=3,
        reason="degenerate box (area 0 px^2 < 1)")
    assert str(defect.issue("skip", "a.json", where="annotations[2]")) == \
        "a.json: annotations[2]: degenerate box (area 0 px^2 < 1)"


def test_answer_failure_kinds_name_one_problem_each() -> None:
    # The engine, the stage checks and QC count into the same per-stage tables: no value may mean two things.
    values = [k.value for enum in (FailureKind, CheckKind, QCKind) for k in enum]
    assert len(values) == len(set(values))
    assert all(re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)*", v) for v in values), values
