"""The commands around a build: `sources`, `merge`, `validate`, `stats`, `preview`, `export`, `doctor`
and `fake-server`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from rsgpt4v.cli.common import ConfigOpt, ModelOpt, fail, finite, model_overrides, one_error_path, value

if TYPE_CHECKING:
    pass


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
        with one_error_path():
            manifest = run_merge(inputs, out, image_conflict)  # type: ignore[arg-type]
    except MergeError as exc:
        raise fail(str(exc)) from None
    c = manifest.counts
    for problem in manifest.bad_lines or []:
        typer.echo(problem, err=True)
    typer.echo(f"merged {len(inputs)} folders: {c.records} records ({c.duplicates_skipped} duplicate ids "
               f"skipped, {c.bad_lines} unreadable lines skipped) into {out}")
    if c.bad_lines:
        raise typer.Exit(1)


def fake_server(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0 picks a free one).")] = 8089,
    latency: Annotated[float, typer.Option(callback=finite, min=0, help="Mean seconds per completion.")] = 0.0,
    rpm: Annotated[Optional[float], typer.Option(
        callback=finite, min=1, help="Requests per minute, enforced per second.")] = None,
    tpm: Annotated[Optional[float], typer.Option(
        callback=finite, min=1, help="Tokens per minute, enforced per second.")] = None,
    fail_5xx: Annotated[float, typer.Option(
        callback=finite, min=0, max=1, help="Fraction of requests answered 503.")] = 0.0,
    fail_429: Annotated[float, typer.Option(
        callback=finite, min=0, max=1, help="Fraction of requests answered 429.")] = 0.0,
    malformed: Annotated[float, typer.Option(
        callback=finite, min=0, max=1, help="Fraction of answers with broken JSON.")] = 0.0,
    batch_expire: Annotated[float, typer.Option(
        callback=finite, min=0, max=1, help="Fraction of batch requests that expire.")] = 0.0,
    answer_tokens_per_object: Annotated[Optional[int], typer.Option(
        min=1, help="Write local answers of this many output tokens per object, as a careful model does "
                    "(about 160), cut at the request's token limit like the real API.")] = None,
    mistakes: Annotated[float, typer.Option(callback=finite, 
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
        raise fail(f"--emulate must be one of {', '.join(PERSONAS)}, not {emulate!r}")
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
        cfg = load_config(config, model_overrides(model, None))
        client = make_client("mock" if dry_run else "openai", cfg.model.request_timeout_s)
    except (ConfigError, MissingKeyError) as exc:
        raise fail(str(exc)) from None
    where = "the offline mock" if dry_run else str(client.base_url)
    typer.echo(f"probing {where} with model {cfg.model.name}:")
    try:
        with one_error_path():
            probes, profile = asyncio.run(diagnose(client, cfg.model.name))
    except DoctorError as exc:
        raise fail(str(exc), code=1) from None
    for p in probes:
        typer.echo(f"  {p.name:<30} {'accepted' if p.accepted else 'refused'}{f'  ({p.detail})' if p.detail else ''}")
    same, closest, differs = matching(profile)
    settings = ", ".join(f"{k}: {value(v)}" for k, v in profile.settings().items())
    if same:
        others = f" (the same settings as {', '.join(same[1:])})" if len(same) > 1 else ""
        typer.echo(f"profile: {settings}\nmatches the bundled profile {same[0]}{others}: "
                   f"--backend-profile {same[0]}")
    else:
        typer.echo(f"profile: {settings}\nno bundled profile matches; the closest, {closest}, differs in "
                   f"{', '.join(differs)}" + ("" if save else "; --save FILE writes this one"))
    if save is not None:
        with one_error_path():
            save.write_text(profile_yaml(profile, f"Backend profile found by `rsgpt4v doctor` at {where} for "
                                                  f"{cfg.model.name}."), encoding="utf-8")
        typer.echo(f"wrote {save}: build with --backend-profile {save}")


def validate(
    paths: Annotated[list[Path], typer.Argument(help="LLaVA-format .json/.jsonl files or folders of them.")],
    max_shown: Annotated[int, typer.Option(min=1, help="Print at most this many violations.")] = 50,
) -> None:
    """Check LLaVA-format data (ours or any tool's): roles, <image>, images, ids, boxes, refusals."""
    from rsgpt4v.tools.validate import main_validate

    with one_error_path():
        code = main_validate(paths, max_shown)
    raise typer.Exit(code)


def stats(
    out: Annotated[Path, typer.Argument(help="A build output folder.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Records per task, source and split; turns and answer lengths; tokens, cost and rejections."""
    from rsgpt4v.tools.stats import main_stats

    with one_error_path():
        code = main_stats(out, json_out)
    raise typer.Exit(code)


def preview(
    out: Annotated[Path, typer.Argument(help="A build output folder.")],
    dest: Annotated[Path, typer.Option("--out", "-o", help="Folder for the HTML gallery.")] = Path("preview"),
    n: Annotated[int, typer.Option("--n", min=1, help="Records to show (a seeded sample).")] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the sample.")] = 0,
) -> None:
    """Write a static HTML gallery: images with their boxes drawn from the records' own text."""
    from rsgpt4v.tools.preview import main_preview

    with one_error_path():
        code = main_preview(out, dest, n, seed)
    raise typer.Exit(code)


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

    with one_error_path():
        code = main_export(out, dest, fmt, box_format, box_space, task_tokens, push_to_hub, private)
    raise typer.Exit(code)
