"""One name for each category of each source: what prompts, template answers, instruction pools and
QC call a dataset's label, so a dataset speaks one language.

A label such as DOTA's `small-vehicle` is a dataset spelling: records say "small vehicle", a model
may also say "car", and QC reads "car" as that category and "small-vehicles" as a leaked spelling.
Categories a source does not list here get their readable form (`BaseballField` -> "baseball field").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from rsgpt4v.language.words import plural, readable


@dataclass(frozen=True)
class DisplayName:
    """How records name a category, and the other words a careful writer may use for it."""

    singular: str
    plural: str
    also: tuple[str, ...] = ()

    def counted(self, n: int) -> str:
        """`1 small vehicle`, `14 small vehicles`."""
        return f"{n} {self.singular if n == 1 else self.plural}"

    @property
    def article(self) -> str:
        """`a storage tank`, `an airport`."""
        return f"{'an' if self.singular[0] in 'aeiou' else 'a'} {self.singular}"

    def words(self) -> tuple[str, ...]:
        """Every form QC reads as this category: the name, the other words, their plurals."""
        forms = {self.singular, self.plural}
        for word in self.also:
            forms |= {word, plural(word)}
        return tuple(sorted(forms, key=lambda w: (-len(w), w)))


def _name(singular: str, *also: str, plural_form: str | None = None) -> DisplayName:
    return DisplayName(singular, plural_form or plural(singular), also)


_PLANE = _name("plane", "airplane", "aeroplane", "aircraft", "airliner", "jet")
_RUNNING_TRACK = _name("running track", "athletics track", "ground track field")
_HARBOUR = _name("harbour", "harbor", "pier", "jetty", "quay", "wharf")
_TANK = _name("storage tank", "tank", "oil tank")
_TENNIS = _name("tennis court")
_BASKETBALL = _name("basketball court")

# Per source: dataset spelling -> display name. Shared categories use one object, so "plane" is
# "plane" in DOTA and DIOR alike.
_TABLES: dict[str, dict[str, DisplayName]] = {
    "dota": {
        "plane": _PLANE,
        "baseball-diamond": _name("baseball diamond", "baseball field"),
        "bridge": _name("bridge"),
        "ground-track-field": _RUNNING_TRACK,
        "small-vehicle": _name("small vehicle", "car", "van"),
        "large-vehicle": _name("large vehicle", "bus", "truck", "lorry", "coach", "trailer"),
        "ship": _name("ship", "vessel", "boat"),
        "tennis-court": _TENNIS,
        "basketball-court": _BASKETBALL,
        "storage-tank": _TANK,
        "soccer-ball-field": _name("soccer field", "football pitch", "football field", "soccer pitch"),
        "roundabout": _name("roundabout", "traffic circle"),
        "harbor": _HARBOUR,
        "swimming-pool": _name("swimming pool", "pool"),
        "helicopter": _name("helicopter"),
        "container-crane": _name("container crane", "gantry crane"),
        "airport": _name("airport", "airfield"),
        "helipad": _name("helipad", "landing pad"),
    },
    "dior": {
        "airplane": _PLANE,
        "airport": _name("airport", "airfield"),
        "baseballfield": _name("baseball field", "baseball diamond"),
        "basketballcourt": _BASKETBALL,
        "bridge": _name("bridge"),
        "chimney": _name("chimney"),
        "dam": _name("dam"),
        "expressway-service-area": _name("expressway service area", "service area", "rest area"),
        "expressway-toll-station": _name("expressway toll station", "toll station", "toll plaza"),
        "golffield": _name("golf course", "golf field"),
        "groundtrackfield": _RUNNING_TRACK,
        "harbor": _HARBOUR,
        "overpass": _name("overpass", "flyover"),
        "ship": _name("ship", "vessel", "boat"),
        "stadium": _name("stadium"),
        "storagetank": _TANK,
        "tenniscourt": _TENNIS,
        "trainstation": _name("train station", "railway station"),
        "vehicle": _name("vehicle", "car", "truck", "bus", "van"),
        "windmill": _name("wind turbine", "windmill"),
    },
    "fair1m": {
        "other-ship": _name("ship of another type", plural_form="ships of another type"),
        "other-vehicle": _name("vehicle of another type", plural_form="vehicles of another type"),
        "other-airplane": _name("plane of another type", plural_form="planes of another type"),
        "small car": _name("small car", "car"),
        "truck tractor": _name("truck tractor", "tractor unit"),
    },
}
_TABLES["dior-rsvg"] = _TABLES["dior"]
_ALL = {cat: name for table in _TABLES.values() for cat, name in table.items()}


@cache
def display(category: str, source: str | None = None) -> DisplayName:
    """The display name of `category` in `source` (any source's table when `source` is unknown)."""
    table = _TABLES.get(source or "", {})
    found = table.get(category) or table.get(category.lower()) or _ALL.get(category) or _ALL.get(category.lower())
    if found is not None:
        return found
    return _name(readable(category))


def is_dataset_spelling(category: str) -> bool:
    """Whether writing the label as it is spelt in the dataset gives it away: hyphens, underscores,
    words run together or CamelCase (`small-vehicle`, `storagetank`, `BaseballField`)."""
    if re.search(r"[-_]|[a-z][A-Z]", category):
        return True
    name = display(category)
    run_together = {w.replace(" ", "") for w in (name.singular, *name.also) if " " in w}
    return " " not in category and category.lower() in run_together


def spelling_pattern(category: str) -> re.Pattern[str]:
    """The dataset spelling as text may leak it: any case, singular or plural, with hyphens,
    underscores or nothing between its words (`small-vehicles`, `small_vehicle`, `smallvehicle`)."""
    words = re.split(r"[\s_\-]+", readable(category))
    name = display(category).singular.split()
    forms = {r"[-_]?".join(map(re.escape, w)) for w in (words, name) if len(w) > 1} | {re.escape(category.lower())}
    return re.compile(r"(?<![\w-])(?:" + "|".join(sorted(forms)) + r")(?:s|es)?(?![\w-])")
