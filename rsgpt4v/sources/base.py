"""The interface every source adapter implements, and helpers adapters share.

An adapter reads one dataset family from its original on-disk layout and yields, in a stable
order, `Sample`s and `Issue`s (skipped samples or lines, warnings); it never raises on bad data.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import ClassVar, TypeVar
from xml.parsers.expat import ErrorString

from rsgpt4v.core.card_facts import CardFacts
from rsgpt4v.core.issue_codes import IssueCode
from rsgpt4v.core.schema import Defect, Issue, Obj, Point, Sample
from rsgpt4v.imaging.geometry import polygon_area

_T = TypeVar("_T")


class SourceError(Exception):
    """The root given cannot be read as this source at all (wrong folder, nothing found)."""


class Source(ABC):
    """A dataset family on disk.

    Subclasses set `name` (the `--source` value), `description` (one line for `rsgpt4v sources`),
    `vocabulary` (known category names, may be empty), `task_kind` (what the dataset is for, as
    `rsgpt4v sources` shows it), `split_rule` (how the dataset's own files name each sample's split,
    for `rsgpt4v sources`) and what the pipeline, QC and the template tasks act on:

    - `tiled`: large images are cut into windows. Only where annotations speak of objects, not of
      the whole image (a caption, a question or a scene class would not hold for a window).
    - `exhaustive_labels`: every object of the dataset's categories is labelled, so the labels'
      counts are true counts and a category without labels is absent. Not so for a grounding
      dataset, which labels only the objects its expressions refer to.
    - `label_tasks`: the template tasks made from the object labels (detection, counting, presence);
      captions, questions, expressions and scene classes make their own records wherever present.

    `card` holds the dataset's card facts (homepage, citation, licence as its authors state it,
    version), which a build writes into its manifest for the dataset card; an adapter whose facts
    depend on its options (a version, a variant) refines them in `card_facts`.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    split_rule: ClassVar[str] = ""
    vocabulary: ClassVar[tuple[str, ...]] = ()
    task_kind: ClassVar[str] = "detection"
    tiled: ClassVar[bool] = True
    exhaustive_labels: ClassVar[bool] = True
    label_tasks: ClassVar[frozenset[str]] = frozenset({"detection", "counting", "presence"})
    # One sentence per constructor option (`-O KEY=VALUE`), as `rsgpt4v sources` explains it.
    options_help: ClassVar[dict[str, str]] = {}
    card: ClassVar[CardFacts | None] = None

    def card_facts(self) -> CardFacts:
        """The dataset card facts of the data this adapter reads; a plugin without `card` claims nothing."""
        return self.card or CardFacts.unstated(self.name)

    def __init__(self, root: Path, split: str | None = None) -> None:
        self.root = Path(root)
        self.split = split
        if not self.root.is_dir():
            raise SourceError(f"--root {self.root} is not a folder")

    @abstractmethod
    def __iter__(self) -> Iterator[Sample | Issue]:
        """Samples and issues, in a deterministic order; each issue names its `IssueCode`, which the run
        report counts (a helper that does not know where an entry is returns a `Defect`)."""

    def relative(self, path: Path) -> str:
        """`path` relative to the root, with forward slashes, for provenance and messages."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()

    def select_split(self, found: Sequence[_T], split_of: Callable[[_T], str]) -> list[_T]:
        """All of `found` when no split was asked for, else the items of that split; SourceError naming
        the splits found when there are none."""
        if self.split is None:
            return list(found)
        chosen = [item for item in found if split_of(item) == self.split]
        if not chosen:
            names = ", ".join(sorted({split_of(item) for item in found}, key=split_key))
            raise SourceError(f"no split {self.split!r} under {self.root} (found: {names})")
        return chosen


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
SPLIT_ORDER = ("train", "val", "test")
MIN_AREA = 1.0  # px^2; a smaller object is an annotation slip, not something to describe
MAX_COORDINATE = 1e7  # px; far beyond any image image.max_pixels lets through


def split_key(name: str) -> tuple[int, str]:
    """Sort key for split names: train, val, test, then any other name alphabetically."""
    return (SPLIT_ORDER.index(name) if name in SPLIT_ORDER else len(SPLIT_ORDER), name)


def visible_files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """The files in `folder` with one of `suffixes` (any case), by name; hidden files such as macOS
    `._x` resource forks are not data."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in suffixes)


def inside_root(root: Path, relative: str) -> Path | None:
    """`root / relative`, or None when the path is absolute or climbs out of `root` (`../`)."""
    candidate = Path(relative)
    if candidate.is_absolute() or ".." in candidate.parts:
        return None
    return root / candidate


def finite_answer(value: object) -> str | None:
    """A VQA answer given as a JSON string or number, as text; None for nothing usable (a boolean,
    blank text, NaN or infinity, which Python's json reads from `NaN` and `Infinity`)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        if value.is_integer():
            value = int(value)
    text = str(value).strip()
    return text or None


def find_image(folder: Path, name: str) -> Path | None:
    """`folder/name`, or the same stem with another image suffix (copies of UCM and Sydney
    reference `.jpg` where the files are `.tif`, and the reverse)."""
    exact = folder / name
    if is_file(exact):
        return exact
    stem = Path(name).stem
    for suffix in IMAGE_SUFFIXES:
        for cased in (suffix, suffix.upper()):
            candidate = folder / f"{stem}{cased}"
            if is_file(candidate):
                return candidate
    return None


def is_file(path: Path) -> bool:
    """Path.is_file for names that come from annotations: a name too long for the file system, or
    holding a NUL byte, is simply not a file there (Path.is_file raises on those)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def read_json(path: Path, name: str, object_pairs_hook: Callable[[list[tuple[str, object]]], object] | None = None
              ) -> tuple[object, Issue | None]:
    """Parsed JSON, or an Issue naming the file (and the line of a syntax error); `object_pairs_hook`
    as for json.loads. Every json adapter reads through here, so hostile files (nesting thousands
    deep, integers thousands of digits long) are one skipped file, not a traceback."""
    try:
        return json.loads(path.read_bytes().decode("utf-8-sig"), object_pairs_hook=object_pairs_hook), None
    except OSError as exc:
        return None, Issue(kind="skip", code=IssueCode.FILE_UNREADABLE, file=name,
                           reason=f"cannot read file ({exc.strerror})")
    except UnicodeDecodeError as exc:
        return None, Issue(kind="skip", code=IssueCode.FILE_UNREADABLE, file=name,
                           reason=f"not UTF-8 text ({exc.reason})")
    except json.JSONDecodeError as exc:
        return None, Issue(kind="skip", code=IssueCode.FILE_SYNTAX_ERROR, file=name, line=exc.lineno,
                           reason=f"invalid JSON: {exc.msg}")
    except RecursionError:
        return None, Issue(kind="skip", code=IssueCode.FILE_SYNTAX_ERROR, file=name,
                           reason="invalid JSON: nested too deeply to read")
    except ValueError:
        # Python refuses integers of more than 4300 digits (CVE-2020-10735): no annotation has one.
        return None, Issue(kind="skip", code=IssueCode.FILE_SYNTAX_ERROR, file=name,
                           reason="invalid JSON: an integer too long to read")


# ---- XML label files (DIOR, FAIR1M) and the checks every detection source makes ----------------

def read_xml(path: Path, name: str) -> tuple[ET.Element | None, Issue | None]:
    """The parsed root element, or an Issue naming the file (and the line of a syntax error)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, Issue(kind="skip", code=IssueCode.FILE_UNREADABLE, file=name,
                           reason=f"cannot read file ({exc.strerror})")
    return parse_xml(data, name)


def parse_xml(data: bytes, name: str) -> tuple[ET.Element | None, Issue | None]:
    """`read_xml` for bytes already read."""
    try:
        return ET.fromstring(data), None
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else None
        return None, Issue(kind="skip", code=IssueCode.FILE_SYNTAX_ERROR, file=name, line=line,
                           reason=f"invalid XML: {ErrorString(exc.code)}")
    except LookupError as exc:  # an <?xml encoding="..."?> Python does not know
        return None, Issue(kind="skip", code=IssueCode.FILE_SYNTAX_ERROR, file=name, line=1,
                           reason=f"invalid XML: {exc.args[0][:80]}")
    except RecursionError:
        return None, Issue(kind="skip", code=IssueCode.FILE_SYNTAX_ERROR, file=name,
                           reason="invalid XML: nested too deeply to read")


def number(parent: ET.Element, tag: str) -> float | Defect:
    """The finite number in `parent/tag`, or why there is none."""
    text = parent.findtext(tag)
    if text is None:
        return Defect(IssueCode.MALFORMED_ENTRY, f"no <{tag}>")
    try:
        value = float(text.strip())
    except ValueError:
        return Defect(IssueCode.MALFORMED_ENTRY, f"<{tag}> {text.strip()!r} is not a number")
    if not math.isfinite(value):
        return Defect(IssueCode.MALFORMED_ENTRY, f"<{tag}> {text.strip()!r} is not finite")
    return value


# DOTA's difficulty: 0 easy, 1 difficult; the devkit's splitter writes 2 for an object cut by the window.
DIFFICULTIES = (0, 1, 2)


def difficulty(text: str | None) -> int | Defect:
    """An object's difficulty flag from its text (absent: 0), or why it is none: it must be one of
    DIFFICULTIES (v1.5/2.0 writers print `1.0`); `1e300`, `-1` or `x` is a corrupt line, not a level."""
    if text is None or not text.strip():
        return 0
    try:
        value = float(text.strip())
    except ValueError:
        value = math.nan
    if not value.is_integer() or int(value) not in DIFFICULTIES:  # also false for NaN and inf
        return Defect(IssueCode.MALFORMED_ENTRY, f"difficult {text.strip()!r} is not one of "
                                                 f"{', '.join(map(str, DIFFICULTIES))}")
    return int(value)


def object_label(index: int, obj: ET.Element, name_tag: str = "name") -> str:
    """`object 2 (airplane)`: how issues point into an XML file, which has no line numbers here."""
    name = (obj.findtext(name_tag) or "").strip()
    return f"object {index}" + (f" ({name})" if name else "")


def checked_polygon(polygon: tuple[Point, ...], shape: str = "box") -> tuple[Point, ...] | Defect:
    """`polygon`, or why it cannot be an object: a coordinate no image could have (it would turn into
    NaN when clipped and vanish), or too small (`shape` names it in the message)."""
    if not all(math.isfinite(v) and abs(v) <= MAX_COORDINATE for point in polygon for v in point):
        return Defect(IssueCode.BAD_COORDINATES, f"{shape} coordinate out of range (beyond +-{MAX_COORDINATE:g} px)")
    area = polygon_area(polygon)
    if area < MIN_AREA:
        return Defect(IssueCode.DEGENERATE_BOX, f"degenerate {shape} (area {area:g} px^2 < {MIN_AREA:g})")
    return polygon


class UnknownCategories:
    """One warning per run for each category outside the dataset's vocabulary, where it is first seen."""

    def __init__(self, known: tuple[str, ...]) -> None:
        self.known = frozenset(known)
        self.seen: set[str] = set()

    def check(self, category: str, file: str, line: int | None = None) -> Issue | None:
        if category in self.known or category in self.seen:
            return None
        self.seen.add(category)
        return Issue(kind="warning", code=IssueCode.UNKNOWN_CATEGORY, file=file, line=line,
                     reason=f"unknown category {category!r} (first seen here); kept")


def parse_objects(elements: list[ET.Element], parse: Callable[[ET.Element], Obj | Defect], file: str,
                  unknown: UnknownCategories, name_tag: str = "name") -> tuple[list[Obj], list[Issue]]:
    """The objects of one XML label file that `parse` accepts, and in file order an Issue for each one it
    skips (named by `object_label`) and each category `unknown` sees for the first time."""
    objects: list[Obj] = []
    issues: list[Issue] = []
    for index, element in enumerate(elements):
        obj = parse(element)
        if isinstance(obj, Defect):
            issues.append(obj.issue("skip", file, where=object_label(index, element, name_tag)))
            continue
        if warning := unknown.check(obj.category, file):
            issues.append(warning)
        objects.append(obj)
    return objects, issues
