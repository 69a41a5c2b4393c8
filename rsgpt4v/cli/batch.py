"""The batch commands (`status`, `collect`, `import`) and what a batch pass or a batch engine's request
files print after a build."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from rsgpt4v.cli.common import fail, one_error_path

if TYPE_CHECKING:
    from rsgpt4v.core.report import RunReport


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


def files_summary(manifest: RunReport, out: Path) -> None:
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


def batch_summary(manifest: RunReport, out: Path) -> None:
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


batch_app = typer.Typer(no_args_is_help=True, help="Inspect and collect the Batch API jobs of a `build --batch` output folder.")


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
        raise fail(f"{out}: its build wrote its requests to files (--batch-engine files) instead of submitting "
                    f"them; run them and `rsgpt4v batch import` the answers (`rsgpt4v batch status --out {out}` "
                    "shows how)")
    if not states:
        raise fail(f"{out} has no batches: submit with `rsgpt4v build --batch ... --out {out}`")
    try:
        manifest = RunReport.read(out / "manifest.json")
    except ReportError as exc:
        raise fail(str(exc)) from None
    if manifest.backend == "mock":
        raise fail(f"{out / 'manifest.json'}: this build used the mock, whose batches lived only inside its own "
                    "process; build again with --dry-run --batch --wait")
    try:
        client = make_client("openai", manifest.config["model"]["request_timeout_s"])
    except MissingKeyError as exc:
        raise fail(str(exc)) from None
    return states, manifest, client


@contextmanager
def _batch_errors(out: Path):
    """The batch commands' failures in one line: an unreadable state file, the server out of reach."""
    from rsgpt4v.llm.batch import BatchStateError

    try:
        with one_error_path(out / "cache.sqlite"):
            yield
    except BatchStateError as exc:
        raise fail(str(exc)) from None


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
        raise fail(f"{out}: no such folder; give the --out folder of the build that wrote the requests")
    missing = [str(p) for p in results if not p.is_file()]
    if missing:
        raise fail(f"{missing[0]}: no such result file; give the files your batch engine wrote")
    manifest_path = out / "manifest.json"
    try:
        model = RunReport.read(manifest_path).model if manifest_path.is_file() else ""
    except ReportError as exc:
        raise fail(str(exc)) from None
    # a recipe build's parts write their requests under OUT/parts/<source>/ with the API engine
    folders = [f for f in [out / REQUESTS, *sorted((out / PARTS).glob(f"*/{REQUESTS.as_posix()}"))] if f.is_dir()]
    into = cache or out / "cache.sqlite"
    with one_error_path(into):
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
