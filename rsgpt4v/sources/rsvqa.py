"""RSVQA: visual question answering on Sentinel-2 (LR) and USGS aerial (HR) tiles, read from its JSON split files.

References:
    S. Lobry, D. Marcos, J. Murray and D. Tuia, "RSVQA: Visual Question Answering for Remote Sensing
    Data", IEEE TGRS 58(12), 2020.
    Data: https://rsvqa.sylvainlobry.com (Zenodo downloads); code: https://github.com/syvlo/RSVQA
    Homepage, licence (known only second-hand) and citation: `LR_CARD`, `HR_CARD` below.

On-disk layout assumed (the Zenodo downloads unpacked into one folder, the `--root`):

    RSVQA-LR                                 RSVQA-HR
    root/LR_split_train_images.json          root/USGS_split_train_images.json
    root/LR_split_train_questions.json       root/USGS_split_train_questions.json
    root/LR_split_train_answers.json         root/USGS_split_train_answers.json
    root/LR_split_{val,test}_*.json          root/USGS_split_{val,test,test_phili}_*.json
    root/Images_LR/<id>.tif  (256x256)       root/Data/<id>.tif  (512x512)

The image folder is the first of `Images_LR/`, `Data/`, `Images/` present (the LR and HR downloads
name it differently); an image is `<id>.tif`, or the same stem with another image suffix. Splits
are read in the order train, val, test, then the others (HR's `test_phili`) by name; a split is
every `<prefix>_split_<name>_questions.json` or its siblings.

Each file is a wrapper object around one list, `{"images": [...]}`, `{"questions": [...]}`,
`{"answers": [...]}`, with rows
    image    {"id", "original_name", "sensor", "questions_ids", "active", ...}
    question {"id", "img_id", "type", "question", "answers_ids", "active", ...}
    answer   {"id", "question_id", "answer", "active"}
Question types are "presence", "count", "comp", "rural_urban" (LR) and "area" (HR; answers like
"1234m2"); QA.kind is the type as written. Verified against the official code (syvlo/RSVQA):
`AutomaticDB/Splits.py` writes every split file with ALL image ids, the other splits' rows being
placeholders `{"id": i, "active": false}` (and the same gaps in the question and answer lists);
`AutomaticDB/DatabaseIO.py` writes the keys above (`question_id` in answers, although
DataSpecification.md spells it `quesiton_id`); `VQA_model/VQALoader.py` keeps active images, reads
`<imgFolder>/<id>.tif` and takes the answer `answers_ids[0]`. Not verified on real files: the folder
names of the downloads (`Images_LR`, `Data`), taken from the dataset page.

Rows are looked up by their `id`, never by list position (they coincide in the official files).
Inactive rows are dropped and counted in one warning per file; a row without `active` counts as
active. One Sample per active image with its active questions in question-file order; an image
without questions is kept with `qa=()`. Bad data never raises: an unreadable file or a wrapper of the
wrong shape skips its split; a malformed row, a duplicate id (the later row), a question without
text, pointing at an image that is not an active image of the split or without an active answer, an
answer pointing at a question that is not an active one, and an image whose file is missing are
skipped with an Issue.

`gsd` is the nominal ground sampling distance of the product, per class: 10 m for LR (Sentinel-2
RGB bands) and 0.15 m for HR (USGS orthophotos), as the paper states.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from rsgpt4v.core.card_facts import CardFacts, License
from rsgpt4v.core.issue_codes import IssueCode
from rsgpt4v.core.schema import QA, Defect, Issue, Sample
from rsgpt4v.sources.base import Source, SourceError, find_image, finite_answer, read_json, split_key

_KINDS = ("images", "questions", "answers")
IMAGE_FOLDERS = ("Images_LR", "Data", "Images")


@dataclass(frozen=True)
class _Table:
    """The active rows of one split file by id, with their position in the list."""

    rows: dict[int, tuple[int, dict]]
    issues: tuple[Issue, ...]


class _RSVQA(Source):
    """Both resolutions: they differ only in file prefix and gsd."""

    prefix: ClassVar[str]
    gsd: ClassVar[float]
    vocabulary = ()
    task_kind = "vqa"
    tiled = False
    exhaustive_labels = False
    label_tasks: frozenset[str] = frozenset()

    def __init__(self, root: Path, split: str | None = None) -> None:
        super().__init__(root, split)
        found = self._find_splits()
        if not found:
            raise SourceError(
                f"{self.root} does not look like {self.name.upper()}: expected "
                f"{self.prefix}_split_{{train,val,test}}_{{images,questions,answers}}.json in it"
            )
        images_dir = next((self.root / d for d in IMAGE_FOLDERS if (self.root / d).is_dir()), None)
        if images_dir is None:
            raise SourceError(f"{self.root} has the {self.prefix}_split_*.json files but no image folder "
                              f"(looked for {', '.join(d + '/' for d in IMAGE_FOLDERS)})")
        self.images_dir: Path = images_dir
        self.splits = self.select_split(found, lambda name: name)

    def _find_splits(self) -> list[str]:
        head = f"{self.prefix}_split_"
        names = set()
        for kind in _KINDS:
            tail = f"_{kind}.json"
            for p in self.root.glob(f"{head}*{tail}"):
                if p.is_file() and len(p.name) > len(head) + len(tail):
                    names.add(p.name[len(head):-len(tail)])
        return sorted(names, key=split_key)

    def _file(self, split: str, kind: str) -> Path:
        return self.root / f"{self.prefix}_split_{split}_{kind}.json"

    def __iter__(self) -> Iterator[Sample | Issue]:
        for split in self.splits:
            yield from self._iter_split(split)

    def _iter_split(self, split: str) -> Iterator[Sample | Issue]:
        tables: dict[str, _Table] = {}
        for kind in _KINDS:
            path = self._file(split, kind)
            name = self.relative(path)
            if not path.is_file():
                yield Issue(kind="skip", code=IssueCode.ANNOTATION_MISSING, file=name,
                            reason=f"file missing; split {split!r} skipped")
                return
            data, problem = read_json(path, name)
            if problem:
                yield problem
                return
            if not isinstance(data, dict) or not isinstance(data.get(kind), list):
                yield Issue(kind="skip", code=IssueCode.FILE_WRONG_STRUCTURE, file=name,
                            reason=f'expected an object {{"{kind}": [...]}}; split {split!r} skipped')
                return
            tables[kind] = _index(data[kind], kind, name)
            yield from tables[kind].issues
        images, questions, answers = tables["images"], tables["questions"], tables["answers"]
        names = {kind: self.relative(self._file(split, kind)) for kind in _KINDS}
        yield from self._orphan_answers(answers, questions, names)
        qa: dict[int, list[QA]] = {img_id: [] for img_id in images.rows}
        for qid, (pos, row) in questions.rows.items():
            item = _question(row, images, answers, names)
            if isinstance(item, Defect):
                yield item.issue("skip", names["questions"], where=f"questions[{pos}] (id {qid})")
            else:
                qa[row["img_id"]].append(item)
        for img_id, (pos, row) in images.rows.items():
            yield self._sample(split, img_id, pos, row, tuple(qa[img_id]), names)

    def _orphan_answers(self, answers: _Table, questions: _Table, names: dict[str, str]) -> Iterator[Issue]:
        for aid, (pos, row) in answers.rows.items():
            qid = row.get("question_id")
            if qid is not None and not (_is_id(qid) and qid in questions.rows):
                yield Issue(kind="skip", code=IssueCode.BROKEN_REFERENCE, file=names["answers"],
                            reason=f"answers[{pos}] (id {aid}): question_id {qid!r} is not an active question "
                                   f"of {names['questions']}")

    def _sample(self, split: str, img_id: int, pos: int, row: dict, qa: tuple[QA, ...],
                names: dict[str, str]) -> Sample | Issue:
        image = find_image(self.images_dir, f"{img_id}.tif")
        if image is None:
            expected = self.relative(self.images_dir / f"{img_id}.tif")
            return Issue(kind="skip", code=IssueCode.IMAGE_MISSING, file=names["images"],
                         reason=f"images[{pos}] (id {img_id}): image file not found (expected {expected}); "
                                f"its {len(qa)} questions skipped")
        provenance: dict[str, str | int] = {"images_file": names["images"], "questions_file": names["questions"],
                                            "id": img_id}
        for key in ("original_name", "sensor"):
            if isinstance(row.get(key), str):
                provenance[key] = row[key]
        return Sample(source=self.name, split=split, image_id=str(img_id), image_path=image.resolve(),
                      rel_image=self.relative(image), qa=qa, gsd=self.gsd, provenance=provenance)


def _index(rows: list, kind: str, name: str) -> _Table:
    """Active rows by id; inactive ones are only counted, since the placeholders carry nothing but id."""
    found: dict[int, tuple[int, dict]] = {}
    issues: list[Issue] = []
    inactive = 0
    for pos, row in enumerate(rows):
        where = f"{kind}[{pos}]"
        if not isinstance(row, dict):
            issues.append(Issue(kind="skip", code=IssueCode.MALFORMED_ENTRY, file=name,
                                reason=f"{where}: not an object"))
            continue
        if row.get("active", True) is False:
            inactive += 1
            continue
        rid = row.get("id")
        if not _is_id(rid):
            issues.append(Issue(kind="skip", code=IssueCode.MALFORMED_ENTRY, file=name,
                                reason=f"{where}: id {rid!r} is not a non-negative integer"))
        elif rid in found:
            issues.append(Issue(kind="skip", code=IssueCode.DUPLICATE_ID, file=name,
                                reason=f"{where} (id {rid}): duplicate id (first at {kind}[{found[rid][0]}])"))
        else:
            found[rid] = (pos, row)
    if inactive:
        issues.insert(0, Issue(kind="warning", code=IssueCode.INACTIVE_ENTRY, file=name,
                               reason=f"{inactive} inactive {kind} dropped"))
    return _Table(found, tuple(issues))


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _question(row: dict, images: _Table, answers: _Table, names: dict[str, str]) -> QA | Defect:
    """The QA of one active question row, or why it was skipped."""
    text = row.get("question")
    if not isinstance(text, str) or not text.strip():
        return Defect(IssueCode.EMPTY_TEXT, "no question text")
    img_id = row.get("img_id")
    if not (_is_id(img_id) and img_id in images.rows):
        return Defect(IssueCode.BROKEN_REFERENCE, f"img_id {img_id!r} is not an active image of {names['images']}")
    ids = row.get("answers_ids")
    if not isinstance(ids, list) or not ids:
        return Defect(IssueCode.MALFORMED_ENTRY, "no answers_ids")
    aid = ids[0]  # the official loader uses the first answer only; there is one per question
    if not (_is_id(aid) and aid in answers.rows):
        return Defect(IssueCode.BROKEN_REFERENCE, f"answer id {aid!r} is not an active answer of {names['answers']}")
    raw = answers.rows[aid][1].get("answer")
    answer = finite_answer(raw)
    if answer is None:
        return Defect(IssueCode.EMPTY_TEXT, f"answer id {aid} has no usable answer ({raw!r})")
    kind = row.get("type")
    return QA(question=text.strip(), answer=answer, kind=kind if isinstance(kind, str) else None)


def _card(title: str, record: str) -> CardFacts:
    return CardFacts(
        title=title, homepage="https://rsvqa.sylvainlobry.com",
        license=License(
            id="cc-by-4.0", name="CC BY 4.0", link=f"https://zenodo.org/records/{record}",
            stated_in=f"second-hand: several public repositories give the Zenodo record {record} as CC BY 4.0; the "
                      "record itself was not read (the code repository syvlo/RSVQA is GPL-3.0, which covers the code, "
                      "not the data)",
            second_hand=True),
        citation="""@article{Lobry_2020,
   title={RSVQA: Visual Question Answering for Remote Sensing Data},
   volume={58},
   ISSN={1558-0644},
   url={http://dx.doi.org/10.1109/TGRS.2020.2988782},
   DOI={10.1109/tgrs.2020.2988782},
   number={12},
   journal={IEEE Transactions on Geoscience and Remote Sensing},
   publisher={Institute of Electrical and Electronics Engineers (IEEE)},
   author={Lobry, Sylvain and Marcos, Diego and Murray, Jesse and Tuia, Devis},
   year={2020},
   month=dec, pages={8555-8566} }""",
        citation_from="the Crossref export of the paper the authors cite in the README of syvlo/RSVQA (as "
                      "google-research/big_vision uses it); the authors give the citation as text only",
    )


LR_CARD = _card("RSVQA-LR", "6344334")
HR_CARD = _card("RSVQA-HR", "6344367")


class RSVQALR(_RSVQA):
    name = "rsvqa-lr"
    description = "RSVQA-LR: Sentinel-2 tiles (10 m) with presence/count/comparison/rural-urban questions"
    split_rule = "LR_split_<name>_*.json -> <name> (train, val, test)"
    prefix = "LR"
    gsd = 10.0
    card = LR_CARD


class RSVQAHR(_RSVQA):
    name = "rsvqa-hr"
    description = "RSVQA-HR: USGS aerial tiles (0.15 m) with presence/count/comparison/area questions"
    split_rule = "USGS_split_<name>_*.json -> <name> (train, val, test, test_phili)"
    prefix = "USGS"
    gsd = 0.15
    card = HR_CARD
