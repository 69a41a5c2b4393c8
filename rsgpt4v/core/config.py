"""Build configuration: the YAML defaults in configs/, a user's YAML on top, then CLI flags on top."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rsgpt4v.core.problems import Lines, UnreadableYAML, line_of, read_yaml, validation_problem
from rsgpt4v.core.resources import resource_dir


class _Section(BaseModel):
    # strict: `true` is no number and `"5"` no integer; no infinities: a rate, cost or size of inf is a mistake.
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class ModelConfig(_Section):
    name: str
    temperature: float = Field(ge=0, le=2)
    # Per stage, overriding `temperature`: dialogues gain from variety, object notes from care.
    stage_temperature: dict[Literal["local", "global", "dialogue"], Annotated[float, Field(ge=0, le=2)]] = Field(
        default_factory=dict)
    max_output_tokens: dict[str, Annotated[int, Field(gt=0, le=1_000_000)]]
    # A bundled backend profile's name (configs/backends/) or a profile file; None: start from OpenAI's
    # and switch off what the server refuses (rsgpt4v/llm/profile.py).
    profile: str | None = None
    request_timeout_s: float = Field(gt=0, le=86_400)

    def temperature_for(self, stage: str) -> float:
        """The stage's own temperature where the config gives one, else the general one."""
        return self.stage_temperature.get(stage, self.temperature)  # type: ignore[call-overload]


class ImageConfig(_Section):
    detail: Literal["low", "high", "auto"]
    max_side: int = Field(ge=64, le=100_000)
    encode: Literal["jpeg", "png"]
    jpeg_quality: int = Field(ge=10, le=100)
    max_pixels: int = Field(gt=0, le=10**11)
    workers: int = Field(ge=0, le=1024)


class TilingConfig(_Section):
    window: int = Field(ge=64, le=1_000_000)
    overlap: int = Field(ge=0)
    min_visible: float = Field(gt=0, le=1)
    context_visible: float = Field(gt=0, le=1)
    skip_empty: bool

    @model_validator(mode="after")
    def _stride(self) -> TilingConfig:
        # A window that does not advance by a useful step makes millions of near-identical windows.
        if self.overlap > self.window // 2:
            raise ValueError(f"overlap {self.overlap} must be at most half the window ({self.window // 2})")
        return self


class LocalConfig(_Section):
    max_objects: int = Field(ge=1)
    overflow: Literal["summarise", "chunk"]
    output_tokens_per_object: int = Field(ge=1)
    output_tokens_base: int = Field(ge=0)
    send_clean_image: bool
    one_image: Literal["side_by_side", "marked"]
    save_marked: bool
    max_relations: int = Field(ge=0)
    grounding_max_instances: int = Field(ge=1)


class DialogueConfig(_Section):
    min_turns: int = Field(ge=1, le=100)
    max_turns: int = Field(ge=1, le=100)
    include_image: bool

    @model_validator(mode="after")
    def _turns(self) -> DialogueConfig:
        if self.min_turns > self.max_turns:
            raise ValueError(f"min_turns {self.min_turns} is more than max_turns {self.max_turns}")
        return self


class TasksConfig(_Section):
    caption_mode: Literal["per_caption", "per_image"]
    vqa_max_turns: int = Field(ge=1)
    short_answer_words: int = Field(ge=0)
    short_answer_suffix: str
    classification_choices: int = Field(ge=0)
    presence_negatives: int = Field(ge=0)
    exclude_difficult: bool


class QCConfig(_Section):
    enabled: bool
    counts: bool
    absent_categories: bool
    absence_exempt: list[str]
    max_words: dict[str, Annotated[int, Field(gt=0)]]
    min_words: dict[str, Annotated[int, Field(ge=0)]]
    refusal_phrases: list[str]
    meta_phrases: list[str]
    synonyms: dict[str, list[str]]
    proper_name_kinds: list[str]
    allowed_capitalised: list[str]
    description_openings: list[str]
    min_reasoning_share: float = Field(ge=0, le=1)
    open_first_question: bool

    @model_validator(mode="after")
    def _word_limits(self) -> QCConfig:
        for kind, least in self.min_words.items():
            if kind in self.max_words and least > self.max_words[kind]:
                raise ValueError(f"min_words.{kind} {least} is more than max_words.{kind} {self.max_words[kind]}")
        return self


class JudgeConfig(_Section):
    """The judge stage: a second model checks every answer against the image (off without a model)."""

    model: str | None = None
    temperature: float = Field(ge=0, le=2)
    max_output_tokens: int = Field(gt=0, le=1_000_000)


# Far above any provider's tier, so a value past them is a typo (or `inf`), not a plan.
MAX_RPM = 10_000_000
MAX_TPM = 10**11


class RateLimits(_Section):
    rpm: float | None = Field(default=None, gt=0, le=MAX_RPM)
    tpm: float | None = Field(default=None, gt=0, le=MAX_TPM)


class EngineConfig(_Section):
    concurrency: int = Field(ge=1, le=100_000)
    rpm: float | None = Field(default=None, gt=0, le=MAX_RPM)
    tpm: float | None = Field(default=None, gt=0, le=MAX_TPM)
    limits: dict[str, RateLimits] = Field(default_factory=dict)
    attempts: int = Field(ge=1, le=100)
    transport_attempts: int = Field(ge=1, le=100)
    backoff_s: float = Field(gt=0, le=3_600)
    stop_after_transport_failures: int = Field(ge=1)
    max_pixels_in_flight: int = Field(gt=0, le=10**12)
    max_cost_usd: float | None = Field(default=None, gt=0, le=10**9)
    repair_rounds: int = Field(ge=0, le=100)
    reask_rate: float = Field(ge=0, le=10)
    claim_lease_s: float = Field(gt=0, le=3_600)

    def limits_for(self, model: str) -> RateLimits:
        """The model's own limits where the config names it, else the general ones."""
        own = self.limits.get(model)
        return RateLimits(rpm=own.rpm if own and own.rpm else self.rpm, tpm=own.tpm if own and own.tpm else self.tpm)


class BatchConfig(_Section):
    max_lines: int = Field(ge=1, le=50_000)
    max_bytes: int = Field(ge=1_000, le=200_000_000)
    poll_s: float = Field(ge=0, le=86_400)


class OutputConfig(_Section):
    image_format: Literal["auto", "png", "jpg"]
    box_format: Literal["llava", "geochat", "qwen2vl", "qwen25vl", "pixel", "qwen"]
    box_space: Literal["square", "image"]
    max_detection_boxes: int = Field(ge=1)
    max_region_turns: int = Field(ge=1)
    strict: bool
    max_failed_share: float = Field(ge=0, le=1)
    save_requests: bool


class BuildConfig(_Section):
    seed: int = Field(ge=-(2**63), lt=2**63)
    model: ModelConfig
    image: ImageConfig
    tiling: TilingConfig
    local: LocalConfig
    dialogue: DialogueConfig
    stages: list[Literal["local", "global", "dialogue"]]
    tasks: TasksConfig
    qc: QCConfig
    judge: JudgeConfig
    engine: EngineConfig
    batch: BatchConfig
    output: OutputConfig

    @model_validator(mode="after")
    def _stage_list(self) -> BuildConfig:
        if len(set(self.stages)) < len(self.stages):
            raise ValueError(f"stages {self.stages} names a stage twice")
        if "dialogue" in self.stages and "global" not in self.stages:
            raise ValueError("stages: dialogue is written from the global stage's answer, so it needs global")
        return self


class ConfigError(Exception):
    """A config file that cannot be read or does not validate; the message names the file."""


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path) -> tuple[dict[str, Any], Lines]:
    try:
        data, lines = read_yaml(path, "config")
    except UnreadableYAML as exc:
        raise ConfigError(str(exc)) from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: a config file must be a mapping of sections")
    return data, lines


def _holds(data: dict[str, Any], loc: tuple[Any, ...]) -> bool:
    for part in loc:
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


def load_config(path: Path | None = None, overrides: dict[str, Any] | None = None) -> BuildConfig:
    """Defaults, then the user's file, then `overrides` (nested dict, e.g. from CLI flags); ConfigError
    names the file and line of the first fault, or the command line when an override is at fault."""
    default = resource_dir("configs") / "default.yaml"
    data, lines = _read_yaml(default)
    where: tuple[Path, Lines] = (default, lines)
    if path is not None:
        own, lines = _read_yaml(Path(path))
        data, where = _merge(data, own), (Path(path), lines)
    data = _merge(data, overrides or {})
    try:
        return BuildConfig.model_validate(data)
    except ValidationError as exc:
        loc = tuple(exc.errors()[0]["loc"])
        if _holds(overrides or {}, loc[:-1] if exc.errors()[0]["type"] == "missing" else loc):
            raise ConfigError(f"command line: {validation_problem(exc)}") from None
        file, lines = where
        line = line_of(lines, loc)
        raise ConfigError(f"{file}:{line}: {validation_problem(exc)}" if line is not None
                          else f"{file}: {validation_problem(exc)}") from None
