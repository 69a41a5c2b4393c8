"""The editable prompt files of prompts/: loading, hashing and rendering them.

Stage files hold `system`, `user` and `retry` templates in string.Template syntax; instructions.yaml
holds the pools of paraphrased instructions template tasks draw from.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path
from string import Template

import yaml

from rsgpt4v.config import yaml_problem
from rsgpt4v.resources import resource_dir

STAGES = ("local", "global", "dialogue")
_STAGE_KEYS = ("system", "user", "retry")
# The variables the code gives each template (see prompting/stages.py): what `load` renders them with.
_RETRY_VALUES = ("attempt", "max_attempts", "reason")
_USER_VALUES = {
    "local": ("image_width", "image_height", "gsd_note", "n_total", "n_listed", "object_list", "omitted", "hints"),
    "global": ("image_width", "image_height", "gsd_note", "counts", "objects", "hints"),
    "dialogue": ("caption", "description", "counts", "objects", "hints", "min_turns", "max_turns"),
}


class PromptError(Exception):
    """A prompt file that is missing, malformed, or asks for a variable the code does not give."""


@dataclass(frozen=True)
class PromptSet:
    folder: Path
    stages: dict[str, dict[str, str]]
    instructions: dict[str, list[str]]
    shas: dict[str, str]

    @classmethod
    def load(cls, folder: Path | None = None) -> PromptSet:
        folder = Path(folder) if folder is not None else resource_dir("prompts")
        stages: dict[str, dict[str, str]] = {}
        shas: dict[str, str] = {}
        for stage in STAGES:
            data, shas[stage] = _read(folder / f"{stage}.yaml")
            missing = [k for k in _STAGE_KEYS if not isinstance(data.get(k), str)]
            if missing:
                raise PromptError(f"{folder / (stage + '.yaml')}: missing text for {', '.join(missing)}")
            stages[stage] = {k: data[k] for k in _STAGE_KEYS}
        pools, shas["instructions"] = _read(folder / "instructions.yaml")
        for key, pool in pools.items():
            if not (isinstance(pool, list) and pool and all(isinstance(p, str) for p in pool)):
                raise PromptError(f"{folder / 'instructions.yaml'}: {key} must be a non-empty list of strings")
            for text in pool:
                if not Template(text).is_valid():
                    raise PromptError(f"{folder / 'instructions.yaml'}: {key}: {text!r} has a bad placeholder "
                                      "(write a literal $ as $$)")
        prompts = cls(folder=folder, stages=stages, instructions=pools, shas=shas)
        prompts.check()
        return prompts

    def check(self) -> None:
        """Render every stage template once with placeholder values, so a broken one stops the run
        before the first (paid) request rather than after."""
        for stage in STAGES:
            self.render(stage, "system")
            self.render(stage, "user", **dict.fromkeys(_USER_VALUES[stage], "1"))
            self.render(stage, "retry", **dict.fromkeys(_RETRY_VALUES, "1"))

    def render(self, stage: str, key: str, **values: object) -> str:
        try:
            return Template(self.stages[stage][key]).substitute(values).strip()
        except KeyError as exc:
            raise PromptError(f"{self.folder / (stage + '.yaml')}: {key} uses ${exc.args[0]}, "
                              f"which the {stage} stage does not provide ({', '.join(sorted(values))})") from None
        except ValueError as exc:
            raise PromptError(f"{self.folder / (stage + '.yaml')}: {key}: {exc} (write a literal $ as $$)") from None

    def instruction(self, pool: str, rng: random.Random, **values: object) -> str:
        """One paraphrase from a pool, chosen by `rng`, with its placeholders filled."""
        try:
            choices = self.instructions[pool]
        except KeyError:
            raise PromptError(f"{self.folder / 'instructions.yaml'}: no pool named {pool!r}") from None
        try:
            return Template(rng.choice(choices)).substitute(values)
        except (KeyError, ValueError) as exc:
            raise PromptError(f"{self.folder / 'instructions.yaml'}: {pool}: bad placeholder {exc}") from None


def _read(path: Path) -> tuple[dict, str]:
    try:
        raw = path.read_bytes()
        data = yaml.safe_load(raw)
    except OSError as exc:
        raise PromptError(f"{path}: cannot read prompt file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise PromptError(f"{path}: not valid YAML ({yaml_problem(exc)})") from None
    if not isinstance(data, dict):
        raise PromptError(f"{path}: expected a mapping")
    return data, hashlib.sha256(raw).hexdigest()[:16]
