"""Scene classification folders: NWPU-RESISC45, AID and UC Merced Land Use, one folder per class.

References:
    G. Cheng, J. Han, X. Lu, "Remote Sensing Image Scene Classification: Benchmark and State of the
    Art", Proceedings of the IEEE 105(10), 2017 (NWPU-RESISC45).
    G.-S. Xia et al., "AID: A Benchmark Data Set for Performance Evaluation of Aerial Scene
    Classification", IEEE TGRS 55(7), 2017.
    Y. Yang, S. Newsam, "Bag-of-Visual-Words and Spatial Extensions for Land-Use Classification",
    ACM SIGSPATIAL GIS 2010 (UC Merced Land Use).
    Homepages, licences and citations as the authors state them: each class's `card`.

On-disk layouts assumed (from /work/shared/SOURCE-FORMATS.md and public loaders' class lists):

    NWPU-RESISC45  root/airplane/airplane_001.jpg          45 classes, snake_case folders, 256x256
    AID            root/BaseballField/baseballfield_1.jpg  30 classes, CamelCase folders, 600x600
    UC Merced      root/Images/agricultural/agricultural00.tif
                                                           21 classes, run-together lower-case
                                                           folders (baseballdiamond), 256x256 mostly

The class folders are looked for in the root; failing that, one or two levels down, through an
`Images/` folder or through the only folder the current one holds (archives unpack to
NWPU-RESISC45/NWPU-RESISC45/, AID/AID/ or UCMerced_LandUse/Images/; these nestings are probed, not
verified for every copy). A folder holds class folders when at least one of its subfolders holds an
image directly. The datasets ship no splits: every sample is split "train", unless the folder found
holds train/, val/ and/or test/ subfolders that each hold class folders (a copy someone split), which
are then the splits, in that order.

scene_class is the class name in words: the dataset's known class whose letters match the folder
name ('BaseballField' -> 'baseball field', 'baseballdiamond' -> 'baseball diamond': UC Merced's
run-together names cannot be split by rule, so its 21 names are spelled out below), else
language.readable(folder) with one warning per unknown folder. image_id is the file stem when it
starts with the folder name, letters compared (all three datasets name files so), else
"<folder>_<stem>"; an id already taken in the split (one stem with two suffixes) gets the file's
suffix appended, then a number. `vocabulary` is, per instance, the scene classes found, in folder
order (the class attribute lists the dataset's known classes). gsd: UC Merced's 1 foot (0.3048 m)
per pixel; NWPU-RESISC45 (0.2-30 m) and AID (0.5-8 m) vary per image, unrecorded: None.

Bad data never raises: files that are not images (hidden files such as .DS_Store and ._x.jpg
included) and subfolders inside a class folder are counted in one warning per folder; an empty class
folder is a warning.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from rsgpt4v.core.card_facts import UNKNOWN, CardFacts, License
from rsgpt4v.core.issue_codes import IssueCode
from rsgpt4v.core.schema import Issue, Sample
from rsgpt4v.language.words import readable
from rsgpt4v.sources.base import IMAGE_SUFFIXES, SPLIT_ORDER, Source, SourceError

_NESTING_LIMIT = 2  # wrapper folders below the root: UCMerced_LandUse/Images/


def _squash(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _subdirs(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir()
                  if d.is_dir() and not d.name.startswith(".") and d.name != "__MACOSX")


def _is_image(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and path.suffix.lower() in IMAGE_SUFFIXES


def _holds_classes(folder: Path) -> bool:
    return any(any(_is_image(p) for p in d.iterdir()) for d in _subdirs(folder))


class _SceneFolders(Source):
    """A dataset laid out as one folder of images per scene class."""

    task_kind = "classification"
    tiled = False
    exhaustive_labels = False
    label_tasks: frozenset[str] = frozenset()
    title: ClassVar[str]
    example: ClassVar[str]
    gsd: ClassVar[float | None] = None

    def __init__(self, root: Path, split: str | None = None) -> None:
        super().__init__(root, split)
        self.known = {_squash(c): c for c in type(self).vocabulary}
        self.splits = self._find_splits()
        self.vocabulary = tuple(dict.fromkeys(
            self._scene_class(d.name) for _, folder in self.splits for d in _subdirs(folder)))

    def _find_splits(self) -> list[tuple[str, Path]]:
        folder, splits = self.root, self._splits_in(self.root)
        for _ in range(_NESTING_LIMIT):
            if splits:
                break
            subs = _subdirs(folder)
            if (folder / "Images").is_dir():
                folder = folder / "Images"
            elif len(subs) == 1:
                folder = subs[0]
            else:
                break
            splits = self._splits_in(folder)
        if not splits:
            raise SourceError(f"{self.root} does not look like {self.title}: expected one folder of images per "
                              f"class ({self.example}), in the root or one or two folders below it")
        return self.select_split(splits, lambda s: s[0])

    @staticmethod
    def _splits_in(folder: Path) -> list[tuple[str, Path]]:
        """train/, val/, test/ when they all hold class folders, else the folder itself as "train"."""
        present = [(s, folder / s) for s in SPLIT_ORDER if (folder / s).is_dir()]
        if present and all(_holds_classes(d) for _, d in present):
            return present
        return [("train", folder)] if _holds_classes(folder) else []

    def _scene_class(self, folder: str) -> str:
        return self.known.get(_squash(folder)) or readable(folder)

    def __iter__(self) -> Iterator[Sample | Issue]:
        for split, folder in self.splits:
            used: set[str] = set()
            for class_dir in _subdirs(folder):
                yield from self._iter_class(split, class_dir, used)

    def _iter_class(self, split: str, class_dir: Path, used: set[str]) -> Iterator[Sample | Issue]:
        rel = self.relative(class_dir)
        scene = self._scene_class(class_dir.name)
        if _squash(class_dir.name) not in self.known:
            yield Issue(kind="warning", code=IssueCode.UNKNOWN_CATEGORY, file=rel,
                        reason=f"class folder {class_dir.name!r} is not one of the {len(self.known)} {self.title} "
                               f"classes; kept as {scene!r}")
        entries = sorted(class_dir.iterdir())
        images = [p for p in entries if _is_image(p)]
        if others := len(entries) - len(images):
            yield Issue(kind="warning", code=IssueCode.NON_IMAGE_FILE, file=rel,
                        reason=f"{others} non-image files ignored")
        if not images:
            yield Issue(kind="warning", code=IssueCode.EMPTY_FOLDER, file=rel, reason="empty class folder: no images")
        for image in images:
            yield Sample(source=self.name, split=split, image_id=self._image_id(class_dir.name, image, used),
                         image_path=image.resolve(), rel_image=self.relative(image), scene_class=scene,
                         gsd=self.gsd, provenance={"class_folder": class_dir.name})

    @staticmethod
    def _image_id(folder: str, image: Path, used: set[str]) -> str:
        base = image.stem if _squash(image.stem).startswith(_squash(folder)) else f"{folder}_{image.stem}"
        image_id = base if base not in used else f"{base}_{image.suffix.lower().lstrip('.')}"
        n = 2
        while image_id in used:
            image_id, n = f"{base}_{n}", n + 1
        used.add(image_id)
        return image_id


RESISC45_CARD = CardFacts(
    title="NWPU-RESISC45",
    homepage="https://gcheng-nwpu.github.io/#Datasets",
    license=License(id="cc-by-nc-4.0", name="CC BY-NC 4.0", link="https://creativecommons.org/licenses/by-nc/4.0/",
                    stated_in='https://gcheng-nwpu.github.io/#Datasets: "This dataset is freely available under the '
                              'CC BY-NC 4.0 license agreement."'),
    citation="""@article{Cheng_2017,
   title={Remote Sensing Image Scene Classification: Benchmark and State of the Art},
   volume={105},
   ISSN={1558-2256},
   url={http://dx.doi.org/10.1109/JPROC.2017.2675998},
   DOI={10.1109/jproc.2017.2675998},
   number={10},
   journal={Proceedings of the IEEE},
   publisher={Institute of Electrical and Electronics Engineers (IEEE)},
   author={Cheng, Gong and Han, Junwei and Lu, Xiaoqiang},
   year={2017},
   month={Oct},
   pages={1865-1883}
}""",
    citation_from="the Crossref export of the paper the authors cite in text on their page (as tensorflow/datasets' "
                  "resisc45 uses it)",
)
AID_CARD = CardFacts(
    title="AID",
    homepage="https://captain-whu.github.io/AID/",
    license=License(id=UNKNOWN, name=UNKNOWN, stated_in="https://captain-whu.github.io/AID/ states no licence"),
    citation="""@article{xia2017aid,
  title={AID: A Benchmark Data Set for Performance Evaluation of Aerial Scene Classification},
  author={Xia, Gui-Song and Hu, Jingwen and Hu, Fan and Shi, Baoguang and Bai, Xiang and Zhong, Yanfei and Zhang, Liangpei},
  journal={IEEE Transactions on Geoscience and Remote Sensing},
  volume={55}, number={7}, pages={3965--3981}, year={2017},
  doi={10.1109/TGRS.2017.2685945}
}""",
    citation_from="put together from the citation text on the authors' page (authors, journal, volume, pages) and "
                  "the DOI in the paper's reference entries; the authors publish no BibTeX",
)
UCM_CARD = CardFacts(
    title="UC Merced Land Use",
    homepage="http://weegee.vision.ucmerced.edu/datasets/landuse.html",
    license=License(id=UNKNOWN, name=UNKNOWN,
                    stated_in='second-hand: the page, as tensorflow/datasets and others reproduce it, names no '
                              'licence; it says the dataset is "meant for research purposes" and calls the imagery '
                              '"public domain" (USGS National Map Urban Area Imagery); the page itself was not read',
                    second_hand=True),
    citation="""@inproceedings{yang2010bag,
  title={Bag-of-visual-words and spatial extensions for land-use classification},
  author={Yang, Yi and Newsam, Shawn},
  booktitle={Proceedings of the 18th SIGSPATIAL International Conference on Advances in Geographic Information Systems},
  pages={270--279},
  year={2010},
  doi={10.1145/1869790.1869829}
}""",
    citation_from="put together from the citation text on the authors' page (as reproduced by tensorflow/datasets) "
                  "with pages and DOI from public copies; the authors publish no BibTeX",
    images="USGS National Map Urban Area Imagery, which the page calls public domain",
)


class NWPURESISC45(_SceneFolders):
    name = "nwpu-resisc45"
    description = "NWPU-RESISC45 scene classification (45 classes), one folder per class"
    split_rule = "no official split: every image -> train, unless the root holds train/, val/, test/ class folders"
    title = "NWPU-RESISC45"
    card = RESISC45_CARD
    example = "airplane/airplane_001.jpg"
    vocabulary = tuple(readable(c) for c in (
        "airplane", "airport", "baseball_diamond", "basketball_court", "beach", "bridge", "chaparral",
        "church", "circular_farmland", "cloud", "commercial_area", "dense_residential", "desert", "forest",
        "freeway", "golf_course", "ground_track_field", "harbor", "industrial_area", "intersection",
        "island", "lake", "meadow", "medium_residential", "mobile_home_park", "mountain", "overpass",
        "palace", "parking_lot", "railway", "railway_station", "rectangular_farmland", "river",
        "roundabout", "runway", "sea_ice", "ship", "snowberg", "sparse_residential", "stadium",
        "storage_tank", "tennis_court", "terrace", "thermal_power_station", "wetland",
    ))


class AID(_SceneFolders):
    name = "aid"
    description = "AID aerial scene classification (30 classes), one folder per class"
    split_rule = "no official split: every image -> train, unless the root holds train/, val/, test/ class folders"
    title = "AID"
    card = AID_CARD
    example = "BaseballField/baseballfield_1.jpg"
    vocabulary = tuple(readable(c) for c in (
        "Airport", "BareLand", "BaseballField", "Beach", "Bridge", "Center", "Church", "Commercial",
        "DenseResidential", "Desert", "Farmland", "Forest", "Industrial", "Meadow", "MediumResidential",
        "Mountain", "Park", "Parking", "Playground", "Pond", "Port", "RailwayStation", "Resort", "River",
        "School", "SparseResidential", "Square", "Stadium", "StorageTanks", "Viaduct",
    ))


class UCMerced(_SceneFolders):
    name = "ucm"
    description = "UC Merced Land Use scene classification (21 classes), Images/<class>/ folders"
    split_rule = "no official split: every image -> train, unless the root holds train/, val/, test/ class folders"
    title = "UC Merced"
    card = UCM_CARD
    example = "Images/agricultural/agricultural00.tif"
    gsd = 0.3048  # one foot per pixel, USGS urban area orthoimagery
    vocabulary = (
        "agricultural", "airplane", "baseball diamond", "beach", "buildings", "chaparral",
        "dense residential", "forest", "freeway", "golf course", "harbor", "intersection",
        "medium residential", "mobile home park", "overpass", "parking lot", "river", "runway",
        "sparse residential", "storage tanks", "tennis court",
    )
