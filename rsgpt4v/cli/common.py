"""What every command shares: the options they take alike, logging, and the one error path (an expected
failure as one `error:` line and its exit code)."""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

if TYPE_CHECKING:
    pass


SourceOpt = Annotated[Optional[str], typer.Option("--source", "-s", help="Dataset adapter; see `rsgpt4v sources`.")]


RecipeOpt = Annotated[Optional[str], typer.Option(help="A recipe YAML file, or a bundled recipe's name (rs-gpt4v, "
                                                       "detection, all): every source of a mix at once.")]


DataOpt = Annotated[Optional[Path], typer.Option(help="With --recipe: the folder its relative roots are under.")]


SkipMissingOpt = Annotated[bool, typer.Option("--skip-missing", help="With --recipe: report a source whose root "
                                                                     "is missing and build the rest.")]


RootOpt = Annotated[Optional[Path], typer.Option(help="The dataset folder as downloaded.")]


SampleOpt = Annotated[bool, typer.Option("--sample", help="Use the small synthetic sample bundled with rsgpt4v.")]


ModelOpt = Annotated[Optional[str], typer.Option(help="Model name; default from the config.")]


JudgeOpt = Annotated[Optional[str], typer.Option(
    help="A second model that checks every answer against the image after QC (judge.model; a recipe may name "
         "one). A contradicted answer is asked again once, then dropped. Best not the generating model.")]


ConfigOpt = Annotated[Optional[Path], typer.Option(help="YAML file overriding configs/default.yaml.")]


PromptsOpt = Annotated[Optional[Path], typer.Option(help="Folder of prompt files replacing the bundled prompts/.")]


ProfileOpt = Annotated[Optional[str], typer.Option(
    "--backend-profile", help="What the server accepts: openai, azure, vllm, sglang, ollama, llamacpp, lmstudio, "
                              "generic, or a file from `rsgpt4v doctor --save` (model.profile). Default: start as "
                              "OpenAI and switch off what the server refuses.")]


PricesOpt = Annotated[Optional[Path], typer.Option(help="Price table replacing configs/prices.yaml.")]


LimitOpt = Annotated[Optional[int], typer.Option(min=1, help="Stop after this many images.")]


SplitOpt = Annotated[Optional[str], typer.Option(help="Only this split (train, val, test, ...).")]


OptionOpt = Annotated[Optional[list[str]], typer.Option(
    "--option", "-O", help="Adapter option KEY=VALUE (repeatable); `rsgpt4v sources` lists them.")]


StrictOpt = Annotated[bool, typer.Option(
    "--strict", envvar="RSGPT4V_STRICT",
    help="Stop at the first record that fails after the model answered (exit 2), instead of dropping it with a "
         "record_failed issue and going on (output.strict; the environment variable RSGPT4V_STRICT=1 too).")]


def finite(value: float | None) -> float | None:
    """A float flag's value, refused when it is not a finite number (`inf`, `nan`: typer takes both)."""
    import math

    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


class TqdmHandler(logging.Handler):
    """Log lines that do not tear the progress bars."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        tqdm.write(self.format(record), file=sys.stderr)


def setup_logging(verbose: bool) -> None:
    handler = TqdmHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    for noisy in ("httpx", "httpx2", "openai"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


RESUME = "rerun the same command to resume (answers already received are in the cache)"


def explain(exc: BaseException, cache: Path | None) -> tuple[str, int] | None:
    """An expected failure as one line naming the file and what to do, with its exit code; None for a bug."""
    import errno
    import json
    import sqlite3

    import openai
    import yaml
    from PIL import Image

    if isinstance(exc, OSError):
        where = exc.filename
        if where is None:
            return str(exc), 2
        if exc.errno == errno.ENOSPC:
            return f"{where}: no space left on the device; free some space and {RESUME}", 1
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return f"{where}: {exc.strerror}; choose a folder you can write to", 2
        return f"{where}: {exc.strerror or exc}", 2
    if isinstance(exc, sqlite3.Error):
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            return f"{cache}: {exc}; free some space and {RESUME}", 1
        return f"{cache}: cannot use the response cache ({exc}); give another --cache", 2
    if isinstance(exc, openai.APIConnectionError):
        return f"cannot reach the API ({exc}); check OPENAI_BASE_URL and the network, then {RESUME}", 1
    if isinstance(exc, openai.APIStatusError):
        return f"the API answered {exc.status_code} ({exc.message}); {RESUME}", 1
    if isinstance(exc, UnicodeDecodeError):
        return f"a file is not UTF-8 text ({exc.reason} at byte {exc.start + 1})", 2
    if isinstance(exc, (json.JSONDecodeError, yaml.YAMLError)):
        return f"a file is not valid {'JSON' if isinstance(exc, json.JSONDecodeError) else 'YAML'} ({exc})", 2
    if isinstance(exc, RecursionError):
        return "an input is nested too deeply to read", 2
    if isinstance(exc, Image.DecompressionBombError):
        return f"an image is larger than the pixel limit ({exc})", 2
    if isinstance(exc, ValueError):
        return str(exc), 2
    return None


@contextmanager
def one_error_path(cache: Path | None = None, resume: bool = False):
    """Every command's expected failures as one `error:` line and its exit code (0 ok, 1 stopped by the
    API, the budget or the disk, 2 bad input); Ctrl-C says how to resume where there is something to resume."""
    try:
        yield
    except KeyboardInterrupt:
        raise fail(f"interrupted; {RESUME}" if resume else "interrupted", code=130) from None
    except Exception as exc:
        explained = explain(exc, cache)
        if explained is None:
            raise
        logging.getLogger("rsgpt4v").debug("failure explained as one line", exc_info=True)
        raise fail(*explained) from None


def parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        k, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise fail(f"--shard takes K/N, like 2/8, not {text!r}") from None
    if not 1 <= k <= n:
        raise fail(f"--shard {text}: K must be between 1 and N")
    return k, n


def model_overrides(model: str | None, profile: str | None) -> dict[str, Any]:
    """--model and --backend-profile as overrides of the config's model section."""
    section = {k: v for k, v in (("name", model), ("profile", profile)) if v is not None}
    return {"model": section} if section else {}


def value(setting: object) -> str:
    """A profile setting as its YAML file writes it (true, not True)."""
    return str(setting).lower() if isinstance(setting, bool) else str(setting)
