"""Response models of the three LLM stages and of the judge, sent to the API as strict JSON schemas.

Field descriptions are part of the schema the model sees, so they say what a good value is.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Relation(BaseModel):
    target_id: int = Field(description="id of another listed object")
    relation: str = Field(description="spatial relation from this object to the target, e.g. 'parked next to'")


class ObjectNote(BaseModel):
    id: int = Field(description="the listed object's id")
    colour: str
    shape: str
    orientation: str
    state: str
    description: str = Field(description="one sentence about this object alone, without ids or marks")
    relations: list[Relation]
    referring_expression: str = Field(description="a short noun phrase that finds this object without marks")
    distinctive: bool = Field(description="true only if the expression singles out this one object")


class LocalResponse(BaseModel):
    objects: list[ObjectNote]


class GlobalResponse(BaseModel):
    caption: str = Field(description="one sentence, at most 25 words")
    description: str = Field(description="a detailed scene description of 100-200 words; each mention of a noted "
                                         "object written [words](id)")


class DialogueTurn(BaseModel):
    question: str
    answer: str


class DialogueResponse(BaseModel):
    turns: list[DialogueTurn]


class SentenceVerdict(BaseModel):
    id: int = Field(description="the sentence's number as listed")
    verdict: Literal["supported", "contradicted", "not_visible"] = Field(
        description="supported: the image shows it; contradicted: the image or the labelled objects show otherwise; "
                    "not_visible: it cannot be checked in this image")
    reason: str = Field(description="for contradicted: what the image shows instead, in a few words; otherwise empty")


class JudgeResponse(BaseModel):
    verdicts: list[SentenceVerdict]
