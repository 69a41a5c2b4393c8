"""The editable prompt files of prompts/: loading, hashing and rendering them.

Stage files (the three generating stages and the judge) hold `system`, `user` and `retry` templates
in string.Template syntax; instructions.yaml holds the pools of paraphrased instructions template
tasks draw from.

A stage file may also hold `examples`, a list of worked examples: its `system` text then says where
one goes with `$example`, and each request gets the one a hash of its key picks (`system`), so the
model does not copy one example into every answer and a rerun sends the same bytes. A file without
`examples` keeps its single example inside `system`.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from rsgpt4v.core.problems import UnreadableYAML, parse_yaml
from rsgpt4v.core.resources import resource_dir

STAGES = ("local", "global", "dialogue")
JUDGE = "judge"
# Every stage with a prompt file: the generating stages, whose answers become records, and the judge.
PROMPTED = (*STAGES, JUDGE)
_STAGE_KEYS = ("system", "user", "retry")
# The variables the code gives each template (see prompting/stages.py): what `load` renders them with.
_RETRY_VALUES = ("attempt", "max_attempts", "reason")
_USER_VALUES = {
    "local": ("image_width", "image_height", "gsd_note", "n_total", "n_listed", "object_list", "omitted", "context",
              "hints", "images_note"),
    "global": ("image_width", "image_height", "gsd_note", "counts", "objects", "hints"),
    "dialogue": ("caption", "description", "counts", "objects", "hints", "min_turns", "max_turns"),
    JUDGE: ("image_width", "image_height", "gsd_note", "counts", "objects", "sentences"),
}


class PromptError(Exception):
    """A prompt file that is missing, malformed, or asks for a variable the code does not give."""


@dataclass(frozen=True)
class PromptSet:
    folder: Path
    stages: dict[str, dict[str, str]]
    instructions: dict[str, list[str]]
    shas: dict[str, str]
    examples: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def load(cls, folder: Path | None = None) -> PromptSet:
        folder = Path(folder) if folder is not None else resource_dir("prompts")
        stages: dict[str, dict[str, str]] = {}
        examples: dict[str, list[str]] = {}
        shas: dict[str, str] = {}
        for stage in PROMPTED:
            path = folder / f"{stage}.yaml"
            data, shas[stage] = _read(path)
            missing = [k for k in _STAGE_KEYS if not isinstance(data.get(k), str)]
            if missing:
                raise PromptError(f"{path}: missing text for {', '.join(missing)}")
            stages[stage] = {k: data[k] for k in _STAGE_KEYS}
            examples[stage] = _examples(path, data)
        pools, shas["instructions"] = _read(folder / "instructions.yaml")
        for key, pool in pools.items():
            if not (isinstance(pool, list) and pool and all(isinstance(p, str) for p in pool)):
                raise PromptError(f"{folder / 'instructions.yaml'}: {key} must be a non-empty list of strings")
            for text in pool:
                if not Template(text).is_valid():
                    raise PromptError(f"{folder / 'instructions.yaml'}: {key}: {text!r} has a bad placeholder "
                                      "(write a literal $ as $$)")
        prompts = cls(folder=folder, stages=stages, instructions=pools, shas=shas, examples=examples)
        prompts.check()
        return prompts

    def check(self) -> None:
        """Render every stage template once with placeholder values (the system text with each of its
        worked examples), so a broken one stops the run before the first (paid) request rather than after."""
        for stage in PROMPTED:
            for example in self.examples.get(stage) or [""]:
                self.render(stage, "system", example=example.strip())
            self.render(stage, "user", **dict.fromkeys(_USER_VALUES[stage], "1"))
            self.render(stage, "retry", **dict.fromkeys(_RETRY_VALUES, "1"))

    def example_index(self, stage: str, key: str) -> int:
        """Which worked example the request with `key` gets: a hash, so reruns pick the same one."""
        n = len(self.examples.get(stage) or ())
        return int(hashlib.sha256(f"{stage}|{key}".encode()).hexdigest()[:12], 16) % n if n else 0

    def system(self, stage: str, key: str) -> str:
        """The stage's system text with the worked example chosen for `key` (see `example_index`)."""
        examples = self.examples.get(stage)
        if not examples:
            return self.render(stage, "system")
        return self.render(stage, "system", example=examples[self.example_index(stage, key)].strip())

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


def _examples(path: Path, data: dict) -> list[str]:
    """The worked examples of a stage file; none when its `system` text holds its only example."""
    examples = data.get("examples")
    uses = "$example" in data["system"] or "${example}" in data["system"]
    if examples is None:
        if uses:
            raise PromptError(f"{path}: system uses $example but the file has no examples")
        return []
    if not (isinstance(examples, list) and examples and all(isinstance(e, str) and e.strip() for e in examples)):
        raise PromptError(f"{path}: examples must be a non-empty list of texts")
    if not uses:
        raise PromptError(f"{path}: the file has examples but system does not say where one goes ($example)")
    return examples


def _read(path: Path) -> tuple[dict, str]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PromptError(f"{path}: cannot read prompt file ({exc.strerror})") from None
    try:
        data, _ = parse_yaml(raw, path, "prompt file")
    except UnreadableYAML as exc:
        raise PromptError(str(exc)) from None
    if not isinstance(data, dict):
        raise PromptError(f"{path}:1: expected a mapping")
    return data, hashlib.sha256(raw).hexdigest()[:16]
