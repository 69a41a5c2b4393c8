"""RSIVQA: question/answer text files over five classification and detection datasets' images.

References:
    X. Zheng, B. Wang, X. Du and X. Lu, "Mutual Attention Inception Network for Remote Sensing
    Visual Question Answering", IEEE TGRS 60, 2021.
    Data: https://github.com/spectralpublic/RSIVQA (question files only; no licence file)
    The images belong to the source datasets and their licences: UC Merced (via UCM-Captions
    numbering), Sydney (Sydney-Captions numbering), RSICD (in the AID folder), DOTA, HRRSD.
    Homepage, licence and citation as the authors state them: `CARD` below.

On-disk layout assumed (the release's `RSIVQA/` folder is the root; a clone of the repository,
holding `RSIVQA/` itself, is accepted too):

    root/AID/rsicd_vqa.txt          RSICD images   00433.jpg, airport_1.jpg    split train
    root/DOTA/dota_train_vqa2.txt   DOTA images    P0000 -> P0000.png          split train
    root/DOTA/dota_val_vqa2.txt     DOTA images    P0003 -> P0003.png          split val
    root/HRRSD/opt_val_vqa.txt      HRRSD images   00001 -> 00001.jpg          split val
    root/Sydney/sydney_vqa.txt      Sydney-Captions images   1.tif             split train
    root/UCM/ucm_vqa.txt            UCM-Captions images      1.tif             split train
    root/UCM/ucm_res.txt            (the same UCM images)                      split train

The release has no images and no split files. Place or symlink each source dataset's images in an
`images/` folder beside its text files (root/DOTA/images/P0000.png, root/UCM/images/1.tif, ...), or
pass `images={"DOTA": Path(...), ...}` (keys AID, DOTA, HRRSD, Sydney, UCM). A name is looked up
as written, else by its stem with any image suffix (the DOTA and HRRSD names have none). The split
follows the file names: DOTA's two files are its train and val, the HRRSD file (`opt_val`, HRRSD's
validation images) is val, and every other file is "train", since RSIVQA defines no other split.

A line is `image:question?answer`, split at the first ':' and the last '?', the question keeping
its '?' (`P0003: how many small vehicles are there in this picture?15`; the space after ':' in the
DOTA and HRRSD files is stripped, as are trailing spaces). LF endings, ASCII. Verified on the real
UCM, Sydney and DOTA-val files and the first and last pages of the others: every line parses;
`ucm_res.txt` answers counts in words ("sixteen", "about thirty", "i don't know"), 7 of its lines end
in a space, 294 of its questions lost their object name ("How many  in the picture?",
"What is the location of the  in this picture?"), and it asks again, with other wording and answers
at times ("airport" where ucm_vqa.txt says "airplane"), the theme question of ucm_vqa.txt.

One Sample per image and split, image_id "<subset>_<stem>", qa in file order, the files of a subset
read in the order above; a question asked again for the same image (same words, case and spacing
aside) is dropped, as is a question with an empty object name (two spaces in a row); each file gets
one warning counting what was dropped. The dataset names no question types: QA.kind is None. gsd is
set where the source dataset has a single one: UCM 0.3048 m (1 foot), Sydney 0.5 m; else None.
Bad data never raises: an unreadable file, a line without ':' or '?' or with an empty part, and a
name climbing out of the image folder are skipped with an Issue; so is an image that is not found
(one Issue per image) and a file whose image folder is absent (one Issue per file).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rsgpt4v.core.card_facts import UNKNOWN, CardFacts, License
from rsgpt4v.core.issue_codes import IssueCode
from rsgpt4v.core.schema import QA, Defect, Issue, Sample
from rsgpt4v.sources.base import (
    IMAGE_SUFFIXES,
    SPLIT_ORDER,
    Source,
    SourceError,
    find_image,
    inside_root,
)


@dataclass(frozen=True)
class QuestionFile:
    subset: str
    name: str
    split: str


FILES = (
    QuestionFile("AID", "rsicd_vqa.txt", "train"),
    QuestionFile("DOTA", "dota_train_vqa2.txt", "train"),
    QuestionFile("DOTA", "dota_val_vqa2.txt", "val"),
    QuestionFile("HRRSD", "opt_val_vqa.txt", "val"),
    QuestionFile("Sydney", "sydney_vqa.txt", "train"),
    QuestionFile("UCM", "ucm_vqa.txt", "train"),
    QuestionFile("UCM", "ucm_res.txt", "train"),
)
SUBSETS = ("AID", "DOTA", "HRRSD", "Sydney", "UCM")
GSD = {"UCM": 0.3048, "Sydney": 0.5}
_EMPTY_SLOT = re.compile(r"\s{2,}")  # the generator's blank object name leaves two spaces


@dataclass(frozen=True)
class Triplet:
    line: int
    image: str
    question: str
    answer: str


def parse_line(line: str) -> tuple[str, str, str] | Defect:
    """(image, question with its '?', answer) of one `image:question?answer` line, or why it is malformed."""
    image, colon, rest = line.partition(":")
    if not colon:
        return Defect(IssueCode.MALFORMED_ENTRY, "malformed line: no ':' after the image name")
    question, mark, answer = rest.rpartition("?")
    if not mark:
        return Defect(IssueCode.MALFORMED_ENTRY, "malformed line: no '?' ending the question")
    image, question, answer = image.strip(), question.strip(), answer.strip()
    if not image:
        return Defect(IssueCode.MALFORMED_ENTRY, "malformed line: empty image name")
    if not question:
        return Defect(IssueCode.EMPTY_TEXT, "malformed line: empty question")
    if not answer:
        return Defect(IssueCode.EMPTY_TEXT, "malformed line: empty answer")
    return image, question + "?", answer


def read_question_file(path: Path, name: str) -> tuple[list[Triplet], list[Issue]]:
    """Every triplet of one file and an Issue per malformed line (or one for an unreadable file)."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        return [], [Issue(kind="skip", code=IssueCode.FILE_UNREADABLE, file=name,
                          reason=f"cannot read file ({exc.strerror})")]
    except UnicodeDecodeError as exc:
        return [], [Issue(kind="skip", code=IssueCode.FILE_UNREADABLE, file=name,
                          reason=f"not UTF-8 text ({exc.reason})")]
    triplets: list[Triplet] = []
    issues: list[Issue] = []
    for lineno, raw in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), start=1):
        if not raw.strip():
            continue
        parsed = parse_line(raw)
        if isinstance(parsed, Defect):
            issues.append(parsed.issue("skip", name, lineno))
        else:
            triplets.append(Triplet(lineno, *parsed))
    return triplets, issues


@dataclass
class _Image:
    """One image of a subset and split: where it was first named, and its questions so far."""

    name: str
    file: str
    line: int
    qa: list[QA] = field(default_factory=list)
    answers: dict[str, str] = field(default_factory=dict)  # normalised question -> the answer kept


CARD = CardFacts(
    title="RSIVQA",
    homepage="https://github.com/spectralpublic/RSIVQA",
    license=License(id=UNKNOWN, name=UNKNOWN,
                    stated_in="github.com/spectralpublic/RSIVQA has no LICENSE file and its README states no licence"),
    citation="""@article{
9444570,
author = {Zheng, Xiangtao and Wang, Binqiang and Du, Xingqian and Lu, Xiaoqiang},
doi = {10.1109/TGRS.2021.3079918},
issn = {0196-2892},
journal = {IEEE Transactions on Geoscience and Remote Sensing},
title = {{Mutual Attention Inception Network for Remote Sensing Visual Question Answering}},
year = {2021}
}""",
    citation_from="verbatim from the README of github.com/spectralpublic/RSIVQA (trailing spaces removed)",
    version="111,693 triplets (the README: 559 added in the current version)",
    images="the images of UC Merced, Sydney, AID (as RSICD holds them), DOTA and HRRSD, each under its own terms",
)


class RSIVQA(Source):
    name = "rsivqa"
    description = "RSIVQA: image:question?answer files over UCM, Sydney, RSICD, DOTA and HRRSD images"
    split_rule = ("DOTA/dota_train_vqa2.txt -> train; DOTA/dota_val_vqa2.txt and HRRSD/opt_val_vqa.txt -> val; the "
                  "AID, Sydney and UCM files -> train (RSIVQA defines no other split)")
    card = CARD
    vocabulary = ()
    task_kind = "vqa"
    tiled = False
    exhaustive_labels = False
    label_tasks: frozenset[str] = frozenset()
    options_help = {"images": "where each subset's images are, as SUBSET:PATH pairs separated by commas "
                              "(DOTA:/data/DOTA/images,UCM:/data/UCM/Images); default: images/ in each subset's folder"}

    def __init__(self, root: Path, split: str | None = None, images: Mapping[str, Path] | None = None) -> None:
        super().__init__(root, split)
        if not self._present() and (self.root / "RSIVQA").is_dir():
            self.root = self.root / "RSIVQA"
        present = self._present()
        if not present:
            expected = ", ".join(f"{f.subset}/{f.name}" for f in FILES)
            raise SourceError(f"{self.root} does not look like RSIVQA: expected some of {expected} in it")
        unknown = sorted(set(images or {}) - set(SUBSETS))
        if unknown:
            raise SourceError(f"unknown RSIVQA subset {unknown[0]!r} in images; choose from {', '.join(SUBSETS)}")
        self.images = {k: Path(v) for k, v in (images or {}).items()}
        self.files = self.select_split(present, lambda f: f.split)

    def _present(self) -> list[QuestionFile]:
        return [f for f in FILES if (self.root / f.subset / f.name).is_file()]

    def image_folder(self, subset: str) -> Path:
        return self.images.get(subset, self.root / subset / "images")

    def __iter__(self) -> Iterator[Sample | Issue]:
        for split in SPLIT_ORDER:
            for subset in SUBSETS:
                files = [f for f in self.files if (f.split, f.subset) == (split, subset)]
                if files:
                    yield from self._group(subset, split, files)

    def _group(self, subset: str, split: str, files: list[QuestionFile]) -> Iterator[Sample | Issue]:
        folder = self.image_folder(subset)
        if not folder.is_dir():
            for f in files:
                yield Issue(kind="skip", code=IssueCode.IMAGE_FOLDER_MISSING, file=f"{subset}/{f.name}",
                            reason=f"image folder {self.relative(folder)} not found; questions of this file "
                                   f"skipped (place or symlink the {subset} images there)")
            return
        images: dict[str, _Image] = {}
        for f in files:
            yield from self._read(folder, subset, f"{subset}/{f.name}", images)
        for image_id, image in images.items():
            yield self._sample(folder, subset, split, image_id, image)

    def _read(self, folder: Path, subset: str, name: str, images: dict[str, _Image]) -> Iterator[Issue]:
        triplets, issues = read_question_file(self.root / name, name)
        yield from issues
        repeated, differing, empty = [], 0, []
        for t in triplets:
            if inside_root(folder, t.image) is None:
                yield Issue(kind="skip", code=IssueCode.PATH_OUTSIDE_FOLDER, file=name, line=t.line,
                            reason=f"image name {t.image!r} climbs out of the image folder")
                continue
            if _EMPTY_SLOT.search(t.question):
                empty.append(t.line)
                continue
            image = images.setdefault(_image_id(subset, t.image), _Image(t.image, name, t.line))
            key = " ".join(t.question.casefold().split())
            if key in image.answers:
                repeated.append(t.line)
                differing += image.answers[key] != t.answer
                continue
            image.answers[key] = t.answer
            image.qa.append(QA(question=t.question, answer=t.answer))
        if empty:
            yield Issue(kind="warning", code=IssueCode.EMPTY_TEXT, file=name, line=empty[0],
                        reason=f"{len(empty)} questions with an empty object name dropped (first at line {empty[0]})")
        if repeated:
            yield Issue(kind="warning", code=IssueCode.DUPLICATE_QUESTION, file=name, line=repeated[0],
                        reason=f"{len(repeated)} questions asked again for the same image dropped, {differing} of "
                               f"them with another answer (first at line {repeated[0]})")

    def _sample(self, folder: Path, subset: str, split: str, image_id: str, image: _Image) -> Sample | Issue:
        path = find_image(folder, image.name)
        if path is None:
            stem = _strip_suffix(image.name)
            return Issue(kind="skip", code=IssueCode.IMAGE_MISSING, file=image.file, line=image.line,
                         reason=f"image {image.name!r} not found in {self.relative(folder)} (looked for {stem}.png, "
                                f".jpg, .tif, ...); its {len(image.qa)} questions skipped")
        return Sample(source=self.name, split=split, image_id=image_id, image_path=path.resolve(),
                      rel_image=self.relative(path), qa=tuple(image.qa), gsd=GSD.get(subset),
                      provenance={"questions_file": image.file, "line": image.line, "image_name": image.name})


def _strip_suffix(name: str) -> str:
    stem, dot, suffix = name.rpartition(".")
    return stem if dot and f".{suffix.lower()}" in IMAGE_SUFFIXES else name


def _image_id(subset: str, name: str) -> str:
    """`<subset>_<stem>`, safe as a file name: one id for `1.tif` and `1.jpg`, which find_image treats alike."""
    return f"{subset}_{_strip_suffix(name)}".replace("/", "_").replace("\\", "_")
