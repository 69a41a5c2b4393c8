"""COCO-format detection annotations: any dataset exported as a COCO json plus an image folder.

References:
    T.-Y. Lin et al., "Microsoft COCO: Common Objects in Context", ECCV 2014.
    Format: https://cocodataset.org/#format-data (section "Object Detection")

Many remote-sensing detection sets are distributed as, or converted to, this format (DIOR, NWPU
VHR-10, xView and iSAID exports). On-disk layout assumed by default:

    root/annotations/instances_train2017.json    one json per split; only the instances_*.json
    root/annotations/instances_val2017.json      files when there are any (captions_* and
    root/train2017/000000000009.jpg              person_keypoints_* sit beside them in COCO
    root/val2017/...                             itself), else every *.json; json files in the
                                                 root itself when there is no annotations/ folder

A file's split is "trainval", "train", "val" or "test" when its name contains that word (checked in
that order: instances_train2017.json -> "train", image_info_test-dev2017.json -> "test"), else its
stem; files whose names give the same split keep their stems instead. An image's `file_name` is
looked for, in order, under root/<token>/ (the file stem without its "instances_" prefix, e.g.
train2017/), root/<split>/, root/images/<token>/, root/images/<split>/, root/images/ and the root;
the first folder holding it wins (another image suffix is accepted, as in find_image).

Options: `annotations` (a json file, or a folder of them, instead of the default probing) and
`images` (the one folder holding every `file_name`); relative paths are taken from the root. On the
command line: `-O annotations=annotations/train.json -O images=train_images`.

A file: `{"images": [{id, file_name, width, height}], "annotations": [{id, image_id, category_id,
bbox: [x, y, w, h], iscrowd}], "categories": [{id, name}]}`; ids need not be contiguous. Category
names are normalised to lower case and stripped. Samples come in `images` order; an image with no
annotation is a sample without objects; a file with no "annotations" key (COCO's image_info test
files) gives samples with annotated=False. Crowd annotations (iscrowd=1) are dropped and counted
in one warning per file: their box covers a group of objects, which would make counts and boxes
wrong. `vocabulary` is an instance attribute: the normalised category names of the files read so
far, in first-seen order, filled as each file is loaded (files are loaded one at a time while
iterating, since COCO jsons can be hundreds of MB).

Bad data never raises: an unreadable or invalid json (named with the line of a syntax error), a file
without an images list, invalid or duplicate entries in images/categories/annotations, an annotation
naming a missing image or category id, a `file_name` outside the image folder or not found, and a
malformed or zero-area bbox become Issues naming the entry, e.g. "annotations[12] (id 40): ...".
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rsgpt4v.core.card_facts import UNKNOWN, CardFacts, License
from rsgpt4v.core.issue_codes import IssueCode
from rsgpt4v.core.schema import Defect, Issue, Obj, Sample
from rsgpt4v.sources.base import (
    MIN_AREA,
    Source,
    SourceError,
    find_image,
    inside_root,
    read_json,
    split_key,
)

_SPLIT_WORDS = ("trainval", "train", "val", "test")


@dataclass(frozen=True)
class _File:
    path: Path
    split: str
    folders: tuple[Path, ...]


@dataclass
class _Parsed:
    """What one json file yields, before its samples are made."""

    categories: dict[object, str] = field(default_factory=dict)
    objects: dict[object, list[Obj]] = field(default_factory=lambda: defaultdict(list))
    issues: list[Issue] = field(default_factory=list)
    crowd: int = 0


def split_of(stem: str) -> str:
    """The split a file name stands for: instances_val2017 -> val; an unknown name stays as is."""
    lowered = stem.lower()
    return next((word for word in _SPLIT_WORDS if word in lowered), stem)


def _key(value: object) -> object | None:
    """An id usable as a dict key: int or non-empty str (bool and float ids are corrupt)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) or (isinstance(value, str) and value):
        return value
    return None


def _unique(base: str, used: set[str], alternative: str) -> str:
    """`base`, else `alternative`, else `alternative_2`, ...; recorded in `used`."""
    name, n = base, 1
    if name in used:
        name = alternative
    while name in used:
        n += 1
        name = f"{alternative}_{n}"
    used.add(name)
    return name


# The adapter reads any dataset in COCO format: its facts are that dataset's, which only the user knows.
CARD = CardFacts(
    title="COCO-format dataset",
    homepage="",
    license=License(id=UNKNOWN, name=UNKNOWN,
                    stated_in="the coco adapter reads any dataset exported in COCO format: its licence is the one its "
                              "authors state, which whoever publishes the export must find and give"),
    citation="",
    citation_from="the coco adapter reads any dataset in COCO format: cite the dataset that was converted",
)


class COCO(Source):
    name = "coco"
    description = "Any COCO-format detection json (horizontal boxes) with its image folder"
    split_rule = ("annotations/instances_<name>.json -> train, val, test or trainval when <name> holds that word, "
                  "else <name>")
    task_kind = "detection"
    card = CARD
    options_help = {
        "annotations": "the instances json to read, relative to the root or absolute (default: every "
                       "annotations/instances_*.json, one split each)",
        "images": "the folder holding the images the json names (default: a folder named after the split)",
    }

    def __init__(self, root: Path, split: str | None = None, annotations: Path | None = None,
                 images: Path | None = None) -> None:
        super().__init__(root, split)
        self.vocabulary = ()  # per instance: the categories of the files read so far
        self.images = self._resolve(images) if images is not None else None
        if self.images is not None and not self.images.is_dir():
            raise SourceError(f"images={images} is not a folder")
        self.files = self._find_files(annotations)

    def _resolve(self, path: Path) -> Path:
        path = Path(path)
        return path if path.is_absolute() else self.root / path

    def _find_files(self, annotations: Path | None) -> list[_File]:
        if annotations is not None:
            given = self._resolve(annotations)
            if not given.exists():
                raise SourceError(f"annotations={annotations} does not exist")
            paths = [given] if given.is_file() else sorted(given.glob("*.json"))
        else:
            folder = self.root / "annotations"
            paths = sorted((folder if folder.is_dir() else self.root).glob("*.json"))
            instances = [p for p in paths if p.name.startswith("instances_")]
            paths = instances or paths
        if not paths:
            raise SourceError(f"{self.root} holds no COCO json: expected annotations/instances_<split>.json "
                              "(or *.json in annotations/ or in the root)")
        names = [split_of(p.stem) for p in paths]
        files = [_File(p, name if names.count(name) == 1 else p.stem, self._folders(p, name))
                 for p, name in zip(paths, names)]
        files.sort(key=lambda f: split_key(f.split))
        return self.select_split(files, lambda f: f.split)

    def _folders(self, path: Path, split: str) -> tuple[Path, ...]:
        if self.images is not None:
            return (self.images,)
        token = path.stem.removeprefix("instances_")
        candidates = (self.root / token, self.root / split, self.root / "images" / token,
                      self.root / "images" / split, self.root / "images", self.root)
        return tuple(dict.fromkeys(c for c in candidates if c.is_dir()))

    def __iter__(self) -> Iterator[Sample | Issue]:
        for f in self.files:
            yield from self._iter_file(f)

    def _iter_file(self, f: _File) -> Iterator[Sample | Issue]:
        rel = self.relative(f.path)
        data, problem = read_json(f.path, rel)
        if problem:
            yield problem
            return
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            yield Issue(kind="skip", code=IssueCode.FILE_WRONG_STRUCTURE, file=rel,
                        reason="not a COCO annotation file: no \"images\" list")
            return
        annotated = "annotations" in data
        parsed = _Parsed()
        self._categories(data.get("categories"), rel, parsed)
        image_ids = {key for entry in data["images"]
                     if isinstance(entry, dict) and (key := _key(entry.get("id"))) is not None}
        if annotated:
            self._annotations(data["annotations"], rel, image_ids, parsed)
        self.vocabulary = tuple(dict.fromkeys((*self.vocabulary, *parsed.categories.values())))
        yield from parsed.issues
        if parsed.crowd:
            yield Issue(kind="warning", code=IssueCode.CROWD_ANNOTATION, file=rel,
                        reason=f"{parsed.crowd} crowd annotations (iscrowd=1) dropped")
        yield from self._images(f, rel, data["images"], parsed, annotated)

    def _categories(self, entries: object, rel: str, parsed: _Parsed) -> None:
        if not isinstance(entries, list):
            parsed.issues.append(Issue(kind="warning", code=IssueCode.FILE_WRONG_STRUCTURE, file=rel,
                                       reason="no \"categories\" list"))
            return
        for i, entry in enumerate(entries):
            key = _key(entry.get("id")) if isinstance(entry, dict) else None
            name = entry.get("name") if isinstance(entry, dict) else None
            if key is None or not isinstance(name, str) or not name.strip():
                parsed.issues.append(Issue(kind="skip", code=IssueCode.MALFORMED_ENTRY, file=rel,
                                           reason=f"categories[{i}]: needs an int or str id and a name"))
            elif key in parsed.categories:
                parsed.issues.append(Issue(kind="skip", code=IssueCode.DUPLICATE_ID, file=rel,
                                           reason=f"categories[{i}]: duplicate category id {key!r}"))
            else:
                parsed.categories[key] = name.strip().lower()

    def _annotations(self, entries: object, rel: str, image_ids: set[object], parsed: _Parsed) -> None:
        if not isinstance(entries, list):
            parsed.issues.append(Issue(kind="skip", code=IssueCode.FILE_WRONG_STRUCTURE, file=rel,
                                       reason="\"annotations\" is not a list"))
            return
        seen: set[object] = set()
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                parsed.issues.append(Issue(kind="skip", code=IssueCode.MALFORMED_ENTRY, file=rel,
                                           reason=f"annotations[{i}]: not an object"))
                continue
            ann_id = _key(entry.get("id"))
            where = f"annotations[{i}]" + (f" (id {ann_id!r})" if ann_id is not None else "")
            if ann_id is not None and ann_id in seen:
                parsed.issues.append(Issue(kind="skip", code=IssueCode.DUPLICATE_ID, file=rel,
                                           reason=f"{where}: duplicate annotation id"))
                continue
            seen.add(ann_id)
            if entry.get("iscrowd"):
                parsed.crowd += 1
                continue
            obj = self._object(entry, image_ids, parsed.categories)
            if isinstance(obj, Defect):
                parsed.issues.append(obj.issue("skip", rel, where=where))
            else:
                parsed.objects[_key(entry["image_id"])].append(obj)

    @staticmethod
    def _object(entry: dict, image_ids: set[object], categories: dict[object, str]) -> Obj | Defect:
        image_id, category_id = _key(entry.get("image_id")), _key(entry.get("category_id"))
        if image_id is None or image_id not in image_ids:
            return Defect(IssueCode.BROKEN_REFERENCE, f"image_id {entry.get('image_id')!r} is not in images")
        if category_id is None or category_id not in categories:
            return Defect(IssueCode.BROKEN_REFERENCE, f"category_id {entry.get('category_id')!r} is not in categories")
        bbox = entry.get("bbox")
        if (not isinstance(bbox, list) or len(bbox) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbox)):
            return Defect(IssueCode.MALFORMED_ENTRY, f"malformed bbox {bbox!r}: expected [x, y, width, height]")
        x, y, w, h = (float(v) for v in bbox)
        if w <= 0 or h <= 0 or w * h < MIN_AREA:
            return Defect(IssueCode.DEGENERATE_BOX, f"degenerate bbox {bbox!r} (width {w:g}, height {h:g})")
        polygon = ((x, y), (x + w, y), (x + w, y + h), (x, y + h))
        return Obj(category=categories[category_id], polygon=polygon, box=(x, y, x + w, y + h))

    def _images(self, f: _File, rel: str, entries: list, parsed: _Parsed, annotated: bool) -> Iterator[Sample | Issue]:
        seen: set[object] = set()
        used: set[str] = set()
        for i, entry in enumerate(entries):
            key = _key(entry.get("id")) if isinstance(entry, dict) else None
            file_name = entry.get("file_name") if isinstance(entry, dict) else None
            where = f"images[{i}]" + (f" (file_name {file_name!r})" if isinstance(file_name, str) else "")
            if key is None or not isinstance(file_name, str) or not file_name.strip():
                yield Issue(kind="skip", code=IssueCode.MALFORMED_ENTRY, file=rel,
                            reason=f"{where}: needs an int or str id and a file_name")
                continue
            if key in seen:
                yield Issue(kind="skip", code=IssueCode.DUPLICATE_ID, file=rel,
                            reason=f"{where}: duplicate image id {key!r}")
                continue
            seen.add(key)
            image = self._find(f, file_name)
            if isinstance(image, Defect):
                yield image.issue("skip", rel, where=where)
                continue
            image_id = _unique(image.stem, used, f"{image.stem}_{key}")
            yield Sample(source=self.name, split=f.split, image_id=image_id, image_path=image.resolve(),
                         rel_image=self.relative(image), objects=tuple(parsed.objects.get(key, ())),
                         annotated=annotated, provenance={"label_file": rel, "coco_image_id": key})

    def _find(self, f: _File, file_name: str) -> Path | Defect:
        """The image file, or why there is none."""
        for folder in f.folders:
            target = inside_root(folder, file_name)
            if target is None:
                return Defect(IssueCode.PATH_OUTSIDE_FOLDER, "file_name climbs out of the image folder")
            if image := find_image(target.parent, target.name):
                return image
        looked = ", ".join(f"{self.relative(d) if d != self.root else '.'}/" for d in f.folders)
        return Defect(IssueCode.IMAGE_MISSING, f"image file not found (looked in {looked})")
