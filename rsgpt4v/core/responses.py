"""Response models of the three LLM stages, sent to the API as strict JSON schemas.

Field descriptions are part of the schema the model sees, so they say what a good value is.
"""

from __future__ import annotations

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
