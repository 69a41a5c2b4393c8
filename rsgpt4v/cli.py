"""The `rsgpt4v` command line: a thin typer layer over sources, config and the pipeline."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Build RS-GPT4V-style instruction data for remote-sensing multimodal LLMs.")


class _TqdmHandler(logging.Handler):
    """Log lines that do not tear the progress bars."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        tqdm.write(self.format(record), file=__import__("sys").stderr)


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


@app.command()
def sources() -> None:
    """List the source adapters (the values of --source)."""
    from rsgpt4v.sources import available

    for name, cls in sorted(available().items()):
        typer.echo(f"{name:<16} {cls.description}")


@app.command()
def build(
    source: Annotated[str, typer.Option("--source", "-s", help="Dataset adapter; see `rsgpt4v sources`.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    root: Annotated[Optional[Path], typer.Option(help="The dataset folder as downloaded.")] = None,
    sample: Annotated[bool, typer.Option("--sample", help="Use the small synthetic sample bundled with rsgpt4v.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Offline: the mock model answers, no key needed.")] = False,
    backend: Annotated[str, typer.Option(help="openai (any OpenAI-compatible server via OPENAI_BASE_URL) or mock.")] = "openai",
    model: Annotated[Optional[str], typer.Option(help="Model name; default from the config.")] = None,
    config: Annotated[Optional[Path], typer.Option(help="YAML file overriding configs/default.yaml.")] = None,
    prompts: Annotated[Optional[Path], typer.Option(help="Folder of prompt files replacing the bundled prompts/.")] = None,
    limit: Annotated[Optional[int], typer.Option(min=1, help="Stop after this many images.")] = None,
    split: Annotated[Optional[str], typer.Option(help="Only this split (train, val, test, ...).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for instruction wording and sampling.")] = None,
    concurrency: Annotated[Optional[int], typer.Option(min=1, help="Requests in flight.")] = None,
    cache: Annotated[Optional[Path], typer.Option(help="Response cache file; default OUT/cache.sqlite.")] = None,
    refresh: Annotated[bool, typer.Option("--refresh", help="Ignore cached responses (they are overwritten).")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Build instruction data from a source dataset into OUT/<split>.jsonl, OUT/images/ and OUT/manifest.json."""
    from rsgpt4v.config import ConfigError, load_config
    from rsgpt4v.llm.client import BACKENDS, MissingKeyError
    from rsgpt4v.llm.engine import FatalAPIError
    from rsgpt4v.pipeline import BuildOptions, build as run_build
    from rsgpt4v.prompting.templates import PromptError
    from rsgpt4v.sources import SourceError, get_source, sample_root

    _setup_logging(verbose)
    if dry_run:
        backend = "mock"
    if backend not in BACKENDS:
        raise _fail(f"--backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if sample == (root is not None):
        raise _fail("give exactly one of --root PATH or --sample")
    overrides: dict = {}
    if seed is not None:
        overrides["seed"] = seed
    if concurrency is not None:
        overrides["engine"] = {"concurrency": concurrency}
    try:
        cfg = load_config(config, overrides)
        adapter = get_source(source)
        data_root = sample_root(source) if sample else root
        if not data_root.exists():
            raise SourceError(f"--root {data_root} does not exist")
        opts = BuildOptions(out=out, backend=backend, model=model, limit=limit, cache=cache, refresh=refresh,
                            prompts_dir=prompts, progress=progress)
        manifest = run_build(adapter(data_root, split=split), cfg, opts)
    except (ConfigError, SourceError, PromptError, MissingKeyError) as exc:
        raise _fail(str(exc)) from None
    except FatalAPIError as exc:
        raise _fail(f"{exc}; the run stopped, rerun the same command to resume", code=1) from None
    _summary(manifest, out)


def _summary(manifest: dict, out: Path) -> None:
    c, u, i = manifest["counts"], manifest["usage"], manifest["issues"]
    typer.echo(f"wrote {c['records']} records from {c['samples']} images ({c['windows']} windows) to {out}")
    for task, n in c["by_task"].items():
        typer.echo(f"  {task:<22} {n}")
    typer.echo(f"requests: {u['api_calls']} sent, {u['cache_hits']} from cache; tokens: {u['prompt_tokens']} in, "
               f"{u['completion_tokens']} out")
    typer.echo(f"input issues: {i['skipped']} skipped, {i['warnings']} warnings; "
               f"failed stage answers: {manifest['failures']['count']} (details in {out / 'manifest.json'})")


def main() -> None:
    app()
