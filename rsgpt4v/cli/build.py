"""`build` and `estimate`: one source or a recipe, and the summaries they print."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from rsgpt4v.cli.batch import batch_summary, files_summary
from rsgpt4v.cli.common import (
    ConfigOpt,
    DataOpt,
    JudgeOpt,
    LimitOpt,
    ModelOpt,
    OptionOpt,
    PricesOpt,
    ProfileOpt,
    PromptsOpt,
    RecipeOpt,
    RootOpt,
    SampleOpt,
    SkipMissingOpt,
    SourceOpt,
    SplitOpt,
    StrictOpt,
    fail,
    finite,
    model_overrides,
    one_error_path,
    parse_shard,
    setup_logging,
    value,
)

if TYPE_CHECKING:
    from rsgpt4v.core.report import Leakage, RunReport, SourceSection


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
        raise fail("give --source NAME (or --recipe FILE|NAME)")
    if sample == (root is not None):
        raise fail("give exactly one of --root PATH or --sample")
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
        raise fail(str(exc)) from None


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
        callback=finite, min=1, help="Requests per minute to stay under.")] = None,
    tpm: Annotated[Optional[float], typer.Option(
        callback=finite, min=1, help="Tokens per minute to stay under.")] = None,
    max_cost: Annotated[Optional[float], typer.Option(
        callback=finite, min=0, help="Stop before spending more than this (USD).")] = None,
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

    setup_logging(verbose)
    if backend is not None and backend not in BACKENDS:
        raise fail(f"--backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if dry_run and backend not in (None, "mock"):
        raise fail(f"--dry-run answers with the mock backend: drop --backend {backend}, or --dry-run")
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
    overrides.update(model_overrides(model, backend_profile))
    if judge is not None:
        overrides["judge"] = {"model": judge}
    if batch_engine not in ("api", "files"):
        raise fail(f"--batch-engine must be api or files, not {batch_engine!r}")
    files = batch and batch_engine == "files"
    if backend == "mock" and batch and not wait and not files:
        raise fail("the mock's batches live only inside one process: use --dry-run --batch --wait "
                    "(or point OPENAI_BASE_URL at `rsgpt4v fake-server`)")
    opts = BuildOptions(out=out, backend=backend, limit=limit, cache=cache, refresh=refresh,
                        prompts_dir=prompts, prices=prices, shard=parse_shard(shard), batch=batch,
                        batch_wait=wait and not files, batch_files=out / REQUESTS if files else None,
                        progress=progress)
    try:
        with one_error_path(cache or out / "cache.sqlite", resume=True):
            if recipe is not None:
                _recipe_alone(root, sample, split, option)
                manifest = _run_recipe(recipe, source, data, skip_missing, config, overrides, seed, opts, force)
            else:
                manifest = _run(source, root, sample, split, option, config, overrides, opts, force)
    except BudgetExceeded as exc:
        raise fail(f"{exc}; raise --max-cost and rerun the same command to continue (nothing paid is lost)",
                    code=1) from None
    except ProfileRefused as exc:
        raise fail(f"{exc}; nothing was paid for the refused requests", code=1) from None
    except DoctorError as exc:
        raise fail(f"probing the server before the batch: {exc}", code=1) from None
    except FatalAPIError as exc:
        raise fail(f"{exc}; the run stopped, rerun the same command to resume", code=1) from None
    except RecordFailed as exc:
        raise fail(f"{exc} (--strict: the build stopped at this record)") from None
    if manifest.status == "requests_written":
        files_summary(manifest, out)
    elif manifest.status.startswith("batch_"):
        batch_summary(manifest, out)
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
        raise fail(f"{c.windows_failed} of {c.windows} windows ({c.failed_share:.1%}) lost records to failures, "
                    f"more than output.max_failed_share ({limit:.1%}); the record_failed issues in "
                    f"{out / 'manifest.json'} name them", code=1)




def _recipe_alone(root: Path | None, sample: bool, split: str | None, options: list[str] | None) -> None:
    given = [flag for flag, value in (("--root", root), ("--sample", sample), ("--split", split),
                                      ("--option", options)) if value]
    if given:
        raise fail(f"{given[0]} belongs to one source: with --recipe, write it in the recipe "
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
        raise fail("give --source or --recipe, not both")
    if data is not None and not data.is_dir():
        raise fail(f"--data {data} is not a folder")
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
        raise fail(str(exc)) from None


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




def _switches(manifest: RunReport) -> None:
    """What the server refused and the run switched off (`server` in the manifest)."""
    if manifest.server is None or not manifest.server.switched:
        return
    switched = ", ".join(f"{s.setting} {value(s.before)} -> {value(s.after)}" for s in manifest.server.switched)
    typer.echo(f"the server refused features; switched for this run: {switched} (manifest.json `server` says why; "
               "`rsgpt4v doctor --save FILE` writes a profile that asks for none of them)")


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

    setup_logging(False)
    overrides: dict[str, Any] = {}
    measured = ""
    with one_error_path(cache):
        if cache is not None:
            rate = _measured_reask_rate(cache)
            if rate is not None:
                overrides["engine"] = {"reask_rate": round(rate, 4)}
                measured = f", measured in {cache}"
    overrides.update(model_overrides(model, backend_profile))
    if judge is not None:
        overrides["judge"] = {"model": judge}
    with tempfile.TemporaryDirectory() as scratch:
        opts = BuildOptions(out=Path(scratch), backend="mock", limit=limit, prompts_dir=prompts,
                            prices=prices, estimate=True, progress=False,
                            sample_images=None if exact else sample_images)
        with one_error_path():
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


def _measured_reask_rate(path: Path) -> float | None:
    from rsgpt4v.llm.cache import Cache, is_sqlite_file

    # Only read: a file that is no cache is refused, not moved aside as a build's own cache would be.
    if not is_sqlite_file(path):
        raise fail(f"{path}: {'not an SQLite file' if path.is_file() else 'no such file'}; give --cache the "
                    "cache.sqlite of an earlier build")
    cache = Cache(path)
    try:
        return cache.reask_rate()
    finally:
        cache.close()
