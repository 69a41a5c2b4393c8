"""FloodNet Track 2: visual question answering on post-hurricane UAV images, read from its question JSON files.

References:
    M. Rahnemoonfar, T. Chowdhury, A. Sarkar, D. Varshney, M. Yari and R. Murphy, "FloodNet: A High
    Resolution Aerial Imagery Dataset for Post Flood Scene Understanding", IEEE Access 9, 2021.
    Data: https://github.com/BinaLab/FloodNet-Challenge-EARTHVISION2021 (Track 2: VQA)
    Homepage, licence and citation as the authors state them: `CARD` below.

On-disk layout assumed (the Track 2 download, e.g. "FloodNet Challenge - Track 2/", is the root):

    root/Images/Train_Image/10165.JPG        4000x3000 JPEG
    root/Images/Valid_Image/...
    root/Images/Test_Image/...
    root/Questions/Training Question.json    split train
    root/Questions/Valid Question.json       split val    (no Ground_Truth)
    root/Questions/Test_Question.json        split test   (no Ground_Truth)

The download spells two file names with a space and one with an underscore; copies that renamed
them are accepted too (`Training_Question.json`, `Valid_Question.json`, `Test Question.json`).
Each file is one object keyed "0".."N-1" (file order kept) whose values are
`{"Image_ID": "10165.JPG", "Question": ..., "Ground_Truth": ..., "Question_Type": ...}`; types are
Condition_Recognition, Yes_No, Simple_Counting and Complex_Counting (QA.kind, as written); counting
answers are JSON integers (kept as text, "3"), others strings ("Yes", "non flooded",
"flooded,non flooded" kept as written). Verified on public copies of the files (FujitsuResearch/
TMN-FloodNet-VQA `Data/Questions/Question.json` and `Valid_Question.json`) and on loaders that open
`Questions/Training Question.json` with `Images/Train_Image` (e.g. the dataset-ninja converter).

One Sample per image with its questions in file order. A file in which no entry has a Ground_Truth
(the released valid and test files) yields its images with `qa=()` and `annotated=False` (the LLM
stages still describe them) and one warning giving the number of unanswered questions. Bad data
never raises: an unreadable file, an entry that is not an object or lacks Image_ID or Question, an
Image_ID that climbs out of the image folder, a duplicate key (the later entry), an entry without a
Ground_Truth in a file that has them, and an image file or image folder that is missing are skipped
with an Issue (one per image, or per file for a missing folder). The ground sampling distance is not
stated per image, so `gsd` is None.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rsgpt4v.core.card_facts import UNKNOWN, CardFacts, License
from rsgpt4v.core.issue_codes import IssueCode
from rsgpt4v.core.schema import QA, Defect, Issue, Sample
from rsgpt4v.sources.base import Source, SourceError, find_image, finite_answer, inside_root, read_json

SPLITS = (
    ("train", ("Training Question.json", "Training_Question.json"), "Train_Image"),
    ("val", ("Valid Question.json", "Valid_Question.json"), "Valid_Image"),
    ("test", ("Test_Question.json", "Test Question.json"), "Test_Image"),
)


@dataclass(frozen=True)
class _Split:
    name: str
    questions: Path
    images: Path


@dataclass
class _Image:
    """The questions read for one Image_ID, in file order."""

    qa: list[QA] = field(default_factory=list)
    asked: int = 0


class _Object(dict):
    """A JSON object that remembers the keys it saw twice (json keeps the last one silently)."""

    duplicates: list[str]


def _keep_first(pairs: list[tuple[str, object]]) -> _Object:
    obj = _Object()
    obj.duplicates = []
    for key, value in pairs:
        if key in obj:
            obj.duplicates.append(key)
        else:
            obj[key] = value
    return obj


def read_questions(path: Path, name: str) -> tuple[_Object | None, Issue | None]:
    """The parsed question file, or an Issue naming the file (and the line of a syntax error)."""
    data, problem = read_json(path, name, object_pairs_hook=_keep_first)
    if problem:
        return None, problem
    if not isinstance(data, _Object):
        return None, Issue(kind="skip", code=IssueCode.FILE_WRONG_STRUCTURE, file=name,
                           reason='expected an object keyed "0".."N-1"')
    return data, None


CARD = CardFacts(
    title="FloodNet (Track 2, VQA)",
    homepage="https://github.com/BinaLab/FloodNet-Challenge-EARTHVISION2021",
    license=License(id=UNKNOWN, name=UNKNOWN,
                    stated_in="the README of github.com/BinaLab/FloodNet-Challenge-EARTHVISION2021 (Track 2, the "
                              "questions) states no licence"),
    citation="""@ARTICLE{9460988,
  author={Rahnemoonfar, Maryam and Chowdhury, Tashnim and Sarkar, Argho and Varshney, Debvrat and Yari, Masoud and Murphy, Robin Roberson},
  journal={IEEE Access},
  title={FloodNet: A High Resolution Aerial Imagery Dataset for Post Flood Scene Understanding},
  year={2021},
  volume={9},
  number={},
  pages={89644-89654},
  doi={10.1109/ACCESS.2021.3090981}
  }

@article{rahnemoonfar2020floodnet,
  title={FloodNet: A High Resolution Aerial Imagery Dataset for Post Flood Scene Understanding},
  author={Rahnemoonfar, Maryam and Chowdhury, Tashnim and Sarkar, Argho and Varshney, Debvrat and Yari, Masoud and Murphy, Robin},
  journal={arXiv preprint arXiv:2012.02951},
  year={2020}
}""",
    citation_from='verbatim from the README of github.com/BinaLab/FloodNet-Supervised_v1.0 ("Please cite our paper '
                  'when using the dataset")',
    version="EARTHVISION 2021 challenge, Track 2",
    images="the FloodNet UAV images, which the same authors release in FloodNet-Supervised_v1.0 under the Community "
           "Data License Agreement - Permissive 1.0 (https://cdla.io/permissive-1-0/)",
)


class FloodNetVQA(Source):
    name = "floodnet-vqa"
    description = "FloodNet Track 2: post-Harvey UAV images with flood condition, yes/no and counting questions"
    split_rule = "Questions/Training Question.json -> train, Valid Question.json -> val, Test_Question.json -> test"
    card = CARD
    vocabulary = ()
    task_kind = "vqa"
    tiled = False
    exhaustive_labels = False
    label_tasks: frozenset[str] = frozenset()

    def __init__(self, root: Path, split: str | None = None) -> None:
        super().__init__(root, split)
        found = []
        questions = self.root / "Questions"
        for name, spellings, folder in SPLITS:
            path = next((questions / s for s in spellings if (questions / s).is_file()), None)
            if path is not None:
                found.append(_Split(name, path, self.root / "Images" / folder))
        if not found:
            raise SourceError(f"{self.root} does not look like FloodNet Track 2: expected Questions/Training "
                              "Question.json (or Valid Question.json, Test_Question.json) beside Images/Train_Image/")
        self.splits = self.select_split(found, lambda s: s.name)

    def __iter__(self) -> Iterator[Sample | Issue]:
        for split in self.splits:
            yield from self._iter_split(split)

    def _iter_split(self, split: _Split) -> Iterator[Sample | Issue]:
        rel = self.relative(split.questions)
        data, problem = read_questions(split.questions, rel)
        if problem:
            yield problem
            return
        for key in data.duplicates:
            yield Issue(kind="skip", code=IssueCode.DUPLICATE_ID, file=rel,
                        reason=f'questions["{key}"]: duplicate key (the first one is kept)')
        labelled = any(isinstance(e, dict) and e.get("Ground_Truth") is not None for e in data.values())
        images: dict[str, _Image] = {}
        for key, entry in data.items():
            defect = _check(entry, split.images)
            answer = finite_answer(entry.get("Ground_Truth")) if defect is None and labelled else None
            if defect is None and labelled and answer is None:
                defect = Defect(IssueCode.EMPTY_TEXT, f"no usable Ground_Truth ({entry.get('Ground_Truth')!r})")
            if defect is not None:
                yield defect.issue("skip", rel, where=f'questions["{key}"]')
                continue
            image = images.setdefault(entry["Image_ID"].strip(), _Image())
            image.asked += 1
            if answer is not None:
                kind = entry.get("Question_Type")
                image.qa.append(QA(question=entry["Question"].strip(), answer=answer,
                                   kind=kind if isinstance(kind, str) else None))
        if not images:
            return
        if not split.images.is_dir():
            yield Issue(kind="skip", code=IssueCode.IMAGE_FOLDER_MISSING, file=rel,
                        reason=f"image folder {self.relative(split.images)} not found; "
                               f"{sum(i.asked for i in images.values())} questions skipped")
            return
        if not labelled:
            asked = sum(i.asked for i in images.values())
            yield Issue(kind="warning", code=IssueCode.SPLIT_UNLABELLED, file=rel,
                        reason=f"{asked} questions without Ground_Truth (split has no answers); images kept "
                               "unannotated")
        for image_name, image in images.items():
            yield self._sample(split, rel, image_name, image, labelled)

    def _sample(self, split: _Split, rel: str, image_name: str, image: _Image, labelled: bool) -> Sample | Issue:
        path = find_image(split.images, image_name)
        if path is None:
            return Issue(kind="skip", code=IssueCode.IMAGE_MISSING, file=rel,
                         reason=f"image {image_name!r} not found (expected "
                                f"{self.relative(split.images / image_name)}); its {image.asked} questions skipped")
        provenance: dict[str, str | int] = {"questions_file": rel, "image_name": image_name, "questions": image.asked}
        return Sample(source=self.name, split=split.name, image_id=Path(image_name).stem, image_path=path.resolve(),
                      rel_image=self.relative(path), qa=tuple(image.qa), annotated=labelled, provenance=provenance)


def _check(entry: object, images: Path) -> Defect | None:
    """Why an entry cannot be used, whatever its answer; None when it can."""
    if not isinstance(entry, dict):
        return Defect(IssueCode.MALFORMED_ENTRY, "not an object")
    name = entry.get("Image_ID")
    if not isinstance(name, str) or not name.strip():
        return Defect(IssueCode.MALFORMED_ENTRY, f"Image_ID {name!r} is not a file name")
    if inside_root(images, name.strip()) is None:
        return Defect(IssueCode.PATH_OUTSIDE_FOLDER, f"Image_ID {name!r} climbs out of the image folder")
    question = entry.get("Question")
    if not isinstance(question, str) or not question.strip():
        return Defect(IssueCode.EMPTY_TEXT, "no Question")
    return None
