"""DIOR and DIOR-RSVG: object detection and visual grounding on DIOR's Google Earth images (VOC XML).

References:
    K. Li, G. Wan, G. Cheng, L. Meng, J. Han, "Object Detection in Optical Remote Sensing Images: A
    Survey and a New Benchmark", ISPRS J. Photogramm. Remote Sens. 159, 2020 (DIOR).
    G. Cheng et al., "Anchor-Free Oriented Proposal Generator for Object Detection", IEEE TGRS 2022
    (DIOR-R, the oriented boxes).
    Y. Zhan, Z. Xiong, Y. Yuan, "RSVG: Exploring Data and Model for Visual Grounding on Remote
    Sensing Data", IEEE TGRS 2023 (DIOR-RSVG). Official code: https://github.com/ZhanYang-nwpu/RSVG-pytorch
    Homepages, licences and citations as the authors state them: `DIOR_CARD`, `RSVG_CARD` below.

DIOR (`--source dior`, detection). On-disk layout assumed:

    root/JPEGImages-trainval/00001.jpg ... 11725.jpg    800x800 images; an id's image is looked
    root/JPEGImages-test/11726.jpg ... 23463.jpg        up in both, then in root/JPEGImages/ (copies
                                                        that merged them)
    root/Annotations/Horizontal Bounding Boxes/00001.xml   VOC XML, one file per image
    root/Annotations/Oriented Bounding Boxes/00001.xml     DIOR-R, read when obb=True
    root/ImageSets/Main/train.txt, val.txt, test.txt       image ids, one per line, LF or CRLF

Verified: the folder names (spaces included), the split files and `<id>.jpg` naming, from
/work/shared/SOURCE-FORMATS.md and mmrotate's DIORDataset; the DIOR-R object
`<name/><truncated/><difficult/><robndbox><x_left_top/>...<y_left_bottom/></robndbox><angle/>` with
corners in the order left-top, right-top, right-bottom, left-bottom (DIOR-R 00001.xml as quoted in
public loaders); HBB objects `<name/><pose/><bndbox><xmin/><ymin/><xmax/><ymax/></bndbox>` with no
`<difficult>` (the same file's DIOR-RSVG copy). Assumed, unverified: re-packaged copies that name the
annotation folders `Annotations/HBB/` and `Annotations/OBB/` or put the XML files directly in
`Annotations/`; these are probed, in that order, after the official names. `ImageSets/*.txt` is
read when `ImageSets/Main/` is absent. Files in the split folder whose name has an underscore (VOC's
per-class `<class>_train.txt` lists) are not splits; `trainval.txt` is read only when asked for with
split="trainval" or when train.txt or val.txt is missing, since it is their union.

Option `obb` (default False) reads the DIOR-R oriented boxes: polygon = the four corners, box = their
bounding box; on the command line `rsgpt4v build --source dior -O obb=true`. DIOR's gsd (0.5-30 m)
is not recorded per image: gsd is None.

DIOR-RSVG (`--source dior-rsvg`, grounding). On-disk layout assumed (the RSVG-pytorch README):

    root/Annotations/00001.xml       VOC XML whose objects also carry <description>, the referring
    root/JPEGImages/00001.jpg        expression
    root/train.txt, val.txt, test.txt   (26,991 / 3,829 / 7,500 lines), also read from
                                        root/DIOR_RSVG/ where the official repository keeps them

A split file holds GLOBAL OBJECT INDICES, not image ids: walking the XML files in sorted name order
and counting every `<object>`, index i is the i-th object overall, 0-based. Verified against the
official data_loader.py: it counts from 0 and tests `count in Index` while walking the files (with
os.walk, i.e. directory order; the authors' Windows paths point to NTFS, which lists names sorted),
and reads the children by position, `member[2]` the bndbox and `member[3]` the description. Here
they are read by tag name, which is the same for the real files (name, pose, bndbox, description).
The real split files (RSVG-pytorch DIOR_RSVG/*.txt) partition 0..38319 with no index in two splits.
Each selected object becomes an Obj with the box of its `<bndbox>` and, as description, its
`<description>` with runs of whitespace collapsed (the official loader only lower-cases it when
tokenising; the text is kept as written). The selected objects of one image make ONE sample per
(split, image), so an image may appear in several splits with different objects; a sample whose
selected objects were all skipped is not made. The image is `<filename>` under JPEGImages/ (as the
official loader reads it), `<stem>.jpg` when the element is missing. An XML file that fails to
parse is skipped, but its `<object` tags are still counted in the raw text so that the indices of
later files stay aligned; one that cannot be read at all counts as empty, with a warning in its
issue that later indices may be shifted.

Bad data never raises: unreadable or invalid XML (named with the line of the syntax error), an id
without XML or image, malformed and duplicate split lines, indices out of range and objects with a
missing or degenerate box become Issues; an unknown category is kept with one warning per run.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rsgpt4v.core.card_facts import UNKNOWN, CardFacts, License
from rsgpt4v.core.issue_codes import IssueCode
from rsgpt4v.core.schema import Defect, Issue, Obj, Point, Sample
from rsgpt4v.imaging.geometry import bounding_box
from rsgpt4v.sources.base import (
    SPLIT_ORDER,
    Source,
    SourceError,
    UnknownCategories,
    checked_polygon,
    difficulty,
    find_image,
    inside_root,
    is_file,
    number,
    object_label,
    parse_objects,
    parse_xml,
    read_xml,
    split_key,
)

DIOR_CLASSES = (
    "airplane", "airport", "baseballfield", "basketballcourt", "bridge", "chimney", "dam",
    "expressway-service-area", "expressway-toll-station", "golffield", "groundtrackfield", "harbor",
    "overpass", "ship", "stadium", "storagetank", "tenniscourt", "trainstation", "vehicle", "windmill",
)

_HBB_DIRS = ("Horizontal Bounding Boxes", "HBB")
_OBB_DIRS = ("Oriented Bounding Boxes", "OBB")
_IMAGE_DIRS = ("JPEGImages-trainval", "JPEGImages-test", "JPEGImages")
_CORNERS = ("left_top", "right_top", "right_bottom", "left_bottom")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_OBJECT_TAG = re.compile(rb"<object[\s>]")


def parse_voc_object(obj: ET.Element, oriented: bool = False) -> Obj | Defect:
    """One VOC `<object>` (a DIOR-R `<robndbox>` when `oriented`), or why it was skipped."""
    name = (obj.findtext("name") or "").strip()
    if not name:
        return Defect(IssueCode.MALFORMED_ENTRY, "no <name>")
    polygon = _robndbox(obj) if oriented else _bndbox(obj)
    if isinstance(polygon, Defect):
        return polygon
    difficult = difficulty(obj.findtext("difficult"))
    if isinstance(difficult, Defect):
        return difficult
    return Obj(category=name.lower(), polygon=polygon, box=bounding_box(polygon), difficult=difficult,
               truncated=(obj.findtext("truncated") or "").strip() == "1")


def _bndbox(obj: ET.Element) -> tuple[Point, ...] | Defect:
    box = obj.find("bndbox")
    if box is None:
        return Defect(IssueCode.MALFORMED_ENTRY, "no <bndbox>")
    values = [number(box, tag) for tag in ("xmin", "ymin", "xmax", "ymax")]
    if problems := [v for v in values if isinstance(v, Defect)]:
        return problems[0]
    x1, y1, x2, y2 = values
    if x2 <= x1 or y2 <= y1:  # a swapped pair is a slip, not a box to repair
        return Defect(IssueCode.DEGENERATE_BOX, f"degenerate box (xmin {x1:g}, ymin {y1:g}, xmax {x2:g}, ymax {y2:g})")
    return checked_polygon(((x1, y1), (x2, y1), (x2, y2), (x1, y2)))


def _robndbox(obj: ET.Element) -> tuple[Point, ...] | Defect:
    box = obj.find("robndbox")
    if box is None:
        return Defect(IssueCode.MALFORMED_ENTRY, "no <robndbox>")
    values = [number(box, f"{axis}_{corner}") for corner in _CORNERS for axis in ("x", "y")]
    if problems := [v for v in values if isinstance(v, Defect)]:
        return problems[0]
    return checked_polygon(tuple(zip(values[0::2], values[1::2])))


def _text_lines(path: Path) -> list[str]:
    """Lines of a text file, BOM and CRLF tolerated. Raises OSError and UnicodeDecodeError."""
    return path.read_bytes().decode("utf-8-sig").splitlines()


# ---- DIOR ----------------------------------------------------------------------------------------

_DIOR_LICENSE = License(
    id="cc-by-nc-4.0", name="CC BY-NC 4.0", link="https://creativecommons.org/licenses/by-nc/4.0/",
    stated_in='https://gcheng-nwpu.github.io/#Datasets: "Both of the two datasets [DIOR, DIOR-R] are freely available '
              'under the CC BY-NC 4.0 license agreement"')

DIOR_CARD = CardFacts(
    title="DIOR",
    homepage="https://gcheng-nwpu.github.io/#Datasets",
    license=_DIOR_LICENSE,
    citation="""@article{LI2020296,
    title = {Object detection in optical remote sensing images: A survey and a new benchmark},
    journal = {ISPRS Journal of Photogrammetry and Remote Sensing},
    volume = {159},
    pages = {296-307},
    year = {2020},
    issn = {0924-2716},
    doi = {https://doi.org/10.1016/j.isprsjprs.2019.11.023},
    url = {https://www.sciencedirect.com/science/article/pii/S0924271619302825},
    author = {Ke Li and Gang Wan and Gong Cheng and Liqiu Meng and Junwei Han}
}""",
    citation_from="the authors' page cites the paper in text; BibTeX as open-mmlab/mmrotate publishes it "
                  "(tools/data/dior/README.md), with the closing brace it lacks there",
    version="DIOR (horizontal boxes); DIOR-R (oriented boxes) with -O obb=true",
)

_DIOR_R_CITATION = """@ARTICLE{9795321,
  author={Cheng, Gong and Wang, Jiabao and Li, Ke and Xie, Xingxing and Lang, Chunbo and Yao, Yanqing and Han, Junwei},
  journal={IEEE Transactions on Geoscience and Remote Sensing},
  title={Anchor-Free Oriented Proposal Generator for Object Detection},
  year={2022},
  volume={60},
  number={},
  pages={1-11},
  doi={10.1109/TGRS.2022.3183022}}"""

class DIOR(Source):
    name = "dior"
    description = "DIOR horizontal boxes (DIOR-R oriented boxes with obb=True), VOC XML layout"
    split_rule = ("ImageSets/Main/train.txt -> train, val.txt -> val, test.txt -> test (trainval.txt only when "
                  "asked for or when train/val is missing)")
    vocabulary = DIOR_CLASSES
    task_kind = "detection"
    options_help = {"obb": "true reads DIOR-R's oriented boxes (Annotations/Oriented Bounding Boxes/) instead of "
                           "the horizontal ones"}
    card = DIOR_CARD

    def card_facts(self) -> CardFacts:
        if not self.obb:
            return DIOR_CARD.model_copy(update={"version": "DIOR (horizontal boxes)"})
        return DIOR_CARD.model_copy(update={
            "title": "DIOR-R", "version": "DIOR-R (oriented boxes)",
            "citation": f"{DIOR_CARD.citation}\n\n{_DIOR_R_CITATION}",
            "citation_from": f"{DIOR_CARD.citation_from}; DIOR-R: the IEEE export of document 9795321"})

    def __init__(self, root: Path, split: str | None = None, obb: bool = False) -> None:
        super().__init__(root, split)
        self.obb = obb
        self.annotations = self._annotation_dir()
        self.image_dirs = [self.root / d for d in _IMAGE_DIRS if (self.root / d).is_dir()]
        self.split_files = self._split_files()

    def _annotation_dir(self) -> Path:
        top = self.root / "Annotations"
        for sub in _OBB_DIRS if self.obb else _HBB_DIRS:
            if (top / sub).is_dir():
                return top / sub
        if top.is_dir() and any(top.glob("*.xml")):
            return top
        wanted = "Oriented Bounding Boxes" if self.obb else "Horizontal Bounding Boxes"
        raise SourceError(f"{self.root} does not look like DIOR: expected Annotations/{wanted}/*.xml "
                          "(or Annotations/*.xml), JPEGImages-trainval/ and ImageSets/Main/train.txt")

    def _split_files(self) -> dict[str, Path]:
        folder = next((d for d in (self.root / "ImageSets" / "Main", self.root / "ImageSets") if d.is_dir()), None)
        found = {p.stem: p for p in sorted(folder.glob("*.txt")) if "_" not in p.stem} if folder else {}
        if not found:
            raise SourceError(f"no split files under {self.root}: expected ImageSets/Main/train.txt, val.txt, test.txt")
        ordered = sorted(found.items(), key=lambda kv: split_key(kv[0]))
        if self.split is None and "train" in found and "val" in found:
            ordered = [kv for kv in ordered if kv[0] != "trainval"]  # their union: every image twice
        return dict(self.select_split(ordered, lambda kv: kv[0]))

    def __iter__(self) -> Iterator[Sample | Issue]:
        unknown = UnknownCategories(self.vocabulary)
        for split, path in self.split_files.items():
            yield from self._iter_split(split, path, unknown)

    def _iter_split(self, split: str, path: Path, unknown: UnknownCategories) -> Iterator[Sample | Issue]:
        rel = self.relative(path)
        try:
            lines = _text_lines(path)
        except (OSError, UnicodeDecodeError) as exc:
            yield Issue(kind="skip", code=IssueCode.FILE_UNREADABLE, file=rel, reason=f"unreadable split file: {exc}")
            return
        seen: dict[str, int] = {}
        for lineno, raw in enumerate(lines, start=1):
            image_id = raw.strip()
            if not image_id:
                continue
            if not _ID.fullmatch(image_id):
                yield Issue(kind="skip", code=IssueCode.MALFORMED_ENTRY, file=rel, line=lineno,
                            reason=f"malformed image id {image_id!r}")
            elif image_id in seen:
                yield Issue(kind="skip", code=IssueCode.DUPLICATE_ID, file=rel, line=lineno,
                            reason=f"duplicate image id {image_id!r} (first at line {seen[image_id]})")
            else:
                seen[image_id] = lineno
                yield from self._image(split, image_id, rel, lineno, unknown)

    def _image(self, split: str, image_id: str, split_file: str, lineno: int,
               unknown: UnknownCategories) -> Iterator[Sample | Issue]:
        xml = self.annotations / f"{image_id}.xml"
        if not is_file(xml):
            yield Issue(kind="skip", code=IssueCode.ANNOTATION_MISSING, file=split_file, line=lineno,
                        reason=f"no annotation file for id {image_id!r} (looked for {self.relative(xml)})")
            return
        image = next((p for d in self.image_dirs if (p := find_image(d, f"{image_id}.jpg"))), None)
        if image is None:
            looked = ", ".join(f"{d}/{image_id}.jpg" for d in _IMAGE_DIRS)
            yield Issue(kind="skip", code=IssueCode.IMAGE_MISSING, file=split_file, line=lineno,
                        reason=f"no image for id {image_id!r} (looked for {looked})")
            return
        rel = self.relative(xml)
        root, problem = read_xml(xml, rel)
        if problem:
            yield problem
            return
        objects, issues = parse_objects(root.findall("object"), lambda e: parse_voc_object(e, self.obb), rel, unknown)
        yield from issues
        yield Sample(source=self.name, split=split, image_id=image_id, image_path=image.resolve(),
                     rel_image=self.relative(image), objects=tuple(objects),
                     provenance={"label_file": rel, "split_file": split_file})


# ---- DIOR-RSVG -----------------------------------------------------------------------------------

def read_split_file(path: Path, name: str) -> tuple[dict[int, int], list[Issue]]:
    """A DIOR-RSVG split file: global object index -> its line, and the lines that were skipped."""
    try:
        lines = _text_lines(path)
    except (OSError, UnicodeDecodeError) as exc:
        return {}, [Issue(kind="skip", code=IssueCode.FILE_UNREADABLE, file=name,
                          reason=f"unreadable split file: {exc}")]
    indices: dict[int, int] = {}
    issues: list[Issue] = []
    for lineno, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text:
            continue
        if not text.isdigit():
            issues.append(Issue(kind="skip", code=IssueCode.MALFORMED_ENTRY, file=name, line=lineno,
                                reason=f"malformed line: {text!r} is not an object index"))
        elif int(text) in indices:
            issues.append(Issue(kind="skip", code=IssueCode.DUPLICATE_ID, file=name, line=lineno,
                                reason=f"duplicate object index {int(text)} (first at line {indices[int(text)]})"))
        else:
            indices[int(text)] = lineno
    return indices, issues


# Where one selected object is: its XML file's name under Annotations/, its global index, its
# position among the file's <object> elements, and the line of the split file naming it.
_Pick = tuple[str, int, int, int]


@dataclass(slots=True)
class _Selected:
    """What one split selects from one image, by where to find it again rather than by the parsed
    objects: the split files are object-level, so every XML is read before the first sample is made,
    and holding each selected object (description included) until then grew the build by about 3.7
    KiB an image. The XML is parsed again when its sample is made."""

    xml: str  # the name of the first file of this stem under Annotations/
    filename: str
    picks: list[_Pick | Issue] = field(default_factory=list)  # in walk order, with the skipped ones


RSVG_CARD = CardFacts(
    title="DIOR-RSVG",
    homepage="https://github.com/ZhanYang-nwpu/RSVG-pytorch",
    license=License(id=UNKNOWN, name=UNKNOWN,
                    stated_in="github.com/ZhanYang-nwpu/RSVG-pytorch (where the data is published) has no LICENSE file "
                              "and its README states no licence"),
    citation="""@ARTICLE{10056343,
  author={Zhan, Yang and Xiong, Zhitong and Yuan, Yuan},
  journal={IEEE Transactions on Geoscience and Remote Sensing},
  title={RSVG: Exploring Data and Models for Visual Grounding on Remote Sensing Data},
  year={2023},
  volume={61},
  number={},
  pages={1-13},
  doi={10.1109/TGRS.2023.3250471}
  }""",
    citation_from="verbatim from the README of github.com/ZhanYang-nwpu/RSVG-pytorch",
    images="DIOR's images, which its authors release under CC BY-NC 4.0 (https://gcheng-nwpu.github.io/#Datasets)",
)


class DIORRSVG(Source):
    name = "dior-rsvg"
    description = "DIOR-RSVG referring expressions with boxes (visual grounding), global-index split files"
    split_rule = ("train.txt, val.txt, test.txt (global object indices) -> train, val, test; an image may be in "
                  "several splits")
    vocabulary = DIOR_CLASSES
    task_kind = "grounding"
    tiled = False
    exhaustive_labels = False
    label_tasks: frozenset[str] = frozenset()
    card = RSVG_CARD

    def __init__(self, root: Path, split: str | None = None) -> None:
        super().__init__(root, split)
        self.annotations = self.root / "Annotations"
        self.images = self.root / "JPEGImages"
        if not self.annotations.is_dir() or not any(self.annotations.glob("*.xml")):
            raise SourceError(f"{self.root} does not look like DIOR-RSVG: expected Annotations/*.xml, "
                              "JPEGImages/ and train.txt, val.txt, test.txt")
        self.split_files = self._split_files()

    def _split_files(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for folder in (self.root, self.root / "DIOR_RSVG"):
            for name in SPLIT_ORDER:
                if name not in found and (folder / f"{name}.txt").is_file():
                    found[name] = folder / f"{name}.txt"
        if not found:
            raise SourceError(f"no split files under {self.root}: expected train.txt, val.txt, test.txt "
                              "(in the root or in DIOR_RSVG/)")
        return dict(self.select_split(list(found.items()), lambda kv: kv[0]))

    def __iter__(self) -> Iterator[Sample | Issue]:
        wanted: dict[str, dict[int, int]] = {}  # split -> global index -> line of the split file
        split_issues: dict[str, list[Issue]] = {}
        for split, path in self.split_files.items():
            wanted[split], split_issues[split] = read_split_file(path, self.relative(path))
        selected, total, walk_issues = self._walk(wanted)
        yield from walk_issues
        unknown = UnknownCategories(self.vocabulary)
        for split, path in self.split_files.items():
            rel = self.relative(path)
            yield from split_issues[split]
            for group in selected[split].values():
                yield from self._sample(split, rel, group, unknown)
            for index, lineno in wanted[split].items():
                if index >= total:
                    yield Issue(kind="skip", code=IssueCode.BROKEN_REFERENCE, file=rel, line=lineno,
                                reason=f"object index {index} out of range (Annotations/ holds {total} objects)")

    def _walk(self, wanted: dict[str, dict[int, int]]) -> tuple[dict[str, dict[str, _Selected]], int, list[Issue]]:
        """Every XML in name order, counting objects; where the selected ones are, by split and image."""
        selected: dict[str, dict[str, _Selected]] = {split: {} for split in wanted}
        issues: list[Issue] = []
        count = 0
        # names, not Paths: the same order (one folder), a fraction of the memory
        for name in sorted(p.name for p in self.annotations.iterdir() if p.is_file() and p.suffix.lower() == ".xml"):
            xml = self.annotations / name
            rel = self.relative(xml)
            try:
                data = xml.read_bytes()
            except OSError as exc:
                issues.append(Issue(kind="skip", code=IssueCode.FILE_UNREADABLE, file=rel,
                                    reason=f"cannot read file ({exc.strerror}); "
                                    "the object indices of later files may be shifted"))
                continue
            root, problem = parse_xml(data, rel)
            if root is None:
                n = len(_OBJECT_TAG.findall(data))
                issues.append(problem.model_copy(update={
                    "reason": f"{problem.reason}; its {n} <object> tags are still counted"}))
                self._unresolvable(wanted, range(count, count + n), xml, selected)
                count += n
                continue
            filename = (root.findtext("filename") or "").strip() or f"{xml.stem}.jpg"
            for position in range(len(root.findall("object"))):
                for split, indices in wanted.items():
                    if count in indices:
                        group = selected[split].setdefault(xml.stem, _Selected(name, filename))
                        group.picks.append((name, count, position, indices[count]))
                count += 1
        return selected, count, issues

    def _unresolvable(self, wanted: dict[str, dict[int, int]], span: range, xml: Path,
                      selected: dict[str, dict[str, _Selected]]) -> None:
        """Indices falling inside an XML that cannot be parsed: skipped where the split names them."""
        for split, indices in wanted.items():
            for index in span:
                if index in indices:
                    group = selected[split].setdefault(xml.stem, _Selected(xml.name, ""))
                    group.picks.append(Issue(kind="skip", code=IssueCode.BROKEN_REFERENCE,
                                              file=self.relative(self.split_files[split]),
                                              line=indices[index],
                                              reason=f"object {index} lies in invalid {self.relative(xml)}"))

    def _sample(self, split: str, split_file: str, group: _Selected,
                unknown: UnknownCategories) -> Iterator[Sample | Issue]:
        objects, indices = [], []
        for found in self._reread(group, split_file):
            if isinstance(found, Issue):
                yield found
            else:
                objects.append(found[1])
                indices.append(found[0])
        if not objects:
            return
        rel = self.relative(self.annotations / group.xml)
        target = inside_root(self.images, group.filename)
        image = find_image(target.parent, target.name) if target else None
        if image is None:
            looked = f"JPEGImages/{group.filename}" if target else f"<filename> {group.filename!r} outside JPEGImages/"
            code = IssueCode.IMAGE_MISSING if target else IssueCode.PATH_OUTSIDE_FOLDER
            yield Issue(kind="skip", code=code, file=rel, reason=f"no image for annotation (looked for {looked})")
            return
        for obj in objects:
            if warning := unknown.check(obj.category, rel):
                yield warning
        yield Sample(source=self.name, split=split, image_id=Path(group.xml).stem, image_path=image.resolve(),
                     rel_image=self.relative(image), objects=tuple(objects),
                     provenance={"label_file": rel, "split_file": split_file,
                                 "object_indices": ",".join(map(str, indices))})

    def _reread(self, group: _Selected, split_file: str) -> Iterator[tuple[int, Obj] | Issue]:
        """The group's objects (with their global index) from their XML files parsed again, or why
        each was skipped, in walk order; one file at a time is held."""
        name, elements = "", None
        for pick in group.picks:
            if isinstance(pick, Issue):
                yield pick
                continue
            file, index, position, lineno = pick
            if file != name:
                name, elements = file, None
                root, problem = read_xml(self.annotations / file, self.relative(self.annotations / file))
                if problem:
                    yield problem
                else:
                    elements = root.findall("object")
            if elements is None or position >= len(elements):
                yield Issue(kind="skip", code=IssueCode.BROKEN_REFERENCE, file=split_file, line=lineno,
                            reason=f"object {index} is no longer in {self.relative(self.annotations / file)} "
                                   "(the file changed during the build)")
                continue
            yield self._described(file, index, position, elements[position], split_file, lineno)

    @staticmethod
    def _described(file: str, index: int, position: int, element: ET.Element, split_file: str,
                   lineno: int) -> tuple[int, Obj] | Issue:
        """A selected `<object>` with its description, or the issue that skips it."""
        where = f"object {index} ({file}, {object_label(position, element)})"
        obj = parse_voc_object(element)
        text = " ".join((element.findtext("description") or "").split())
        if isinstance(obj, Defect) or not text:
            defect = obj if isinstance(obj, Defect) else Defect(IssueCode.EMPTY_TEXT, "no <description>")
            return defect.issue("skip", split_file, lineno, where)
        return index, obj.model_copy(update={"description": text})
