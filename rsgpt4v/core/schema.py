"""The data model every stage shares: samples read from a source, scenes cut from them, records written.

Coordinates are absolute pixel floats in the frame of the sample's source image everywhere in here;
they become text only when a record is rendered (see `rsgpt4v.records.writer`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rsgpt4v.core.issue_codes import IssueCode
from rsgpt4v.core.paths import fitted

Point = tuple[float, float]
Box = tuple[float, float, float, float]


class Obj(BaseModel):
    """One annotated object: its oriented polygon and the horizontal box derived from it."""

    model_config = ConfigDict(frozen=True)

    category: str
    polygon: tuple[Point, ...]
    box: Box
    difficult: int = 0
    truncated: bool = False
    description: str | None = None
    line: int | None = Field(default=None, description="line of the annotation file it came from")


class QA(BaseModel):
    """A question and its ground-truth answer, as a VQA source gives it."""

    model_config = ConfigDict(frozen=True)

    question: str
    answer: str
    kind: str | None = None


class Sample(BaseModel):
    """One source image with everything its dataset says about it."""

    model_config = ConfigDict(frozen=True)

    source: str
    split: str
    image_id: str
    image_path: Path
    rel_image: str = Field(description="image path relative to the source root, for provenance")
    objects: tuple[Obj, ...] = ()
    captions: tuple[str, ...] = ()
    qa: tuple[QA, ...] = ()
    scene_class: str | None = None
    gsd: float | None = Field(default=None, description="metres per pixel, when the source knows it")
    annotated: bool = Field(default=True, description="False for images a dataset ships without labels")
    provenance: dict[str, str | float | int | None] = Field(default_factory=dict)


class Issue(BaseModel):
    """Something wrong with the input: a skipped sample or line, or a warning about kept data.

    `code` is what the run report counts; `reason` is the message a user reads, naming the entry
    and the offending value."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["skip", "warning"]
    code: IssueCode
    reason: str
    file: str | None = None
    line: int | None = None

    def where(self) -> str:
        if self.file is None:
            return "-"
        return f"{self.file}:{self.line}" if self.line is not None else self.file

    def __str__(self) -> str:
        return f"{self.where()}: {self.reason}"


class Defect(NamedTuple):
    """Why an entry cannot be used, from a helper that does not know where the entry is: the code and
    the detail an `Issue` is made of once it is."""

    code: IssueCode
    detail: str

    def issue(self, kind: Literal["skip", "warning"], file: str, line: int | None = None,
              where: str = "") -> Issue:
        """The Issue at `file` (and `line`), its message `where: detail` (just the detail without `where`)."""
        return Issue(kind=kind, code=self.code, file=file, line=line,
                     reason=f"{where}: {self.detail}" if where else self.detail)


class Scene(BaseModel):
    """One image window and the objects inside it; the unit the prompter and the tasks work on."""

    model_config = ConfigDict(frozen=True)

    sample: Sample
    window: tuple[int, int, int, int] = Field(description="x0, y0, x1, y1 in the source image")
    objects: tuple[Obj, ...] = Field(description="objects kept in this window, source frame, clipped")
    context: tuple[Obj, ...] = Field(default=(), description="objects only partly inside the window (the "
                                     "devkit's difficult=2): shown to the model as cut off, never counted or asked about")

    @property
    def width(self) -> int:
        return self.window[2] - self.window[0]

    @property
    def height(self) -> int:
        return self.window[3] - self.window[1]

    @property
    def key(self) -> str:
        """Stable id of the scene: source/split/image/window."""
        x0, y0, x1, y1 = self.window
        return f"{self.sample.source}/{self.sample.split}/{self.sample.image_id}/{x0}_{y0}_{x1}_{y1}"

    @property
    def image_name(self) -> str:
        """Relative path of the window image under OUT/ (extension added by the writer); a name too long
        for a file system is shortened (`paths.fitted`)."""
        x0, y0, x1, y1 = self.window
        s = self.sample
        return fitted(f"images/{s.source}/{s.split}/{s.image_id}__{x0}_{y0}_{x1}_{y1}")

    def counts(self) -> dict[str, int]:
        """Objects per category, most frequent first, ties by name."""
        tally: dict[str, int] = {}
        for o in self.objects:
            tally[o.category] = tally.get(o.category, 0) + 1
        return dict(sorted(tally.items(), key=lambda kv: (-kv[1], kv[0])))


class Turn(BaseModel):
    """One (question, answer) pair of a conversation, with the pixel boxes its text refers to."""

    question: str
    answer: str


class RecordBox(BaseModel):
    """A box a record's text refers to, in pixels of the record image: its horizontal box, and the
    polygon it was derived from (oriented sources), category and difficulty, so that every box
    flavour can be written from it (GeoChat's angle, a category next to the box)."""

    model_config = ConfigDict(frozen=True)

    box: Box
    polygon: tuple[Point, ...] | None = None
    label: str = "object"
    difficult: int = 0

    @model_validator(mode="before")
    @classmethod
    def _bare_box(cls, value: object) -> object:
        # A bare (x1, y1, x2, y2) is a box with nothing else known about it.
        if isinstance(value, (tuple, list)):
            return {"box": value}
        return value


class Record(BaseModel):
    """One training example before rendering: turns whose `<bN>` placeholders name pixel boxes."""

    id: str
    image: str
    task: str
    source: str
    split: str
    turns: list[Turn]
    boxes: dict[str, RecordBox] = Field(default_factory=dict,
                                        description="placeholder -> box in the record image's frame")
    meta: dict[str, object] = Field(default_factory=dict)


class Problem(NamedTuple):
    """Why an answer was rejected by a check: `kind` is what the run report counts, `detail` what the
    model is told when it is asked again."""

    kind: str
    detail: str
