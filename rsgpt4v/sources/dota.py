"""DOTA: oriented object detection in aerial images, read from its devkit's native labelTxt layout.

References:
    G.-S. Xia et al., "DOTA: A Large-scale Dataset for Object Detection in Aerial Images", CVPR 2018.
    J. Ding et al., "Object Detection in Aerial Images: A Large-Scale Benchmark and Challenges",
    IEEE TPAMI 2021 (DOTA v2.0).
    Devkit and label format: https://github.com/CAPTAIN-WHU/DOTA_devkit
    Homepage, licence and citation as the authors state them: `CARD` below.

On-disk layout assumed (one of):

    root/images/P0000.png          a single split: named after the root folder when that is
    root/labelTxt/P0000.txt        train, val or test, else "train"

    root/train/images/, root/train/labelTxt/
    root/val/images/,   root/val/labelTxt/
    root/test/images/              test images have no labels; any other folder holding
                                   images/ or labels is a split too, read after these three
                                   (a name starting with "test" counts as unlabelled)

A root holding images/ or labels itself is read as the single-split layout.

Instead of `labelTxt/`, a split may hold the official download's nesting `labelTxt-v1.0/`,
`labelTxt-v1.5/` or `labelTxt-v2.0/`; inside it the labels are read from `labelTxt/` if present,
else from the folder itself if it holds .txt files, else from its first subfolder (by name) that
holds .txt files and is not an `*hbb*` (horizontal box) folder. With version="auto" the newest
version folder present wins. Images are `<stem>.png` (also .jpg/.jpeg/.tif/.tiff/.bmp, any case).

A label file: optional `key:value` header lines (`imagesource:GoogleEarth`, `gsd:0.146`,
`gsd:null`, ...), then one object per line, `x1 y1 x2 y2 x3 y3 x4 y4 category difficult`, the
vertices clockwise from the object's head; ints in v1.0, floats in v1.5/v2.0; 9 fields means
difficult 0. UTF-8 (with or without BOM, latin-1 fallback), CRLF or LF.

Bad data never raises: a label file without image, an image without label file (outside test
splits), an unreadable file and a malformed or zero-area object line are skipped with an Issue; an
unknown category is kept with one warning per run; a gsd outside 0.01-100 m/px is kept in the
provenance only, and it and `gsd:null` (no gsd known) are one warning per label file. Polygons are not clipped to the image here: the adapter never opens images.
Images without labels (test splits) become samples with `annotated=False`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rsgpt4v.core.card_facts import CardFacts, License
from rsgpt4v.core.issue_codes import IssueCode
from rsgpt4v.core.schema import Defect, Issue, Obj, Sample
from rsgpt4v.imaging.geometry import bounding_box
from rsgpt4v.sources.base import (
    IMAGE_SUFFIXES,
    SPLIT_ORDER,
    Source,
    SourceError,
    UnknownCategories,
    checked_polygon,
    difficulty,
    split_key,
    visible_files,
)

_V10 = (
    "plane", "baseball-diamond", "bridge", "ground-track-field", "small-vehicle", "large-vehicle",
    "ship", "tennis-court", "basketball-court", "storage-tank", "soccer-ball-field", "roundabout",
    "harbor", "swimming-pool", "helicopter",
)
_V15 = (*_V10, "container-crane")
_V20 = (*_V15, "airport", "helipad")
VOCABULARIES = {"1.0": _V10, "1.5": _V15, "2.0": _V20}
VERSIONS = ("auto", *VOCABULARIES)

# The site's three BibTeX blocks, verbatim (Ding_2019_CVPR separates its authors with commas, as there).
_CITATION = """@ARTICLE{9560031,
  author={Ding, Jian and Xue, Nan and Xia, Gui-Song and Bai, Xiang and Yang, Wen and Yang, Michael and Belongie, Serge and Luo, Jiebo and Datcu, Mihai and Pelillo, Marcello and Zhang, Liangpei},
  journal={IEEE Transactions on Pattern Analysis and Machine Intelligence},
  title={Object Detection in Aerial Images: A Large-Scale Benchmark and Challenges},
  year={2021},
  volume={},
  number={},
  pages={1-1},
  doi={10.1109/TPAMI.2021.3117983}}

@InProceedings{Xia_2018_CVPR,
author = {Xia, Gui-Song and Bai, Xiang and Ding, Jian and Zhu, Zhen and Belongie, Serge and Luo, Jiebo and Datcu, Mihai and Pelillo, Marcello and Zhang, Liangpei},
title = {DOTA: A Large-Scale Dataset for Object Detection in Aerial Images},
booktitle = {The IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
month = {June},
year = {2018}
}

@InProceedings{Ding_2019_CVPR,
author = {Jian Ding, Nan Xue, Yang Long, Gui-Song Xia, Qikai Lu},
title = {Learning RoI Transformer for Detecting Oriented Objects in Aerial Images},
booktitle = {The IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
month = {June},
year = {2019}
}"""

CARD = CardFacts(
    title="DOTA",
    homepage="https://captain-whu.github.io/DOTA/",
    license=License(
        id="other", name="DOTA terms: academic use only", link="https://captain-whu.github.io/DOTA/dataset.html",
        stated_in='https://captain-whu.github.io/DOTA/dataset.html: "All images and their associated annotations in '
                  'DOTA can be used for academic purposes only, but any commercial use is prohibited."'),
    citation=_CITATION,
    citation_from='verbatim from https://captain-whu.github.io/DOTA/ ("If you make use of the DOTA dataset, please '
                  'cite our following paper")',
    version="v1.0, v1.5 or v2.0 (-O version=)",
    images='many are Google Earth images: "Use of the Google Earth images must respect the Google Earth terms of use" '
           "(https://www.google.com/permissions/geoguidelines.html), the DOTA page says",
)

_HEADER = re.compile(r"([A-Za-z][A-Za-z0-9 _-]*):(.*)")
_GSD_RANGE = (0.01, 100.0)  # metres per pixel; anything outside is a unit or export error


@dataclass(frozen=True)
class LabelFile:
    """What one labelTxt file says: its objects, its header lines and the problems found in it."""

    objects: tuple[Obj, ...]
    header: dict[str, str]
    gsd: float | None
    issues: tuple[Issue, ...]


def _categories_in(path: Path) -> set[str]:
    """The category names a label file uses (the 9th field of its object lines); unreadable files
    name none here and are reported when they are parsed."""
    try:
        text = path.read_bytes().decode("latin-1")
    except OSError:
        return set()
    return {fields[8] for line in text.splitlines() if len(fields := line.split()) >= 9}


def parse_label_file(path: Path, name: str | None = None) -> LabelFile:
    """Parse one DOTA labelTxt file; `name` is how issues refer to it (default: the path).

    Bad lines become issues. Raises OSError if the file cannot be read and ValueError if it is not
    text at all.
    """
    name = name or Path(path).as_posix()
    data = Path(path).read_bytes()
    if b"\x00" in data:
        raise ValueError("binary content, not a text file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")

    objects: list[Obj] = []
    header: dict[str, str] = {}
    issues: list[Issue] = []
    gsd: float | None = None
    for lineno, raw in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), start=1):
        line = raw.strip()
        if not line:
            continue
        if m := _HEADER.fullmatch(line):
            key, value = m.group(1).strip().lower().replace(" ", "_"), m.group(2).strip()
            header[key] = value
            if key == "gsd":
                gsd, problem = _parse_gsd(value)
                if problem:
                    issues.append(Issue(kind="warning", code=problem[0], file=name, line=lineno, reason=problem[1]))
            continue
        obj = _parse_object(line, lineno)
        if isinstance(obj, Defect):
            issues.append(obj.issue("skip", name, lineno))
        else:
            objects.append(obj)
    return LabelFile(tuple(objects), header, gsd, tuple(issues))


def _parse_gsd(value: str) -> tuple[float | None, tuple[IssueCode, str] | None]:
    """The gsd as metres per pixel, or None with the code and reason of a warning when it is unknown
    (`gsd:null`) or unusable."""
    if value.lower() in ("", "null", "none"):
        return None, (IssueCode.GSD_UNKNOWN, f"gsd {value!r}: the ground sample distance is unknown; the prompts "
                                             "give sizes in pixels only")
    try:
        gsd = float(value)
    except ValueError:
        return None, (IssueCode.BAD_GSD, f"gsd {value!r} is not a number; ignored")
    if not _GSD_RANGE[0] <= gsd <= _GSD_RANGE[1]:  # also false for NaN
        return None, (IssueCode.BAD_GSD, f"gsd {value} is not a plausible metres-per-pixel value; ignored")
    return gsd, None


def _parse_object(line: str, lineno: int) -> Obj | Defect:
    """The object on one line, or why the line was skipped."""
    tokens = line.split()
    if len(tokens) not in (9, 10):
        return _malformed(f"expected 8 coordinates, category, difficult; got {len(tokens)} fields")
    coords: list[float] = []
    for tok in tokens[:8]:
        try:
            v = float(tok)
        except ValueError:
            return _malformed(f"coordinate {tok!r} is not a number")
        if not math.isfinite(v):
            return _malformed(f"coordinate {tok!r} is not finite")
        coords.append(v)
    difficult = difficulty(tokens[9] if len(tokens) == 10 else None)
    if isinstance(difficult, Defect):
        return _malformed(difficult.detail)
    polygon = checked_polygon(tuple(zip(coords[0::2], coords[1::2])), shape="polygon")
    if isinstance(polygon, Defect):
        return polygon
    return Obj(category=tokens[8].lower(), polygon=polygon, box=bounding_box(polygon),
               difficult=difficult, line=lineno)


def _malformed(detail: str) -> Defect:
    return Defect(IssueCode.MALFORMED_ENTRY, f"malformed object line: {detail}")


@dataclass(frozen=True)
class _Split:
    name: str
    images: Path
    labels: Path | None


class DOTA(Source):
    """DOTA's category list depends on its version: v1.0 has 15 classes, v1.5 adds container-crane,
    v2.0 adds airport and helipad. Counting and presence questions ask only about the version's own
    classes, so v1.0 data is never asked about airports it cannot label. With version="auto" the
    version is the one a `labelTxt-vX` folder names, else the smallest whose classes hold every
    category the label files use (read once, before the first sample)."""

    name = "dota"
    description = "DOTA v1.0/v1.5/v2.0 oriented boxes in aerial images (labelTxt layout)"
    split_rule = ("train/ -> train, val/ -> val, test/ -> test (unlabelled); a root holding images/ itself is one "
                  "split named after the folder")
    task_kind = "detection"
    options_help = {"version": "1.0, 1.5 or 2.0: which labelTxt-vX folder to read and which category list to "
                               "ask about; auto takes the folder's version, else the smallest that holds every label"}

    card = CARD

    def __init__(self, root: Path, split: str | None = None, version: str = "auto") -> None:
        super().__init__(root, split)
        if version not in VERSIONS:
            raise SourceError(f"unknown DOTA version {version!r}; choose from {', '.join(VERSIONS)}")
        self.version = version
        self._folder_versions: set[str] = set()
        self.splits = self._find_splits()
        self.resolved_version = self._resolved_version()
        self.vocabulary = VOCABULARIES[self.resolved_version]

    def card_facts(self) -> CardFacts:
        return CARD.model_copy(update={"version": f"v{self.resolved_version}"})

    def _resolved_version(self) -> str:
        if self.version != "auto":
            return self.version
        if self._folder_versions:
            return max(self._folder_versions)
        used: set[str] = set()
        for split in self.splits:
            for label in visible_files(split.labels, (".txt",)) if split.labels else ():
                used |= _categories_in(label)
        return next((v for v, names in VOCABULARIES.items() if used <= set(names)), "2.0")

    def _find_splits(self) -> list[_Split]:
        single = self._split_at(self.root, self.root.name if self.root.name in SPLIT_ORDER else "train")
        if single:
            splits = [single]
        else:
            dirs = sorted((d for d in self.root.iterdir() if d.is_dir()), key=lambda d: split_key(d.name))
            splits = [s for d in dirs if (s := self._split_at(d, d.name))]
        if not splits:
            raise SourceError(
                f"{self.root} does not look like DOTA: expected images/ and labelTxt/ (or labelTxt-v1.0/...) "
                "in it, or in split folders train/, val/, test/"
            )
        return self.select_split(splits, lambda s: s.name)

    def _split_at(self, folder: Path, name: str) -> _Split | None:
        labels = self._labels_dir(folder)
        images = folder / "images"
        if labels is None and not images.is_dir():
            return None
        return _Split(name, images, labels)

    def _labels_dir(self, folder: Path) -> Path | None:
        if (folder / "labelTxt").is_dir():
            return folder / "labelTxt"
        versions = ("2.0", "1.5", "1.0") if self.version == "auto" else (self.version,)
        for v in versions:
            top = folder / f"labelTxt-v{v}"
            if not top.is_dir():
                continue
            subs = sorted(d for d in top.iterdir() if d.is_dir() and "hbb" not in d.name.lower())
            for cand in (top / "labelTxt", top, *subs):
                if cand.is_dir() and any(visible_files(cand, (".txt",))):
                    self._folder_versions.add(v)
                    return cand
        return None

    def __iter__(self) -> Iterator[Sample | Issue]:
        unknown = UnknownCategories(self.vocabulary)
        for split in self.splits:
            yield from self._iter_split(split, unknown)

    def _iter_split(self, split: _Split, unknown: UnknownCategories) -> Iterator[Sample | Issue]:
        labels = {p.stem: p for p in visible_files(split.labels, (".txt",))} if split.labels else {}
        images: dict[str, Path] = {}
        shadowed: list[Issue] = []
        if split.images.is_dir():
            # a stem may exist with several extensions; the earlier suffix in IMAGE_SUFFIXES wins, said
            for p in sorted(visible_files(split.images, IMAGE_SUFFIXES),
                            key=lambda p: (IMAGE_SUFFIXES.index(p.suffix.lower()), p.name)):
                kept = images.setdefault(p.stem, p)
                if kept is not p:
                    shadowed.append(Issue(kind="warning", code=IssueCode.DUPLICATE_IMAGE, file=self.relative(p),
                                          reason=f"another image has the same name: {kept.name} is used, this one "
                                                 "ignored"))
        yield from shadowed
        unlabelled_ok = split.name.startswith("test")  # test-dev, test-challenge too
        for stem in sorted(labels.keys() | images.keys()):
            label, image = labels.get(stem), images.get(stem)
            if image is None:
                where = self.relative(split.images / stem)
                yield Issue(kind="skip", code=IssueCode.IMAGE_MISSING, file=self.relative(label),
                            reason=f"no image for label file (looked for {where}.png, .jpg, .tif, .bmp)")
            elif label is None and unlabelled_ok:
                yield self._sample(split, image, (), None, {}, annotated=False)
            elif label is None:
                where = self.relative(split.labels or split.images.parent / "labelTxt")
                yield Issue(kind="skip", code=IssueCode.ANNOTATION_MISSING, file=self.relative(image),
                            reason=f"no label file for image (looked for {where}/{stem}.txt)")
            else:
                yield from self._labelled(split, image, label, unknown)

    def _labelled(self, split: _Split, image: Path, label: Path,
                  unknown: UnknownCategories) -> Iterator[Sample | Issue]:
        rel = self.relative(label)
        try:
            parsed = parse_label_file(label, rel)
        except (OSError, ValueError) as e:
            yield Issue(kind="skip", code=IssueCode.FILE_UNREADABLE, file=rel, reason=f"unreadable label file: {e}")
            return
        warnings = [w for obj in parsed.objects if (w := unknown.check(obj.category, rel, obj.line))]
        yield from sorted([*parsed.issues, *warnings], key=lambda i: i.line or 0)
        # Header lines are the file's own words: they never replace what this reader records (a
        # `label_file:` line would otherwise rename the file every issue points at).
        provenance = {**parsed.header, "label_file": rel}
        yield self._sample(split, image, parsed.objects, parsed.gsd, provenance)

    def _sample(self, split: _Split, image: Path, objects: tuple[Obj, ...], gsd: float | None,
                provenance: dict[str, str | int], annotated: bool = True) -> Sample:
        return Sample(source=self.name, split=split.name, image_id=image.stem, image_path=image.resolve(),
                      rel_image=self.relative(image), objects=objects, gsd=gsd, provenance=provenance,
                      annotated=annotated)
