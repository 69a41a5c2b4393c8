"""The `rsgpt4v` command line: a thin typer layer over sources, config, the pipeline and the tools; each
command lives in the module of its kind and is registered here, in the order `--help` lists them."""

from __future__ import annotations

import sys

import typer

from rsgpt4v.cli.batch import batch_app
from rsgpt4v.cli.build import build, estimate
from rsgpt4v.cli.tools import doctor, export, fake_server, merge, preview, sources, stats, validate

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Build RS-GPT4V-style instruction data for remote-sensing multimodal LLMs.")
app.command()(sources)
app.command()(build)
app.command()(estimate)
app.command()(merge)
app.command("fake-server")(fake_server)
app.command()(doctor)
app.command()(validate)
app.command()(stats)
app.command()(preview)
app.command()(export)
app.add_typer(batch_app, name="batch")


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
