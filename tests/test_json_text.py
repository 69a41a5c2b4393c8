"""The JSON in an answer is the first complete JSON value of its text, fenced or not, with prose around:
properties over generated values and texts (hypothesis), and the answers servers really give."""

from __future__ import annotations

import json

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rsgpt4v.core.responses import GlobalResponse
from rsgpt4v.llm.engine import FailureKind, Unusable, check_completion
from rsgpt4v.llm.json_text import NoJSONValue, first_json_value

SCALARS = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False) \
    | st.text(max_size=20)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                         max_size=4), max_leaves=20)
OBJECTS = st.dictionaries(st.text(max_size=8), VALUES, max_size=5)
# Prose a model writes around its answer: anything but the characters that open a JSON value.
PROSE = st.text(alphabet=st.characters(blacklist_characters="{["), max_size=60)
FENCES = st.sampled_from([("", ""), ("```json\n", "\n```"), ("```\n", "\n```"), ("`", "`")])
LAYOUT = st.sampled_from([None, 2, 0])


@given(OBJECTS, PROSE, PROSE, FENCES, LAYOUT)
@settings(max_examples=300)
def test_the_first_object_is_found_whatever_surrounds_it(value: dict, before: str, after: str,
                                                           fence: tuple[str, str], indent: int | None) -> None:
    text = f"{before}{fence[0]}{json.dumps(value, indent=indent, ensure_ascii=indent is None)}{fence[1]}{after}"
    assert first_json_value(text) == value


@given(OBJECTS, OBJECTS, PROSE)
def test_of_two_objects_the_first_is_the_answer(first: dict, second: dict, between: str) -> None:
    assert first_json_value(f"{json.dumps(first)}{between}{json.dumps(second)}") == first


@given(OBJECTS, PROSE, st.text(alphabet="abc ,:'", max_size=10).filter(lambda t: any(c in "abc" for c in t)))
@example({"a": 1}, "the set ", "a, b")
def test_braces_in_prose_before_the_answer_are_passed_over(value: dict, before: str, inside: str) -> None:
    """`{a, b}` in a sentence is balanced but not JSON: skipped whole, the answer after it is found."""
    text = f"{before}{{{inside}}} so here it is: {json.dumps(value)}"
    assert first_json_value(text) == value


@given(OBJECTS.filter(lambda v: len(json.dumps(v)) > 2), PROSE, st.data())
def test_an_answer_cut_short_is_no_value_not_a_fragment_of_it(value: dict, before: str, data: st.DataObject) -> None:
    """A value that opens and never closes swallows the rest: the inner objects of a cut answer are
    never taken for the answer."""
    dumped = json.dumps(value)
    cut = data.draw(st.integers(1, len(dumped) - 1))
    with pytest.raises(NoJSONValue):
        first_json_value(before + dumped[:cut])


@given(PROSE)
def test_text_without_json_says_so(text: str) -> None:
    with pytest.raises(NoJSONValue, match="holds no JSON value"):
        first_json_value(text)


@given(st.lists(VALUES, max_size=4), PROSE)
def test_an_array_is_found_where_asked(value: list, before: str) -> None:
    assert first_json_value(f"{before}{json.dumps(value)}", opening="[") == value


def test_braces_and_quotes_inside_strings_do_not_end_the_value() -> None:
    text = 'Here: {"caption": "a } and a \\" and a {", "description": "x"} Done {really}.'
    assert first_json_value(text) == {"caption": 'a } and a " and a {', "description": "x"}


def test_invalid_json_names_the_first_fault() -> None:
    with pytest.raises(NoJSONValue, match=r"not valid JSON \(Expecting property name enclosed in double quotes"):
        first_json_value("{'caption': 'single quotes'}")


def _completion(content: str) -> dict:
    return {"choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}]}


def test_a_prose_answer_is_validated_by_the_same_model() -> None:
    answer = {"caption": "An airport.", "description": "Planes stand on the apron."}
    text = f"Sure! Here is the JSON:\n\n```json\n{json.dumps(answer, indent=2)}\n```\n\nI hope this helps."
    assert check_completion(_completion(text), GlobalResponse) == GlobalResponse(**answer)


def test_the_retry_message_quotes_the_validation_errors() -> None:
    text = '```json\n{"caption": 42}\n```'
    with pytest.raises(Unusable) as caught:
        check_completion(_completion(text), GlobalResponse)
    assert caught.value.kind == FailureKind.SCHEMA
    assert caught.value.detail == ("the answer does not match the schema: caption: Input should be a valid string "
                                   "(found 42); description: Field required")


def test_a_cut_answer_in_prose_is_invalid_json() -> None:
    with pytest.raises(Unusable) as caught:
        check_completion(_completion('Here you go:\n```json\n{"caption": "An air'), GlobalResponse)
    assert caught.value.kind == FailureKind.INVALID_JSON
    assert "not finished" in caught.value.detail
