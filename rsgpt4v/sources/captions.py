"""Remote-sensing captioning datasets, read from their native json annotation files.

References:
    RSICD: X. Lu, B. Wang, X. Zheng, X. Li, "Exploring Models and Data for Remote Sensing Image
    Caption Generation", IEEE TGRS 2018. https://github.com/201528014227051/RSICD_optimal
    UCM-Captions, Sydney-Captions: B. Qu, X. Li, D. Tao, X. Lu, "Deep Semantic Understanding of
    High Resolution Remote Sensing Image", CITS 2016 (images from UC Merced, Y. Yang and S. Newsam,
    ACM SIGSPATIAL 2010, 1 foot/pixel; and from the Sydney scene set of F. Zhang, B. Du, L. Zhang,
    IEEE TGRS 2015, 0.5 m/pixel).
    RSITMD: Z. Yuan et al., "Exploring a Fine-Grained Multiscale Method for Cross-Modal Remote
    Sensing Image Retrieval", IEEE TGRS 2022. https://github.com/xiaoyuan1996/AMFMN
    NWPU-Captions: Q. Cheng et al., "NWPU-Captions Dataset and MLCA-Net for Remote Sensing Image
    Captioning", IEEE TGRS 2022. https://github.com/HaiyanHuang98/NWPU-Captions
    Homepages, licences and citations as the authors state them: each class's `card` (none of the
    five states a licence).

On-disk layout assumed, RSICD / UCM-Captions / Sydney-Captions / RSITMD (Karpathy-style json):

    root/dataset_rsicd.json        RSICD; UCM and Sydney: dataset.json (also dataset_ucm.json,
    root/RSICD_images/<filename>   dataset_sydney.json); RSITMD: dataset_RSITMD.json. Failing
                                   the known names, the one dataset*.json in the root. Images in
                                   the first of RSICD_images/, imgs/, images/, Images/ present.

    {"images": [{"filename": "airport_1.jpg", "imgid": 0, "split": "train", "sentids": [0, ...],
                 "sentences": [{"tokens": [...], "raw": "many planes are ... an airport .",
                                "imgid": 0, "sentid": 0}, ...]}, ...],
     "dataset": "rsicd"}

On-disk layout assumed, NWPU-Captions (json keyed by scene class):

    root/dataset_nwpu.json                   {"airplane": [{"filename": "airplane_001.jpg",
    root/NWPU_images/<class>/<filename>        "imgid": 0, "split": "train", "raw": "...",
                                               "raw_1": ..., "raw_4": ..., "sentids": 0,
                                               "sentids_1": ..., ...}, ...], ...}

    The images folder is the first of NWPU_images/, images/ and the root itself that holds a folder
    named after one of the classes.

Where this comes from. RSICD: every key and value of a real `images[0]` entry (printed from the
original file in arampacha/CLIP-rsicd), and `RSICD_images/` + `dataset_rsicd.json` as the torchrs
loader reads them (isaaccorley/torchrs, datasets/rsicd.py). UCM/Sydney: torchrs reads `dataset.json`
with the RSICD reader (images[].filename/split/sentences[].raw) and `images/`; other public loaders
use `imgs/`; the `.jpg` references to `.tif` files and Sydney's typos are from the project's
SOURCE-FORMATS notes, unverified here. RSITMD: the AMFMN README gives `images/` and
`dataset_RSITMD.json` and says four blank sentences were corrected on 2021-10-28 (older copies carry
them); public loaders read images[].filename/split ("train"/"test" only)/sentences[].raw and
imgid/sentids; its `keywords` and any other key are unverified and ignored; filenames
`<class>_<n>.tif` come from a public loader parsing the class out of them (unverified). NWPU: the
field names filename/imgid/split/raw/raw_1..raw_4/sentids/sentids_1..sentids_4 and the
`<images>/<class>/<filename>` layout come from public loaders (one reads the five raw keys by name,
others open `NWPU_images/<class>/` or `images/<class>/`); the official repository ships
`NWPU_images.tar.gz`.

Captions are the distinct `raw` strings of an image in file order, stripped; a space before a
final full stop (RSICD writes "... an airport .") is removed, nothing else is changed: case and
typos stay, and raw is never rebuilt from `tokens` (a text-augmented RSICD copy exists whose raw no
longer matches its tokens). RSICD pads images with fewer than five distinct captions with
duplicates; those collapse here. The scene class, in readable words, is the NWPU dict key, or for
the Karpathy-style sets the filename stem's letters before a trailing `_<number>` (`airport_1.jpg`
-> "airport"; RSICD's bare `00676.jpg` and UCM/Sydney's `12.tif` have none). The gsd is set for
UCM (0.3048 m) and Sydney (0.5 m), whose images share one resolution; the others mix resolutions.

Options: `annotations=` (the json file) and `images=` (the image folder; for NWPU the folder holding
the class folders), both relative to the root, replace the probing for copies named otherwise
(`UCM_imgs/`, `dataset_ucmd.json`, ...). Image ids are the file stems (NWPU: prefixed with the class
when the stem does not already start with it), unique within a split.

Bad data never raises: an unreadable or invalid json file, an entry that is not an object or lacks
a split or filename, a split that cannot name an output file (`../x`, `/abs`, `a/b`, a NUL byte: see
rsgpt4v.core.paths), a filename leaving the root, an entry without caption text, a missing image and
a second entry for an image already kept in the same split are skipped with an Issue naming the
entry (`images[12] (filename 'x.jpg'): ...`); blank sentences next to good ones are a warning.
Issues about entries that belong to no split come first, then each split's entries in file order.
"""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

from rsgpt4v.core.card_facts import UNKNOWN, CardFacts, License
from rsgpt4v.core.issue_codes import IssueCode
from rsgpt4v.core.paths import SAFE_NAME_RULE, safe_name
from rsgpt4v.core.schema import Issue, Sample
from rsgpt4v.language.words import readable
from rsgpt4v.sources.base import (
    Source,
    SourceError,
    find_image,
    inside_root,
    read_json,
    split_key,
)

_IMAGE_DIRS = ("RSICD_images", "imgs", "images", "Images")
_NWPU_IMAGE_DIRS = ("NWPU_images", "images", ".")
_CLASS_IN_STEM = re.compile(r"([A-Za-z][A-Za-z _-]*?)[_-]\d+")
_RAW_KEY = re.compile(r"raw(?:_(\d+))?")


@dataclass(frozen=True)
class _Entry:
    """One image as the annotation file gives it, not yet checked."""

    where: str  # how issues name it: "images[3]", "airport[7]"
    split: object
    filename: object
    texts: tuple[object, ...]  # the raw caption values, in file order
    folder: Path  # where `filename` is looked up
    scene_class: str | None = None
    id_prefix: str = ""  # makes image ids unique where stems repeat across folders
    provenance: dict[str, str | int] = field(default_factory=dict)


def clean_captions(texts: tuple[object, ...]) -> tuple[tuple[str, ...], int]:
    """Distinct caption strings in order, and how many values were blank or not text."""
    kept: list[str] = []
    blank = 0
    for text in texts:
        if not isinstance(text, str) or not text.strip():
            blank += 1
            continue
        caption = re.sub(r"\s+\.$", ".", text.strip())
        if caption not in kept:
            kept.append(caption)
    return tuple(kept), blank


def scene_from_filename(filename: str) -> str | None:
    """`airport_1.jpg` -> "airport"; numeric names (`00676.jpg`, `12.tif`) carry no class."""
    m = _CLASS_IN_STEM.fullmatch(Path(filename).stem)
    return readable(m.group(1)) if m else None


class _CaptionSource(Source):
    """What the caption adapters share: entries grouped by split, checked and turned into samples."""

    task_kind = "caption"
    tiled = False
    exhaustive_labels = False
    label_tasks: frozenset[str] = frozenset()
    vocabulary = ()
    gsd: ClassVar[float | None] = None
    json_names: ClassVar[tuple[str, ...]]
    options_help = {
        "annotations": "the captions json to read, relative to the root or absolute (default: the dataset's own "
                       "file name in the root)",
        "images": "the folder holding the images, relative to the root or absolute (default: the dataset's own "
                  "image folder)",
    }

    def __init__(self, root: Path, split: str | None = None, annotations: str | None = None,
                 images: str | None = None) -> None:
        super().__init__(root, split)
        self.images_option = images
        self.annotations = self._find_annotations(annotations)
        self.ann_name = self.relative(self.annotations)
        data, self.load_issue = read_json(self.annotations, self.ann_name)
        self.entries: list[_Entry | Issue] = [] if self.load_issue else self._entries(data)
        if self.split is not None and not self.load_issue:
            found = self._splits()
            if self.split not in found:
                raise SourceError(f"no split {self.split!r} in {self.ann_name} (found: {', '.join(found) or 'none'})")

    def _find_annotations(self, override: str | None) -> Path:
        if override is not None:
            path = inside_root(self.root, override)
            if path is None or not path.is_file():
                raise SourceError(f"annotation file {override!r} not found in {self.root}")
            return path
        for name in self.json_names:
            if (self.root / name).is_file():
                return self.root / name
        found = sorted(p for p in self.root.glob("dataset*.json") if p.is_file())
        if len(found) == 1:
            return found[0]
        expected = ", ".join(self.json_names)
        several = f"; found several, pass annotations=: {', '.join(p.name for p in found)}" if found else ""
        raise SourceError(f"{self.root} does not look like {self.name}: expected {expected} "
                          f"(or a single dataset*.json) in it{several}")

    @abstractmethod
    def _entries(self, data: object) -> list[_Entry | Issue]:
        """The file's entries in file order, structural problems as issues; SourceError when the
        images cannot be found at all."""

    def _splits(self) -> list[str]:
        names = {e.split for e in self.entries if isinstance(e, _Entry) and safe_name(e.split)}
        return sorted(names, key=split_key)

    def __iter__(self) -> Iterator[Sample | Issue]:
        if self.load_issue:
            yield self.load_issue
            return
        for entry in self.entries:
            if isinstance(entry, Issue):
                yield entry
            elif not isinstance(entry.split, str) or not entry.split:
                yield self._skip(entry, IssueCode.MALFORMED_ENTRY, "no split")
            elif not safe_name(entry.split):
                yield self._skip(entry, IssueCode.MALFORMED_ENTRY,
                                 f"split {entry.split!r} cannot name an output file ({SAFE_NAME_RULE})")
        for split in self._splits():
            if self.split is not None and split != self.split:
                continue
            seen: dict[str, str] = {}
            for entry in self.entries:
                if isinstance(entry, _Entry) and entry.split == split:
                    yield from self._check(entry, seen)

    def _check(self, entry: _Entry, seen: dict[str, str]) -> Iterator[Sample | Issue]:
        if not isinstance(entry.filename, str) or not entry.filename.strip():
            yield self._skip(entry, IssueCode.MALFORMED_ENTRY, "no filename")
            return
        captions, blank = clean_captions(entry.texts)
        if not captions:
            yield self._skip(entry, IssueCode.EMPTY_TEXT, "no caption text (sentences missing, empty or without raw)")
            return
        wanted = inside_root(entry.folder, entry.filename)
        if wanted is None:
            yield self._skip(entry, IssueCode.PATH_OUTSIDE_FOLDER,
                             f"filename {entry.filename!r} leaves the dataset root")
            return
        image = find_image(wanted.parent, wanted.name)
        if image is None:
            yield self._skip(entry, IssueCode.IMAGE_MISSING, f"image not found (looked for {self.relative(wanted)}, "
                                                             "also with other image suffixes)")
            return
        image_id = entry.id_prefix + image.stem
        if image_id in seen:
            yield self._skip(entry, IssueCode.DUPLICATE_IMAGE, f"duplicate image {image_id!r} in split "
                                                               f"{entry.split!r} (first at {seen[image_id]})")
            return
        seen[image_id] = entry.where
        if blank:
            yield self._issue(entry, "warning", IssueCode.EMPTY_TEXT,
                              f"{blank} of {len(entry.texts)} captions blank or not text; kept the others")
        yield Sample(source=self.name, split=entry.split, image_id=image_id, image_path=image.resolve(),
                     rel_image=self.relative(image), captions=captions, scene_class=entry.scene_class,
                     gsd=self.gsd, provenance={"annotation_file": self.ann_name, **entry.provenance})

    def _skip(self, entry: _Entry, code: IssueCode, reason: str) -> Issue:
        return self._issue(entry, "skip", code, reason)

    def _issue(self, entry: _Entry, kind: Literal["skip", "warning"], code: IssueCode, reason: str) -> Issue:
        name = f" (filename {entry.filename!r})" if isinstance(entry.filename, str) else ""
        return Issue(kind=kind, code=code, file=self.ann_name, reason=f"{entry.where}{name}: {reason}")


class _Karpathy(_CaptionSource):
    """`{"images": [{"filename", "split", "sentences": [{"raw"}...]}...]}` with one image folder."""

    def _find_image_dir(self) -> Path:
        names = (self.images_option,) if self.images_option is not None else _IMAGE_DIRS
        for name in names:
            folder = inside_root(self.root, name)
            if folder is not None and folder.is_dir():
                return folder
        looked = ", ".join(f"{n}/" for n in names)
        raise SourceError(f"{self.root} does not look like {self.name}: no image folder (looked for {looked})")

    def _entries(self, data: object) -> list[_Entry | Issue]:
        folder = self._find_image_dir()
        images = data.get("images") if isinstance(data, dict) else None
        if not isinstance(images, list):
            return [Issue(kind="skip", code=IssueCode.FILE_WRONG_STRUCTURE, file=self.ann_name,
                          reason="expected an object with an 'images' list")]
        return [self._entry(folder, i, item) for i, item in enumerate(images)]

    def _entry(self, folder: Path, index: int, item: object) -> _Entry | Issue:
        where = f"images[{index}]"
        if not isinstance(item, dict):
            return Issue(kind="skip", code=IssueCode.MALFORMED_ENTRY, file=self.ann_name,
                         reason=f"{where}: not an object")
        sentences = item.get("sentences")
        texts = tuple(s.get("raw") if isinstance(s, dict) else None
                      for s in (sentences if isinstance(sentences, list) else ()))
        filename = item.get("filename")
        provenance = {"filename": filename} if isinstance(filename, str) else {}
        if isinstance(item.get("imgid"), (int, str)):
            provenance["imgid"] = item["imgid"]
        return _Entry(where=where, split=item.get("split"), filename=filename, texts=texts,
                      folder=folder, provenance=provenance,
                      scene_class=scene_from_filename(filename) if isinstance(filename, str) else None)


def _unstated(where: str) -> License:
    return License(id=UNKNOWN, name=UNKNOWN, stated_in=where)


_RSICD_HOME = "https://github.com/201528014227051/RSICD_optimal"
_QU_2016 = """@inproceedings{qu2016deep,
  title={Deep semantic understanding of high resolution remote sensing image},
  author={Qu, Bo and Li, Xuelong and Tao, Dacheng and Lu, Xiaoqiang},
  booktitle={2016 International Conference on Computer, Information and Telecommunication Systems (CITS)},
  pages={1--5},
  year={2016},
  doi={10.1109/CITS.2016.7546397}
}"""
_QU_2016_FROM = ("put together from the paper's reference entries (IEEE document 7546397); the authors publish no "
                 "BibTeX")
_RSICD_UNSTATED = _unstated(f"{_RSICD_HOME} (where RSICD, UCM-Captions and Sydney-Captions are published) has no "
                            "LICENSE file and its README states no licence")

RSICD_CARD = CardFacts(
    title="RSICD", homepage=_RSICD_HOME, license=_RSICD_UNSTATED,
    citation="""@article{lu2017exploring,
  title={Exploring Models and Data for Remote Sensing Image Caption Generation},
  author={Lu, Xiaoqiang and Wang, Binqiang and Zheng, Xiangtao and Li, Xuelong},
  journal={IEEE Transactions on Geoscience and Remote Sensing},
  volume = {56},
  number = {4},
  pages = {2183-2195},
  year = {2018},
  doi={10.1109/TGRS.2017.2776321}
}""",
    citation_from=f"the README of {_RSICD_HOME}, re-indented, with the year it lacks (TGRS 56(4), 2018)",
)
UCM_CAPTIONS_CARD = CardFacts(
    title="UCM-Captions", homepage=_RSICD_HOME, license=_RSICD_UNSTATED, citation=_QU_2016,
    citation_from=_QU_2016_FROM,
    images="UC Merced Land Use images (http://weegee.vision.ucmerced.edu/datasets/landuse.html), USGS imagery that "
           "page calls public domain",
)
SYDNEY_CAPTIONS_CARD = CardFacts(
    title="Sydney-Captions", homepage=_RSICD_HOME, license=_RSICD_UNSTATED, citation=_QU_2016,
    citation_from=_QU_2016_FROM,
    images="the Sydney scene images of F. Zhang, B. Du and L. Zhang (IEEE TGRS 2015, IEEE document 6910306)",
)
RSITMD_CARD = CardFacts(
    title="RSITMD", homepage="https://github.com/xiaoyuan1996/AMFMN",
    license=_unstated("github.com/xiaoyuan1996/AMFMN (folder RSITMD/) states no licence for the data; the README's "
                      "npm licence badge is a template's and names another project"),
    citation="""@article{yuan2022exploring,
  author={Yuan, Zhiqiang and others},
  title={Exploring a Fine-Grained Multiscale Method for Cross-Modal Remote Sensing Image Retrieval},
  journal={IEEE Transactions on Geoscience and Remote Sensing},
  year={2022}, volume={60}, pages={1--19},
  doi={10.1109/TGRS.2021.3078451}
}""",
    citation_from="put together from the citation text of the AMFMN and RSITMD READMEs (title, journal, DOI) and an "
                  "IEEE export (volume, pages); the full author list was not seen",
    version="2021.10.28 (the README: four samples updated to correct blank sentences)",
)
NWPU_CAPTIONS_CARD = CardFacts(
    title="NWPU-Captions", homepage="https://github.com/HaiyanHuang98/NWPU-Captions",
    license=_unstated("github.com/HaiyanHuang98/NWPU-Captions states no licence (its README is a title only)"),
    citation="""@article{cheng2022nwpucaptions,
  author={Cheng, Qimin and Huang, Haiyan and Xu, Yuan and Zhou, Yuzhuo and Li, Huanying and Wang, Zhongyuan},
  title={NWPU-Captions Dataset and MLCA-Net for Remote Sensing Image Captioning},
  journal={IEEE Transactions on Geoscience and Remote Sensing},
  year={2022}, volume={60}, pages={1--19},
  url={https://ieeexplore.ieee.org/document/9866055}
}""",
    citation_from="put together from the paper's IEEE page (document 9866055); the authors publish no BibTeX and "
                  "the DOI was not checked",
    images="NWPU-RESISC45's images, which its authors release under CC BY-NC 4.0 "
           "(https://gcheng-nwpu.github.io/#Datasets)",
)


class RSICD(_Karpathy):
    name = "rsicd"
    description = "RSICD captions, 10,921 images x 5 sentences (dataset_rsicd.json + RSICD_images/)"
    split_rule = "each images[] entry's own split field (train, val, test)"
    json_names = ("dataset_rsicd.json",)
    card = RSICD_CARD


class UCMCaptions(_Karpathy):
    name = "ucm-captions"
    description = "UCM-Captions, 2,100 UC Merced tiles x 5 sentences (dataset.json + imgs/ or images/)"
    split_rule = "each images[] entry's own split field (train, val, test)"
    json_names = ("dataset.json", "dataset_ucm.json")
    card = UCM_CAPTIONS_CARD
    gsd = 0.3048  # UC Merced tiles: 1 foot per pixel


class SydneyCaptions(_Karpathy):
    name = "sydney-captions"
    description = "Sydney-Captions, 613 images x 5 sentences (dataset.json + imgs/ or images/)"
    split_rule = "each images[] entry's own split field (train, val, test)"
    json_names = ("dataset.json", "dataset_sydney.json")
    card = SYDNEY_CAPTIONS_CARD
    gsd = 0.5


class RSITMD(_Karpathy):
    name = "rsitmd"
    description = "RSITMD, 4,743 images x 5 fine-grained sentences, train/test (dataset_RSITMD.json + images/)"
    split_rule = "each images[] entry's own split field (train, test)"
    json_names = ("dataset_RSITMD.json",)
    card = RSITMD_CARD


class NWPUCaptions(_CaptionSource):
    name = "nwpu-captions"
    description = "NWPU-Captions, 31,500 images in 45 scene classes x 5 sentences (dataset_nwpu.json)"
    split_rule = "each entry's own split field (train, val, test)"
    json_names = ("dataset_nwpu.json",)
    card = NWPU_CAPTIONS_CARD

    def _entries(self, data: object) -> list[_Entry | Issue]:
        if not isinstance(data, dict):
            return [Issue(kind="skip", code=IssueCode.FILE_WRONG_STRUCTURE, file=self.ann_name,
                          reason="expected an object keyed by class name")]
        base = self._find_image_base(list(data))
        entries: list[_Entry | Issue] = []
        for cls, items in data.items():
            if not isinstance(items, list):
                entries.append(Issue(kind="skip", code=IssueCode.FILE_WRONG_STRUCTURE, file=self.ann_name,
                                     reason=f"class {cls!r}: not a list of images"))
                continue
            entries.extend(self._entry(base, cls, i, item) for i, item in enumerate(items))
        return entries

    def _find_image_base(self, classes: list[str]) -> Path:
        names = (self.images_option,) if self.images_option is not None else _NWPU_IMAGE_DIRS
        for name in names:
            base = inside_root(self.root, name)
            if base is not None and any((base / c).is_dir() for c in classes if inside_root(base, c)):
                return base
        looked = ", ".join("the root" if n == "." else f"{n}/" for n in names)
        raise SourceError(f"{self.root} does not look like {self.name}: no class folder such as "
                          f"{classes[0] if classes else '<class>'}/ under {looked}")

    def _entry(self, base: Path, cls: str, index: int, item: object) -> _Entry | Issue:
        where = f"{cls}[{index}]"
        folder = inside_root(base, cls)
        if folder is None:
            return Issue(kind="skip", code=IssueCode.PATH_OUTSIDE_FOLDER, file=self.ann_name,
                         reason=f"{where}: class name {cls!r} leaves the dataset root")
        if not isinstance(item, dict):
            return Issue(kind="skip", code=IssueCode.MALFORMED_ENTRY, file=self.ann_name,
                         reason=f"{where}: not an object")
        keys = sorted((int(m.group(1) or 0), k) for k in item if (m := _RAW_KEY.fullmatch(k)))
        filename = item.get("filename")
        provenance: dict[str, str | int] = {"class": cls}
        if isinstance(filename, str):
            provenance["filename"] = filename
        if isinstance(item.get("imgid"), (int, str)):
            provenance["imgid"] = item["imgid"]
        # real names already carry the class (airplane_001.jpg); a bare 001.jpg would recur in every class
        stem = Path(filename).stem if isinstance(filename, str) else ""
        prefix = "" if stem.startswith(cls) else re.sub(r"[^\w.-]+", "_", cls) + "_"
        return _Entry(where=where, split=item.get("split"), filename=filename,
                      texts=tuple(item[k] for _, k in keys), folder=folder, scene_class=readable(cls),
                      provenance=provenance, id_prefix=prefix)
