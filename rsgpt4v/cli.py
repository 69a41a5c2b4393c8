"""The `rsgpt4v` command line: a thin typer layer over sources, config, the pipeline and the tools."""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

if TYPE_CHECKING:
    from rsgpt4v.core.report import Leakage, RunReport, SourceSection

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Build RS-GPT4V-style instruction data for remote-sensing multimodal LLMs.")

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


def _finite(value: float | None) -> float | None:
    """A float flag's value, refused when it is not a finite number (`inf`, `nan`: typer takes both)."""
    import math

    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number")
    return value


class _TqdmHandler(logging.Handler):
    """Log lines that do not tear the progress bars."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        tqdm.write(self.format(record), file=sys.stderr)


def _setup_logging(verbose: bool) -> None:
    handler = _TqdmHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    for noisy in ("httpx", "httpx2", "openai"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


_RESUME = "rerun the same command to resume (answers already received are in the cache)"


def _explain(exc: BaseException, cache: Path | None) -> tuple[str, int] | None:
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
            return f"{where}: no space left on the device; free some space and {_RESUME}", 1
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return f"{where}: {exc.strerror}; choose a folder you can write to", 2
        return f"{where}: {exc.strerror or exc}", 2
    if isinstance(exc, sqlite3.Error):
        if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            return f"{cache}: {exc}; free some space and {_RESUME}", 1
        return f"{cache}: cannot use the response cache ({exc}); give another --cache", 2
    if isinstance(exc, openai.APIConnectionError):
        return f"cannot reach the API ({exc}); check OPENAI_BASE_URL and the network, then {_RESUME}", 1
    if isinstance(exc, openai.APIStatusError):
        return f"the API answered {exc.status_code} ({exc.message}); {_RESUME}", 1
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
def _one_error_path(cache: Path | None = None, resume: bool = False):
    """Every command's expected failures as one `error:` line and its exit code (0 ok, 1 stopped by the
    API, the budget or the disk, 2 bad input); Ctrl-C says how to resume where there is something to resume."""
    try:
        yield
    except KeyboardInterrupt:
        raise _fail(f"interrupted; {_RESUME}" if resume else "interrupted", code=130) from None
    except Exception as exc:
        explained = _explain(exc, cache)
        if explained is None:
            raise
        logging.getLogger("rsgpt4v").debug("failure explained as one line", exc_info=True)
        raise _fail(*explained) from None


def _parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        k, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise _fail(f"--shard takes K/N, like 2/8, not {text!r}") from None
    if not 1 <= k <= n:
        raise _fail(f"--shard {text}: K must be between 1 and N")
    return k, n


def _run(source: str | None, root: Path | None, sample: bool, split: str | None, options: list[str] | None,
         config: Path | None, overrides: dict[str, Any], opts: Any, force: bool = False) -> dict:
    """Validate the common inputs, then build (or estimate); errors become one line and exit 2.
    A build holds its output folder (see rsgpt4v.core.ownership) for as long as it runs."""
    from rsgpt4v.builder.pipeline import build
    from rsgpt4v.core.config import ConfigError, load_config
    from rsgpt4v.core.ownership import OwnerError, identity, owned
    from rsgpt4v.llm.batch import BatchStateError
    from rsgpt4v.llm.client import MissingKeyError
    from rsgpt4v.llm.cost import PriceError
    from rsgpt4v.llm.profile import ProfileError
    from rsgpt4v.prompting.templates import PromptError
    from rsgpt4v.sources import SourceError, get_source, parse_options, sample_root

    if source is None:
        raise _fail("give --source NAME (or --recipe FILE|NAME)")
    if sample == (root is not None):
        raise _fail("give exactly one of --root PATH or --sample")
    try:
        cfg = load_config(config, overrides)
        adapter = get_source(source)
        data_root = sample_root(source) if sample else root
        if not data_root.exists():
            raise SourceError(f"{data_root}: no such folder; give --root the dataset folder as downloaded")
        reader = adapter(data_root, split=split, **parse_options(adapter, options or []))
        if opts.estimate:
            return build(reader, cfg, opts)
        with owned(opts.out, identity(source, data_root, split, options, opts.shard), force):
            return build(reader, cfg, opts)
    except (ConfigError, SourceError, PromptError, PriceError, MissingKeyError, OwnerError, BatchStateError,
            ProfileError) as exc:
        raise _fail(str(exc)) from None


@app.command()
def sources(
    details: Annotated[bool, typer.Option("--details", help="Also each dataset's card facts: homepage, licence as "
                                                            "its authors state it, version, BibTeX.")] = False,
) -> None:
    """List the source adapters (the values of --source)."""
    from rsgpt4v.core.card_facts import CardFacts
    from rsgpt4v.sources import adapter_options, available

    for name, cls in sorted(available().items()):
        typer.echo(f"{name:<16} {cls.description}")
        if cls.split_rule:
            typer.echo(f"{'':<16}   splits: {cls.split_rule}")
        for option, param in adapter_options(cls).items():
            default = "" if param.default is None else f" (default {param.default!r})"
            typer.echo(f"{'':<16}   -O {option}=...  {cls.options_help.get(option, '')}{default}")
        if details:
            for line in (cls.card or CardFacts.unstated(name)).lines():
                typer.echo(f"{'':<16}   {line}")


@app.command()
def build(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    source: SourceOpt = None,
    recipe: RecipeOpt = None,
    data: DataOpt = None,
    skip_missing: SkipMissingOpt = False,
    root: RootOpt = None,
    sample: SampleOpt = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Offline: the mock model answers, no key needed.")] = False,
    backend: Annotated[Optional[str], typer.Option(
        help="openai (any OpenAI-compatible server via OPENAI_BASE_URL) or mock; default openai.")] = None,
    model: ModelOpt = None,
    backend_profile: ProfileOpt = None,
    judge: JudgeOpt = None,
    config: ConfigOpt = None,
    prompts: PromptsOpt = None,
    prices: PricesOpt = None,
    limit: LimitOpt = None,
    split: SplitOpt = None,
    option: OptionOpt = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for instruction wording and sampling.")] = None,
    concurrency: Annotated[Optional[int], typer.Option(min=1, help="Requests in flight.")] = None,
    rpm: Annotated[Optional[float], typer.Option(
        callback=_finite, min=1, help="Requests per minute to stay under.")] = None,
    tpm: Annotated[Optional[float], typer.Option(
        callback=_finite, min=1, help="Tokens per minute to stay under.")] = None,
    max_cost: Annotated[Optional[float], typer.Option(
        callback=_finite, min=0, help="Stop before spending more than this (USD).")] = None,
    shard: Annotated[Optional[str], typer.Option(help="K/N: build only the K-th of N deterministic shards.")] = None,
    batch: Annotated[bool, typer.Option("--batch", help="Use the Batch API (half price): one pass per stage.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="With --batch: poll and run every pass until done.")] = False,
    batch_engine: Annotated[str, typer.Option(help="With --batch: `api` submits to the provider's Batch API; "
                                                   "`files` writes OUT/batch/requests/*.jsonl for any batch engine "
                                                   "(vLLM run-batch, Ray) and stops.")] = "api",
    cache: Annotated[Optional[Path], typer.Option(help="Response cache file; default OUT/cache.sqlite.")] = None,
    refresh: Annotated[bool, typer.Option("--refresh", help="Ignore cached responses (they are overwritten).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Build into a folder that holds another build or other "
                                                        "files (the other build's files are replaced).")] = False,
    save_marked: Annotated[bool, typer.Option(
        "--save-marked", help="Also write each marked image the local stage sends to OUT/marked/, to check the "
                              "marks (local.save_marked).")] = False,
    save_requests: Annotated[bool, typer.Option(
        "--save-requests", help="Also write each request body as sent (images shortened to their size and digest) "
                                "to OUT/requests/, to read the rendered prompts (output.save_requests).")] = False,
    workers: Annotated[Optional[int], typer.Option(
        min=1, help="Processes that decode, cut and encode window images (image.workers; default one per core).")] = None,
    strict: StrictOpt = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log each step (INFO), not only warnings.")] = False,
) -> None:
    """Build instruction data from a source dataset into OUT/<split>.jsonl, OUT/images/ and OUT/manifest.json."""
    from rsgpt4v.builder.pipeline import BuildOptions, RecordFailed
    from rsgpt4v.llm.batch_files import REQUESTS
    from rsgpt4v.llm.client import BACKENDS
    from rsgpt4v.llm.doctor import DoctorError
    from rsgpt4v.llm.engine import BudgetExceeded, FatalAPIError, ProfileRefused

    _setup_logging(verbose)
    if backend is not None and backend not in BACKENDS:
        raise _fail(f"--backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if dry_run and backend not in (None, "mock"):
        raise _fail(f"--dry-run answers with the mock backend: drop --backend {backend}, or --dry-run")
    backend = "mock" if dry_run else backend or "openai"
    engine = {k: v for k, v in {"concurrency": concurrency, "rpm": rpm, "tpm": tpm, "max_cost_usd": max_cost}.items()
              if v is not None}
    overrides: dict[str, Any] = {"engine": engine}
    if seed is not None:
        overrides["seed"] = seed
    if save_marked:
        overrides["local"] = {"save_marked": True}
    output = {k: True for k, on in (("strict", strict), ("save_requests", save_requests)) if on}
    if output:
        overrides["output"] = output
    if workers is not None:
        overrides["image"] = {"workers": workers}
    overrides.update(_model_overrides(model, backend_profile))
    if judge is not None:
        overrides["judge"] = {"model": judge}
    if batch_engine not in ("api", "files"):
        raise _fail(f"--batch-engine must be api or files, not {batch_engine!r}")
    files = batch and batch_engine == "files"
    if backend == "mock" and batch and not wait and not files:
        raise _fail("the mock's batches live only inside one process: use --dry-run --batch --wait "
                    "(or point OPENAI_BASE_URL at `rsgpt4v fake-server`)")
    opts = BuildOptions(out=out, backend=backend, limit=limit, cache=cache, refresh=refresh,
                        prompts_dir=prompts, prices=prices, shard=_parse_shard(shard), batch=batch,
                        batch_wait=wait and not files, batch_files=out / REQUESTS if files else None,
                        progress=progress)
    try:
        with _one_error_path(cache or out / "cache.sqlite", resume=True):
            if recipe is not None:
                _recipe_alone(root, sample, split, option)
                manifest = _run_recipe(recipe, source, data, skip_missing, config, overrides, seed, opts, force)
            else:
                manifest = _run(source, root, sample, split, option, config, overrides, opts, force)
    except BudgetExceeded as exc:
        raise _fail(f"{exc}; raise --max-cost and rerun the same command to continue (nothing paid is lost)",
                    code=1) from None
    except ProfileRefused as exc:
        raise _fail(f"{exc}; nothing was paid for the refused requests", code=1) from None
    except DoctorError as exc:
        raise _fail(f"probing the server before the batch: {exc}", code=1) from None
    except FatalAPIError as exc:
        raise _fail(f"{exc}; the run stopped, rerun the same command to resume", code=1) from None
    except RecordFailed as exc:
        raise _fail(f"{exc} (--strict: the build stopped at this record)") from None
    if manifest.status == "requests_written":
        _files_summary(manifest, out)
    elif manifest.status.startswith("batch_"):
        _batch_summary(manifest, out)
    else:
        _summary(manifest, out)
    if manifest.sources is not None and manifest.leakage is not None:
        _recipe_summary(manifest.sources, manifest.leakage)
    _failed_windows_check(manifest, out)


def _failed_windows_check(manifest: RunReport, out: Path) -> None:
    """Exit 1 when more windows lost a record than `output.max_failed_share` allows: the data is
    written, but so much of it failed that something is wrong with the build, not with a record."""
    c = manifest.counts
    limit = manifest.config["output"]["max_failed_share"]
    if c.failed_share > limit:
        raise _fail(f"{c.windows_failed} of {c.windows} windows ({c.failed_share:.1%}) lost records to failures, "
                    f"more than output.max_failed_share ({limit:.1%}); the record_failed issues in "
                    f"{out / 'manifest.json'} name them", code=1)


def _model_overrides(model: str | None, profile: str | None) -> dict[str, Any]:
    """--model and --backend-profile as overrides of the config's model section."""
    section = {k: v for k, v in (("name", model), ("profile", profile)) if v is not None}
    return {"model": section} if section else {}


def _recipe_alone(root: Path | None, sample: bool, split: str | None, options: list[str] | None) -> None:
    given = [flag for flag, value in (("--root", root), ("--sample", sample), ("--split", split),
                                      ("--option", options)) if value]
    if given:
        raise _fail(f"{given[0]} belongs to one source: with --recipe, write it in the recipe "
                    "(root, splits, options of each source)")


def _recipe_summary(sources: dict[str, SourceSection], leak: Leakage) -> None:
    for name, s in sources.items():
        if s.status == "missing":
            typer.echo(f"  {name:<16} not built: {s.reason}")
            continue
        left = ", ".join(f"{n} {reason}" for reason, n in (s.left_out or {}).items())
        typer.echo(f"  {name:<16} {s.records_written:>8} records from {s.samples} images"
                   + (f" ({left})" if left else ""))
    dropped = sum(leak.dropped_from_train.values())
    typer.echo(f"leakage ({leak.policy}): {leak.images} images fingerprinted, {leak.clusters} clusters of "
               f"the same picture, {dropped} training images dropped; listed in the manifest under `leakage`")


def _run_recipe(name: str, source: str | None, data: Path | None, skip_missing: bool, config: Path | None,
                overrides: dict[str, Any], seed: int | None, opts: Any, force: bool = False) -> RunReport:
    """Build (or estimate) every source of a recipe; errors become one line naming the recipe line, exit 2."""
    from rsgpt4v.builder.mix import build_recipe
    from rsgpt4v.builder.recipe import RecipeError, load_recipe
    from rsgpt4v.core.config import ConfigError, load_config
    from rsgpt4v.core.ownership import OwnerError, identity, owned
    from rsgpt4v.llm.client import MissingKeyError
    from rsgpt4v.llm.profile import ProfileError
    from rsgpt4v.prompting.templates import PromptError

    if source is not None:
        raise _fail("give --source or --recipe, not both")
    if data is not None and not data.is_dir():
        raise _fail(f"--data {data} is not a folder")
    try:
        mix = load_recipe(name)
        base = {**overrides, "seed": mix.seed if seed is None else seed}
        if mix.judge is not None and "judge" not in overrides:
            base["judge"] = {"model": mix.judge}
        configs = {"": load_config(config, base)}
        for entry in mix.sources:
            own = base if entry.stages is None else {**base, "stages": entry.stages}
            configs[entry.source] = load_config(config, own)
        if opts.estimate:
            return build_recipe(mix, data, configs, opts, skip_missing)
        with owned(opts.out, identity(f"recipe:{name}", data or Path("."), None, None, opts.shard), force):
            return build_recipe(mix, data, configs, opts, skip_missing)
    except (ConfigError, RecipeError, PromptError, MissingKeyError, FileNotFoundError, OwnerError,
            ProfileError) as exc:
        raise _fail(str(exc)) from None


def _request_files(out: Path) -> tuple[list[Path], int]:
    """The request files of a `--batch-engine files` build and the requests they hold."""
    from rsgpt4v.llm.batch_files import REQUESTS

    files = sorted((out / REQUESTS).glob("*.jsonl"))
    return files, sum(f.read_bytes().count(b"\n") for f in files)  # a request line ends at "\n" only


def _how_to_run_files(out: Path, model: str, then: str) -> None:
    from rsgpt4v.llm.batch_files import run_commands

    for line in run_commands(out, model):
        typer.echo(f"  {line}")
    typer.echo("(Ray Data: read the files with ray.data.read_json and map them through a vLLM processor; "
               f"OpenAI/Azure Batch: upload them as they are.) Then rerun {then}: it reads the "
               "imported answers and writes the next stage's requests, or the dataset when none are left.")


def _files_summary(manifest: RunReport, out: Path) -> None:
    from rsgpt4v.llm.batch_files import REQUESTS

    files, lines = _request_files(out)
    typer.echo(f"wrote {lines} requests in {len(files)} file(s) under {out / REQUESTS} (OpenAI batch format); "
               f"{manifest.counts.windows_waiting_for_batch} windows wait for them. Run them with any "
               "OpenAI-compatible batch engine, e.g. vLLM:")
    _how_to_run_files(out, manifest.model, "this same command")
    typer.echo(_passes_left(manifest))


def _files_status(out: Path) -> bool:
    """`batch status` of a build whose requests went to files: what waits in them and what to run;
    False when there are none."""
    from rsgpt4v.core.report import ReportError, RunReport
    from rsgpt4v.llm.batch_files import REQUESTS

    files, lines = _request_files(out)
    if not files:
        return False
    try:
        model = RunReport.read(out / "manifest.json").model
    except ReportError:
        model = "MODEL"
    typer.echo(f"{out}: no provider batches; its build (--batch-engine files) wrote {lines} requests in "
               f"{len(files)} file(s) under {out / REQUESTS} for a batch engine of your own. Run them, "
               "e.g. with vLLM, and import the answers:")
    _how_to_run_files(out, model, "the build command")
    return True


def _passes_left(manifest: RunReport) -> str:
    n = manifest.batch.passes_left if manifest.batch is not None else 0
    return (f"at most {n} pass{'es' if n != 1 else ''} of requests remain, this one included (later stages, "
            "retries of unusable answers, splits of cut-off ones); then one more run writes the dataset")


def _batch_summary(manifest: RunReport, out: Path) -> None:
    b = manifest.batch
    assert b is not None, "a batch pass reports its batches"
    open_batches = [x for x in b.batches if not x.get("collected")]
    if manifest.status == "batch_in_progress":
        typer.echo(f"{len(open_batches)} batch(es) still in progress; rerun this command when they finish "
                   f"(`rsgpt4v batch status --out {out}` shows them)")
        return
    stages = {}
    for x in open_batches:
        for stage, n in x["stages"].items():
            stages[stage] = stages.get(stage, 0) + n
    named = ", ".join(f"{n} {stage}" for stage, n in sorted(stages.items()))
    typer.echo(f"submitted {b.queued_this_pass} requests ({named}) in {len(open_batches)} batch(es); "
               f"{manifest.counts.windows} windows wait for them. When they finish (within 24 h), rerun "
               "this same command: it collects the answers and submits the next stage.")
    typer.echo(_passes_left(manifest))


def _usd(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"${value:,.2f}" if value >= 1 else f"${value:.4f}"


def _summary(manifest: RunReport, out: Path) -> None:
    c, u, i = manifest.counts, manifest.usage, manifest.issues
    typer.echo(f"wrote {c.records} records from {c.samples} images ({c.windows} windows) to {out}")
    for task, n in sorted(c.by_task.items()):
        typer.echo(f"  {task:<22} {n}")
    cost = f"${u.cost_usd:,.4f}" if u.priced else "not priced (the price table has no price for this model)"
    typer.echo(f"requests: {u.api_calls} sent, {u.cache_hits} from cache; tokens: {u.prompt_tokens} in, "
               f"{u.completion_tokens} out; cost: {cost}")
    if manifest.batch is not None:
        bu = manifest.batch.usage
        typer.echo(f"batch API: {bu.requests} answers collected over {len(manifest.batch.batches)} "
                   f"batch(es); tokens: {bu.prompt_tokens} in, {bu.completion_tokens} out; "
                   f"cost at batch prices: ${bu.cost_usd:,.4f}")
    from rsgpt4v.core.issue_codes import IssueCode
    from rsgpt4v.core.report import StageUsage

    failures = StageUsage.total(u.by_stage.values()).failures
    by_reason = ", ".join(f"{n} {r}" for r, n in sorted(failures.items())) or "none"
    if manifest.judge is not None:
        typer.echo(manifest.judge.summary())
    typer.echo(f"input issues: {i.skipped} skipped, {i.warnings} warnings; failed stage answers: "
               f"{manifest.failures.count} ({by_reason}); details in {out / 'manifest.json'}")
    if c.windows_failed:
        failed = i.by_reason.get(f"skip: {IssueCode.RECORD_FAILED}", 0)
        typer.echo(f"failed records: {failed} dropped from {c.windows_failed} of {c.windows} windows "
                   f"({c.failed_share:.2%}); each is a record_failed issue in the manifest")
    _switches(manifest)


def _value(setting: object) -> str:
    """A profile setting as its YAML file writes it (true, not True)."""
    return str(setting).lower() if isinstance(setting, bool) else str(setting)


def _switches(manifest: RunReport) -> None:
    """What the server refused and the run switched off (`server` in the manifest)."""
    if manifest.server is None or not manifest.server.switched:
        return
    switched = ", ".join(f"{s.setting} {_value(s.before)} -> {_value(s.after)}" for s in manifest.server.switched)
    typer.echo(f"the server refused features; switched for this run: {switched} (manifest.json `server` says why; "
               "`rsgpt4v doctor --save FILE` writes a profile that asks for none of them)")


@app.command()
def estimate(
    source: SourceOpt = None,
    recipe: RecipeOpt = None,
    data: DataOpt = None,
    skip_missing: SkipMissingOpt = False,
    root: RootOpt = None,
    sample: SampleOpt = False,
    model: ModelOpt = None,
    backend_profile: ProfileOpt = None,
    judge: JudgeOpt = None,
    config: ConfigOpt = None,
    prompts: PromptsOpt = None,
    prices: PricesOpt = None,
    limit: LimitOpt = None,
    split: SplitOpt = None,
    option: OptionOpt = None,
    sample_images: Annotated[int, typer.Option(
        min=2, help="Look at a seeded sample of this many images, stratified by size, and extrapolate to all of "
                    "them with the margin the sample implies (all images when there are no more).")] = 32,
    exact: Annotated[bool, typer.Option("--exact", help="Look at every image (no sampling, no margin).")] = False,
    cache: Annotated[Optional[Path], typer.Option(help="An earlier build's cache: budget the re-ask rate it "
                                                       "measured instead of engine.reask_rate.")] = None,
    tokens_per_second: Annotated[Optional[float], typer.Option(
        min=0.001, help="Your server's measured throughput, input and output tokens together: adds the hours "
                        "the build takes on it.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the table as JSON.")] = False,
) -> None:
    """Requests, image and text tokens and dollars per stage, live and batch (or hours on your own server),
    before anything is sent."""
    import json
    import tempfile

    from rsgpt4v.builder.pipeline import BuildOptions

    _setup_logging(False)
    overrides: dict[str, Any] = {}
    measured = ""
    with _one_error_path(cache):
        if cache is not None:
            rate = _measured_reask_rate(cache)
            if rate is not None:
                overrides["engine"] = {"reask_rate": round(rate, 4)}
                measured = f", measured in {cache}"
    overrides.update(_model_overrides(model, backend_profile))
    if judge is not None:
        overrides["judge"] = {"model": judge}
    with tempfile.TemporaryDirectory() as scratch:
        opts = BuildOptions(out=Path(scratch), backend="mock", limit=limit, prompts_dir=prompts,
                            prices=prices, estimate=True, progress=False,
                            sample_images=None if exact else sample_images)
        with _one_error_path():
            if recipe is not None:
                _recipe_alone(root, sample, split, option)
                manifest = _run_recipe(recipe, source, data, skip_missing, config, overrides, None, opts)
            else:
                manifest = _run(source, root, sample, split, option, config, overrides, opts)
    from rsgpt4v.core.report import EstimatedFrom
    from rsgpt4v.llm.estimate import hours

    reask_rate = manifest.config["engine"]["reask_rate"]
    rows = [r.model_dump() for r in manifest.estimate or []]
    if tokens_per_second is not None:
        for r in rows:
            r["hours"] = round(hours(r, tokens_per_second), 2)
    basis = manifest.estimated_from or EstimatedFrom(images=0, of=0)
    judged_by = manifest.config["judge"]["model"]
    rule = _image_rule(manifest, prices)
    if json_out:
        sent_back = manifest.judge.sent_back if manifest.judge else {}
        typer.echo(json.dumps({"model": manifest.model, "judge": judged_by, "judge_sent_back": sent_back,
                               "prices_date": manifest.usage.prices_date, "priced": manifest.usage.priced,
                               "image_rule": rule, "tokens_per_second": tokens_per_second,
                               "images": basis.of, "images_looked_at": basis.images, "exact": basis.exact,
                               "usd_live_margin": basis.usd_live_margin, "tokens_margin": basis.tokens_margin,
                               "reask_rate": reask_rate, "windows_looked_at": manifest.counts.windows,
                               "stages": rows}, indent=2))
        return
    if basis.exact is not False:
        looked = f"{basis.of:,} images, all looked at"
    else:
        looked = (f"{basis.of:,} images, extrapolated from a sample of {basis.images:,} (stratified by size, seed "
                  f"{basis.seed})")
    judging = f", judge {judged_by}" if judged_by else ""
    priced = manifest.usage.priced
    money = (f"prices of {manifest.usage.prices_date}" if priced
             else "not priced: a model you serve yourself is counted in tokens" + ("" if tokens_per_second else
                                                                                   "; --tokens-per-second adds hours"))
    typer.echo(f"{looked}, {manifest.counts.windows:,} windows looked at, model {manifest.model}{judging} "
               f"({money}); image tokens by the {rule} rule; "
               f"{'dollars' if priced else 'totals'} include {reask_rate:.0%} re-asks{measured}")
    typer.echo(f"{'stage':<10}{'requests':>10}{'re-asks':>9}{'text tok':>14}{'image tok':>14}{'output tok':>14}"
               + (f"{'live':>12}{'batch':>12}" if priced else "") + (f"{'hours':>10}" if tokens_per_second else ""))
    for r in rows:
        typer.echo(f"{r['stage']:<10}{r['requests']:>10,}{r['reasks']:>9,}{r['text_tokens']:>14,}"
                   f"{r['image_tokens']:>14,}{r['output_tokens']:>14,}"
                   + (f"{_usd(r['usd_live']):>12}{_usd(r['usd_batch']):>12}" if priced else "")
                   + (f"{r['hours']:>10,.2f}" if tokens_per_second else ""))
    if basis.exact is False:
        usd = "" if basis.usd_live_margin is None else f"live dollars +- {_usd(basis.usd_live_margin)}, "
        typer.echo(f"sampling margin (95 %): {usd}tokens +- {basis.tokens_margin:,}; --exact looks at every image")


def _image_rule(manifest: RunReport, prices: Path | None) -> str:
    """How the estimate counted image tokens: the profile's rule, else the model family's."""
    from rsgpt4v.llm.cost import PriceTable
    from rsgpt4v.llm.profile import load_profile

    name = manifest.config["model"].get("profile")
    rule = (load_profile(name).image_rule if name else None) or PriceTable.load(prices).image_rule(manifest.model)
    knobs = ", ".join(f"{k} {v}" for k, v in rule.model_dump(exclude={"formula"}).items())
    return f"{rule.formula} ({knobs})"


@app.command()
def merge(
    inputs: Annotated[list[Path], typer.Argument(help="Output folders of finished builds (e.g. shards).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Merged output folder (never an input, nor inside one).")],
    image_conflict: Annotated[str, typer.Option(
        help="Two inputs with different images under one path: `fail` (default) or `rename` (the later "
             "input's image gets its digest in its name, and its records point at it).")] = "fail",
) -> None:
    """Join shard outputs and their manifests into one output folder."""
    from rsgpt4v.tools.merge import MergeError
    from rsgpt4v.tools.merge import merge as run_merge

    try:
        with _one_error_path():
            manifest = run_merge(inputs, out, image_conflict)  # type: ignore[arg-type]
    except MergeError as exc:
        raise _fail(str(exc)) from None
    c = manifest.counts
    for problem in manifest.bad_lines or []:
        typer.echo(problem, err=True)
    typer.echo(f"merged {len(inputs)} folders: {c.records} records ({c.duplicates_skipped} duplicate ids "
               f"skipped, {c.bad_lines} unreadable lines skipped) into {out}")
    if c.bad_lines:
        raise typer.Exit(1)


@app.command("fake-server")
def fake_server(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0 picks a free one).")] = 8089,
    latency: Annotated[float, typer.Option(callback=_finite, min=0, help="Mean seconds per completion.")] = 0.0,
    rpm: Annotated[Optional[float], typer.Option(
        callback=_finite, min=1, help="Requests per minute, enforced per second.")] = None,
    tpm: Annotated[Optional[float], typer.Option(
        callback=_finite, min=1, help="Tokens per minute, enforced per second.")] = None,
    fail_5xx: Annotated[float, typer.Option(
        callback=_finite, min=0, max=1, help="Fraction of requests answered 503.")] = 0.0,
    fail_429: Annotated[float, typer.Option(
        callback=_finite, min=0, max=1, help="Fraction of requests answered 429.")] = 0.0,
    malformed: Annotated[float, typer.Option(
        callback=_finite, min=0, max=1, help="Fraction of answers with broken JSON.")] = 0.0,
    batch_expire: Annotated[float, typer.Option(
        callback=_finite, min=0, max=1, help="Fraction of batch requests that expire.")] = 0.0,
    answer_tokens_per_object: Annotated[Optional[int], typer.Option(
        min=1, help="Write local answers of this many output tokens per object, as a careful model does "
                    "(about 160), cut at the request's token limit like the real API.")] = None,
    mistakes: Annotated[float, typer.Option(callback=_finite, 
        min=0, max=1, help="Fraction of answers with a realistic slip: an object left out, talk of the marks, "
                           "a refusal.")] = 0.0,
    judge_contradictions: Annotated[float, typer.Option(
        min=0, max=1, help="Share of judge requests in which the mock contradicts one statement (besides any "
                           "number that disagrees with the labels).")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the faults and slips drawn.")] = 0,
    plant: Annotated[Optional[str], typer.Option(
        help="A sentence appended to every free-text field of the answers (descriptions, captions, questions, "
             "answers, referring expressions), to try what QC keeps.")] = None,
    emulate: Annotated[str, typer.Option(
        help="Refuse and answer as this server does (its error words and envelope): openai, azure, vllm, sglang, "
             "ollama, llamacpp, lmstudio.")] = "openai",
    no_json_schema: Annotated[bool, typer.Option(
        "--no-json-schema", help="Refuse response_format json_schema, as builds without it do (Ollama before "
                                 "0.5.0 ignores it instead).")] = False,
    no_json_object: Annotated[bool, typer.Option("--no-json-object", help="Refuse response_format json_object.")
                              ] = False,
    prose: Annotated[bool, typer.Option(
        "--prose", help="Wrap every answer in prose and a ```json fence, as a model without constrained "
                        "decoding writes.")] = False,
    max_images: Annotated[Optional[int], typer.Option(
        min=0, help="Refuse requests with more images than this (vLLM started with --limit-mm-per-prompt).")] = None,
    strict_roles: Annotated[bool, typer.Option(
        "--strict-roles", help="Refuse a system message and two messages of one role in a row, as Gemma's and "
                               "Mistral's chat templates do (llama.cpp folds the system message in).")] = False,
) -> None:
    """Serve an OpenAI-compatible fake API (chat, files, batches) on loopback; Ctrl-C stops it."""
    from rsgpt4v.llm.fakeserver import FakeServer, Knobs
    from rsgpt4v.llm.personas import PERSONAS, Quirks

    if emulate not in PERSONAS:
        raise _fail(f"--emulate must be one of {', '.join(PERSONAS)}, not {emulate!r}")
    quirks = Quirks(no_json_schema=no_json_schema, no_json_object=no_json_object, prose=prose, max_images=max_images,
                    strict_roles=strict_roles)
    knobs = Knobs(latency_s=latency, rpm=rpm, tpm=tpm, fail_5xx=fail_5xx, fail_429=fail_429, malformed=malformed,
                  batch_expire=batch_expire, seed=seed, answer_tokens_per_object=answer_tokens_per_object,
                  mistakes=mistakes, plant=plant, judge_contradictions=judge_contradictions, emulate=emulate,
                  quirks=quirks)
    server = FakeServer(knobs, port=port)
    typer.echo(f"fake {emulate} API at {server.url}  (export OPENAI_BASE_URL={server.url} OPENAI_API_KEY=fake)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@app.command()
def doctor(
    model: ModelOpt = None,
    config: ConfigOpt = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Probe the offline mock instead of a server.")] = False,
    save: Annotated[Optional[Path], typer.Option(help="Write the profile that fits the server to this YAML file "
                                                     "(for --backend-profile or model.profile).")] = None,
) -> None:
    """Probe the server at OPENAI_BASE_URL with a handful of tiny requests: what it accepts, the backend
    profile that fits it."""
    import asyncio

    from rsgpt4v.core.config import ConfigError, load_config
    from rsgpt4v.llm.client import MissingKeyError, make_client
    from rsgpt4v.llm.doctor import DoctorError, diagnose, matching
    from rsgpt4v.llm.profile import profile_yaml

    try:
        cfg = load_config(config, _model_overrides(model, None))
        client = make_client("mock" if dry_run else "openai", cfg.model.request_timeout_s)
    except (ConfigError, MissingKeyError) as exc:
        raise _fail(str(exc)) from None
    where = "the offline mock" if dry_run else str(client.base_url)
    typer.echo(f"probing {where} with model {cfg.model.name}:")
    try:
        with _one_error_path():
            probes, profile = asyncio.run(diagnose(client, cfg.model.name))
    except DoctorError as exc:
        raise _fail(str(exc), code=1) from None
    for p in probes:
        typer.echo(f"  {p.name:<30} {'accepted' if p.accepted else 'refused'}{f'  ({p.detail})' if p.detail else ''}")
    same, closest, differs = matching(profile)
    settings = ", ".join(f"{k}: {_value(v)}" for k, v in profile.settings().items())
    if same:
        others = f" (the same settings as {', '.join(same[1:])})" if len(same) > 1 else ""
        typer.echo(f"profile: {settings}\nmatches the bundled profile {same[0]}{others}: "
                   f"--backend-profile {same[0]}")
    else:
        typer.echo(f"profile: {settings}\nno bundled profile matches; the closest, {closest}, differs in "
                   f"{', '.join(differs)}" + ("" if save else "; --save FILE writes this one"))
    if save is not None:
        with _one_error_path():
            save.write_text(profile_yaml(profile, f"Backend profile found by `rsgpt4v doctor` at {where} for "
                                                  f"{cfg.model.name}."), encoding="utf-8")
        typer.echo(f"wrote {save}: build with --backend-profile {save}")


@app.command()
def validate(
    paths: Annotated[list[Path], typer.Argument(help="LLaVA-format .json/.jsonl files or folders of them.")],
    max_shown: Annotated[int, typer.Option(min=1, help="Print at most this many violations.")] = 50,
) -> None:
    """Check LLaVA-format data (ours or any tool's): roles, <image>, images, ids, boxes, refusals."""
    from rsgpt4v.tools.validate import main_validate

    with _one_error_path():
        code = main_validate(paths, max_shown)
    raise typer.Exit(code)


@app.command()
def stats(
    out: Annotated[Path, typer.Argument(help="A build output folder.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Records per task, source and split; turns and answer lengths; tokens, cost and rejections."""
    from rsgpt4v.tools.stats import main_stats

    with _one_error_path():
        code = main_stats(out, json_out)
    raise typer.Exit(code)


@app.command()
def preview(
    out: Annotated[Path, typer.Argument(help="A build output folder.")],
    dest: Annotated[Path, typer.Option("--out", "-o", help="Folder for the HTML gallery.")] = Path("preview"),
    n: Annotated[int, typer.Option("--n", min=1, help="Records to show (a seeded sample).")] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the sample.")] = 0,
) -> None:
    """Write a static HTML gallery: images with their boxes drawn from the records' own text."""
    from rsgpt4v.tools.preview import main_preview

    with _one_error_path():
        code = main_preview(out, dest, n, seed)
    raise typer.Exit(code)


@app.command()
def export(
    out: Annotated[Path, typer.Argument(help="A build output folder.")],
    dest: Annotated[Path, typer.Option("--out", "-o", help="Export folder.")],
    fmt: Annotated[str, typer.Option("--format", help="llava-json, llava-jsonl, sharegpt or hf.")] = "llava-json",
    box_format: Annotated[Optional[str], typer.Option(
        help="llava, geochat, qwen2vl, qwen25vl or pixel (qwen = qwen2vl); default: as built.")] = None,
    box_space: Annotated[Optional[str], typer.Option(
        help="square (LLaVA-1.5/GeoChat padding) or image, for llava and geochat boxes; default: as built.")] = None,
    task_tokens: Annotated[bool, typer.Option(
        "--task-tokens", help="GeoChat's \\[refer]/\\[identify] before questions with boxes (geochat only).")] = False,
    push_to_hub: Annotated[Optional[str], typer.Option(
        "--push-to-hub", metavar="REPO", help="With --format hf: upload the folder to this Hub dataset (user/name), "
                                              "created if missing; needs the hub extra and HF_TOKEN.")] = None,
    private: Annotated[bool, typer.Option("--private", help="With --push-to-hub: create the dataset private.")] = False,
) -> None:
    """Re-render records for another model family (boxes from the pixel boxes kept; no API calls)."""
    from rsgpt4v.tools.export import main_export

    with _one_error_path():
        code = main_export(out, dest, fmt, box_format, box_space, task_tokens, push_to_hub, private)
    raise typer.Exit(code)


batch_app = typer.Typer(no_args_is_help=True, help="Inspect and collect the Batch API jobs of a `build --batch` output folder.")
app.add_typer(batch_app, name="batch")


def _measured_reask_rate(path: Path) -> float | None:
    from rsgpt4v.llm.cache import Cache, is_sqlite_file

    # Only read: a file that is no cache is refused, not moved aside as a build's own cache would be.
    if not is_sqlite_file(path):
        raise _fail(f"{path}: {'not an SQLite file' if path.is_file() else 'no such file'}; give --cache the "
                    "cache.sqlite of an earlier build")
    cache = Cache(path)
    try:
        return cache.reask_rate()
    finally:
        cache.close()


def _batch_states(out: Path) -> list[tuple[str, Any]]:
    """(source, BatchState) of every batch folder of a build that holds batches: OUT/batch of a
    single-source build, OUT/parts/<source>/batch of each source of a recipe build."""
    from rsgpt4v.core.ownership import PARTS
    from rsgpt4v.llm.batch import BatchState

    folders = [("", out / "batch")] + [(state.parent.parent.name, state.parent)
                                       for state in sorted((out / PARTS).glob("*/batch/state.json"))]
    states = [(name, BatchState(folder)) for name, folder in folders if (folder / "state.json").is_file()]
    return [(name, state) for name, state in states if state.batches]


def _batch_context(out: Path):
    from rsgpt4v.core.report import ReportError, RunReport
    from rsgpt4v.llm.client import MissingKeyError, make_client

    states = _batch_states(out)
    if not states and _request_files(out)[0]:
        raise _fail(f"{out}: its build wrote its requests to files (--batch-engine files) instead of submitting "
                    f"them; run them and `rsgpt4v batch import` the answers (`rsgpt4v batch status --out {out}` "
                    "shows how)")
    if not states:
        raise _fail(f"{out} has no batches: submit with `rsgpt4v build --batch ... --out {out}`")
    try:
        manifest = RunReport.read(out / "manifest.json")
    except ReportError as exc:
        raise _fail(str(exc)) from None
    if manifest.backend == "mock":
        raise _fail(f"{out / 'manifest.json'}: this build used the mock, whose batches lived only inside its own "
                    "process; build again with --dry-run --batch --wait")
    try:
        client = make_client("openai", manifest.config["model"]["request_timeout_s"])
    except MissingKeyError as exc:
        raise _fail(str(exc)) from None
    return states, manifest, client


@contextmanager
def _batch_errors(out: Path):
    """The batch commands' failures in one line: an unreadable state file, the server out of reach."""
    from rsgpt4v.llm.batch import BatchStateError

    try:
        with _one_error_path(out / "cache.sqlite"):
            yield
    except BatchStateError as exc:
        raise _fail(str(exc)) from None


@batch_app.command("status")
def batch_status(out: Annotated[Path, typer.Option("--out", "-o", help="The build's output folder (of a recipe "
                                                                      "build: every source's batches).")]) -> None:
    """Show every batch of the build and its progress."""
    import asyncio

    from rsgpt4v.llm.batch import refresh

    with _batch_errors(out):
        if not _batch_states(out) and _files_status(out):
            return
        states, _, client = _batch_context(out)
        for _, state in states:
            asyncio.run(refresh(client, state))
    width = max(len(name) for name, _ in states)
    for name, state in states:
        for b in state.batches:
            counts = b.get("counts") or {}
            done = f"{counts.get('completed', 0)}/{counts.get('total', b['lines'])} done" if counts else ""
            stages = ", ".join(f"{n} {s}" for s, n in sorted(b["stages"].items()))
            typer.echo(f"{f'{name:<{width}}  ' if width else ''}{b['id']}  {b['pass']}  {b['status']:<12} "
                       f"{'collected' if b.get('collected') else 'open':<10}{b['lines']:>7} requests ({stages}) {done}")


@batch_app.command("collect")
def batch_collect(
    out: Annotated[Path, typer.Option("--out", "-o", help="The build's output folder.")],
    cache: Annotated[Optional[Path], typer.Option(help="Cache to collect into; default the one the build uses "
                                                       "(its --cache, else OUT/cache.sqlite).")] = None,
) -> None:
    """Download finished batches into the build's cache (the next `build --batch` pass also does this);
    of a recipe build, every source's batches."""
    import asyncio
    from collections import Counter

    from rsgpt4v.llm.batch import collect
    from rsgpt4v.llm.cache import Cache
    from rsgpt4v.llm.cost import PriceTable

    tally: Counter[str] = Counter()
    caches: list[Path] = []
    with _batch_errors(out):
        states, manifest, client = _batch_context(out)
        prices = PriceTable.load()
        for _, state in states:
            into = cache or (Path(state.cache) if state.cache else out / "cache.sqlite")
            caches += [into] if into not in caches else []
            answers = Cache(into)
            try:
                tally.update(asyncio.run(collect(client, state, answers, prices, manifest.model)))
            finally:
                answers.close()
    still = sum(1 for _, state in states for b in state.batches if not b.get("collected"))
    typer.echo(f"collected {tally['answers']} answers into {', '.join(map(str, caches))}; {tally['failed']} failed "
               f"or expired (resubmitted by the next pass), {tally['rejected']} rejected; {still} batch(es) still open")


@batch_app.command("import")
def batch_import(
    out: Annotated[Path, typer.Argument(help="The build's output folder.")],
    results: Annotated[list[Path], typer.Argument(help="Result files in the OpenAI batch output format.")],
    cache: Annotated[Optional[Path], typer.Option(help="Response cache file; default OUT/cache.sqlite.")] = None,
) -> None:
    """Read batch results produced by any engine (vLLM run-batch, Ray, OpenAI/Azure Batch) into the cache."""
    from rsgpt4v.core.files import file_sha256
    from rsgpt4v.core.ownership import PARTS
    from rsgpt4v.core.report import ReportError, RunReport
    from rsgpt4v.llm.batch_files import (
        IMPORTED,
        REQUESTS,
        already_imported,
        import_results,
        record_imported,
        request_ids,
    )
    from rsgpt4v.llm.cache import Cache

    if not out.is_dir():
        raise _fail(f"{out}: no such folder; give the --out folder of the build that wrote the requests")
    missing = [str(p) for p in results if not p.is_file()]
    if missing:
        raise _fail(f"{missing[0]}: no such result file; give the files your batch engine wrote")
    manifest_path = out / "manifest.json"
    try:
        model = RunReport.read(manifest_path).model if manifest_path.is_file() else ""
    except ReportError as exc:
        raise _fail(str(exc)) from None
    # a recipe build's parts write their requests under OUT/parts/<source>/ with the API engine
    folders = [f for f in [out / REQUESTS, *sorted((out / PARTS).glob(f"*/{REQUESTS.as_posix()}"))] if f.is_dir()]
    into = cache or out / "cache.sqlite"
    with _one_error_path(into):
        known: set[str] | None = None
        unreadable: list[str] = []
        for folder in folders:
            ids, problems = request_ids(folder)
            known = (known or set()) | ids
            unreadable += problems
        done = already_imported(out / IMPORTED, into)
        new: dict[str, Path] = {}
        skipped = []
        for path in results:
            sha = file_sha256(path)
            if sha in done or sha in new:
                skipped.append(path)
            else:
                new[sha] = path
        store = Cache(into)
        try:
            tally = import_results(list(new.values()), store, model, known)
        finally:
            store.close()
        record_imported(out / IMPORTED, into, new)
    if skipped:
        typer.echo(f"skipped {len(skipped)} result file(s) imported before: {', '.join(map(str, skipped[:5]))}"
                   + (" ..." if len(skipped) > 5 else ""))
    problems = unreadable + tally.problems
    for problem in problems[:20]:
        typer.echo(problem, err=True)
    if len(problems) > 20:
        typer.echo(f"... {len(problems) - 20} more", err=True)
    unknown = f" ({tally.unknown} answer requests not in the build's request files)" if tally.unknown else ""
    again = (f"; {tally.duplicates} already in the cache" if tally.duplicates else "") + \
        (f"; {tally.conflicts} conflicting with the answer in the cache (kept)" if tally.conflicts else "")
    typer.echo(f"imported {tally.answers} answers into {into}{unknown}{again}; "
               f"{tally.failed} requests without an answer. Rerun the build command to continue.")
    if len(problems) > tally.failed:
        raise typer.Exit(1)


def main() -> None:
    """The console entry point: usage errors (an unknown option, a value out of range) in one line."""
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        typer.secho("error: interrupted", err=True, fg=typer.colors.RED)
        sys.exit(130)
    except typer.TyperException as exc:
        message = exc.format_message()
        if type(exc).__name__ == "NoArgsIsHelpError":  # a bare `rsgpt4v` or `rsgpt4v batch`: its usage
            if message:  # rich prints the help itself and leaves the message empty
                typer.echo(message)
            sys.exit(0)
        if "\n" in message:  # a command group called without its command: its help
            exc.show()
        else:
            ctx = getattr(exc, "ctx", None)
            hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            typer.secho(f"error: {message}{hint}", err=True, fg=typer.colors.RED)
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
