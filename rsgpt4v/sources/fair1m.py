"""FAIR1M: fine-grained oriented object detection in Gaofen and Google Earth images (labelXmls layout).

References:
    X. Sun et al., "FAIR1M: A Benchmark Dataset for Fine-grained Object Recognition in
    High-Resolution Remote Sensing Imagery", ISPRS J. Photogramm. Remote Sens. 184, 2022.
    Benchmark page: https://www.gaofen-challenge.com/benchmark
    Homepage, licence and citation: `CARD` below (the licence is known only second-hand).

On-disk layout assumed (one of):

    root/train/part1/images/0.tif         a split folder holds parts (each images/ plus labels) or
    root/train/part1/labelXmls/0.xml      is itself one part; the parts of a split are read in name
    root/train/part2/images/, labelXmls/  order
    root/validation/images/, labelXmls/   split "val"
    root/test/images/                     no labels: samples with annotated=False (any split whose
                                          name starts with "test" may lack them)

    root/images/, root/labelXmls/         a single part: the split is named after the root folder
                                          when that is train, val, validation or test, else "train"

Labels are read from `labelXmls/` or `labelXml/`: torchgeo's FAIR1M loader and fake data show the
part1 archive (labelXml.zip) extracting to `labelXml/`, the part2 one named labelXmls.zip. Images are
read from `images/` and from sibling folders whose name starts with "images" (`images-1/`,
`images-2/`: a re-packaged copy splits part2's images in two archives; unverified). Images and
labels pair by stem; `.tif` expected, any suffix in IMAGE_SUFFIXES accepted. Stems are sorted
numerically. When a split has several parts the image id is "<part>_<stem>" (torchgeo's fake data
repeats stems across part1 and part2; whether the real download does is unverified), else the stem.

A label file (element tree verified against torchgeo's parser and test file and the gaofen challenge
result templates): `annotation/source/{filename,origin}`, then `annotation/objects/object` with
`coordinate` ("pixel"), `type`, `description`, `possibleresult/name` (one of 37 fine classes written
with spaces and mixed case, "Small Car", "Boeing737", "other-ship"; normalised to lower case, spaces
kept: 'small car') and `points/point` texts "x,y" (floats, 5 points, the last repeating the first:
the closing duplicate is dropped). Class list: torchgeo's FAIR1M.classes. An object whose coordinate
is not "pixel" is skipped: geographic coordinates cannot be placed in the image here. The source
origin ("GF2/GF3") goes to the provenance; gsd (0.3-0.8 m) is not given per image: gsd is None.

Bad data never raises: unreadable or invalid XML (with the line of the syntax error), a label file
without image, an image without label outside test splits, and objects with a missing name or
malformed, too few or degenerate points become Issues; an unknown category is kept with one warning
per run.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rsgpt4v.core.card_facts import CardFacts, License
from rsgpt4v.core.issue_codes import IssueCode
from rsgpt4v.core.schema import Defect, Issue, Obj, Point, Sample
from rsgpt4v.imaging.geometry import bounding_box
from rsgpt4v.sources.base import (
    IMAGE_SUFFIXES,
    SPLIT_ORDER,
    Source,
    SourceError,
    UnknownCategories,
    checked_polygon,
    parse_objects,
    read_xml,
    split_key,
    visible_files,
)

FAIR1M_CLASSES = tuple(name.lower() for name in (
    "Passenger Ship", "Motorboat", "Fishing Boat", "Tugboat", "other-ship", "Engineering Ship",
    "Liquid Cargo Ship", "Dry Cargo Ship", "Warship",
    "Small Car", "Bus", "Cargo Truck", "Dump Truck", "other-vehicle", "Van", "Trailer", "Tractor",
    "Excavator", "Truck Tractor",
    "Boeing737", "Boeing747", "Boeing777", "Boeing787", "ARJ21", "C919", "A220", "A321", "A330", "A350",
    "other-airplane",
    "Baseball Field", "Basketball Court", "Football Field", "Tennis Court",
    "Roundabout", "Intersection", "Bridge",
))

_SPLIT_NAMES = {"validation": "val"}
_LABEL_DIRS = ("labelXmls", "labelXml")


@dataclass(frozen=True)
class _Part:
    folder: Path
    images: tuple[Path, ...]
    labels: Path | None


@dataclass(frozen=True)
class _Split:
    name: str
    parts: tuple[_Part, ...]


def parse_object(element: ET.Element) -> Obj | Defect:
    """One `<object>` of a FAIR1M label file, or why it was skipped."""
    coordinate = (element.findtext("coordinate") or "pixel").strip().lower()
    if coordinate != "pixel":
        return Defect(IssueCode.BAD_COORDINATES, f"coordinates are {coordinate!r}, not pixels")
    name = (element.findtext("possibleresult/name") or "").strip()
    if not name:
        return Defect(IssueCode.MALFORMED_ENTRY, "no <possibleresult><name>")
    points: list[Point] = []
    for p in element.findall("points/point"):
        point = _point(p.text or "")
        if isinstance(point, str):
            return Defect(IssueCode.MALFORMED_ENTRY, point)
        points.append(point)
    if len(points) > 1 and points[0] == points[-1]:
        points.pop()
    if len(points) < 3:
        return Defect(IssueCode.DEGENERATE_BOX, f"{len(points)} distinct points; a polygon needs at least 3")
    polygon = checked_polygon(tuple(points))
    if isinstance(polygon, Defect):
        return polygon
    return Obj(category=name.lower(), polygon=polygon, box=bounding_box(polygon))


def _point(text: str) -> Point | str:
    fields = text.split(",")
    if len(fields) != 2:
        return f"malformed point {text.strip()!r}: expected 'x,y'"
    try:
        x, y = float(fields[0]), float(fields[1])
    except ValueError:
        return f"malformed point {text.strip()!r}: not numbers"
    if not (math.isfinite(x) and math.isfinite(y)):
        return f"malformed point {text.strip()!r}: not finite"
    return (x, y)


def _part_at(folder: Path) -> _Part | None:
    labels = next((folder / d for d in _LABEL_DIRS if (folder / d).is_dir()), None)
    images = tuple(sorted(d for d in folder.iterdir() if d.is_dir() and d.name.lower().startswith("images")))
    if labels is None and not images:
        return None
    return _Part(folder, images, labels)


def _split_name(folder: str) -> str:
    return _SPLIT_NAMES.get(folder, folder)


def _stem_key(stem: str) -> tuple[int, int, str]:
    return (0, int(stem), stem) if stem.isdigit() else (1, 0, stem)


CARD = CardFacts(
    title="FAIR1M",
    homepage="https://www.gaofen-challenge.com/benchmark",
    license=License(
        id="cc-by-nc-sa-3.0", name="CC BY-NC-SA 3.0", link="https://creativecommons.org/licenses/by-nc-sa/3.0/",
        stated_in="second-hand: torchgeo's table of dataset licences gives CC-BY-NC-SA-3.0, and torchgeo issue #2582 "
                  "quotes the benchmark page asking users to agree to a Creative Commons licence; the page itself "
                  "was not read",
        second_hand=True),
    citation="""@article{sun2022fair1m,
  title={FAIR1M: A benchmark dataset for fine-grained object recognition in high-resolution remote sensing imagery},
  author={Sun, Xian and Wang, Peijin and Yan, Zhiyuan and Xu, Feng and Wang, Ruiping and Diao, Wenhui and Chen, Jin and Li, Jihao and Feng, Yingchao and Xu, Tao and Weinmann, Martin and Hinz, Stefan and Wang, Cheng and Fu, Kun},
  journal={ISPRS Journal of Photogrammetry and Remote Sensing},
  volume={184},
  pages={116--130},
  year={2022},
  doi={10.1016/j.isprsjprs.2021.12.004}
}""",
    citation_from="put together from the paper's reference entries (ISPRS J. 184:116-130, 2022) and torchgeo's DOI; "
                  "the authors publish no BibTeX",
    version="FAIR1M-1.0 or FAIR1M-2.0 (the adapter reads both alike and does not tell them apart)",
)


class FAIR1M(Source):
    name = "fair1m"
    description = "FAIR1M fine-grained oriented boxes (37 classes) in Gaofen images, labelXmls layout"
    split_rule = "train/ -> train, validation/ -> val, test/ -> test (unlabelled)"
    vocabulary = FAIR1M_CLASSES
    task_kind = "detection"
    card = CARD

    def __init__(self, root: Path, split: str | None = None) -> None:
        super().__init__(root, split)
        self.splits = self._find_splits()

    def _find_splits(self) -> list[_Split]:
        if single := _part_at(self.root):
            known = self.root.name in (*SPLIT_ORDER, *_SPLIT_NAMES)
            splits = [_Split(_split_name(self.root.name) if known else "train", (single,))]
        else:
            splits = []
            for folder in sorted(d for d in self.root.iterdir() if d.is_dir()):
                part = _part_at(folder)
                parts = (part,) if part else tuple(
                    p for sub in sorted(folder.iterdir()) if sub.is_dir() and (p := _part_at(sub)))
                if parts:
                    splits.append(_Split(_split_name(folder.name), parts))
            splits.sort(key=lambda s: split_key(s.name))
        if not splits:
            raise SourceError(f"{self.root} does not look like FAIR1M: expected train/part1/images/ and "
                              "train/part1/labelXmls/ (or validation/, test/, or images/ and labelXmls/ in the root)")
        return self.select_split(splits, lambda s: s.name)

    def __iter__(self) -> Iterator[Sample | Issue]:
        unknown = UnknownCategories(self.vocabulary)
        for split in self.splits:
            for part in split.parts:
                yield from self._iter_part(split, part, unknown)

    def _iter_part(self, split: _Split, part: _Part, unknown: UnknownCategories) -> Iterator[Sample | Issue]:
        labels = {p.stem: p for p in visible_files(part.labels, (".xml",))} if part.labels else {}
        images: dict[str, Path] = {}
        for folder in part.images:
            # FAIR1M ships .tif; a converted copy beside it should not win
            for p in sorted(visible_files(folder, IMAGE_SUFFIXES), key=lambda p: (p.suffix.lower() != ".tif", p.name)):
                images.setdefault(p.stem, p)
        prefix = f"{part.folder.name}_" if len(split.parts) > 1 else ""
        for stem in sorted(labels.keys() | images.keys(), key=_stem_key):
            label, image = labels.get(stem), images.get(stem)
            if image is None:
                where = self.relative((part.images[0] if part.images else part.folder / "images") / f"{stem}.tif")
                yield Issue(kind="skip", code=IssueCode.IMAGE_MISSING, file=self.relative(label),
                            reason=f"no image for label file (looked for {where})")
            elif label is None and split.name.startswith("test"):
                yield self._sample(split, prefix + stem, image, (), {}, annotated=False)
            elif label is None:
                where = self.relative((part.labels or part.folder / _LABEL_DIRS[0]) / f"{stem}.xml")
                yield Issue(kind="skip", code=IssueCode.ANNOTATION_MISSING, file=self.relative(image),
                            reason=f"no label file for image (looked for {where})")
            else:
                yield from self._labelled(split, prefix + stem, image, label, unknown)

    def _labelled(self, split: _Split, image_id: str, image: Path, label: Path,
                  unknown: UnknownCategories) -> Iterator[Sample | Issue]:
        rel = self.relative(label)
        root, problem = read_xml(label, rel)
        if problem:
            yield problem
            return
        objects, issues = parse_objects(root.findall("objects/object"), parse_object, rel, unknown,
                                        name_tag="possibleresult/name")
        yield from issues
        provenance = {"label_file": rel}
        if origin := (root.findtext("source/origin") or "").strip():
            provenance["origin"] = origin
        yield self._sample(split, image_id, image, tuple(objects), provenance)

    def _sample(self, split: _Split, image_id: str, image: Path, objects: tuple[Obj, ...],
                provenance: dict[str, str], annotated: bool = True) -> Sample:
        return Sample(source=self.name, split=split.name, image_id=image_id, image_path=image.resolve(),
                      rel_image=self.relative(image), objects=objects, provenance=provenance, annotated=annotated)
