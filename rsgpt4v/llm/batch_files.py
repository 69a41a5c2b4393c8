"""Request files for any batch engine, and their results back into the cache.

`build --batch --batch-engine files` writes the requests the cache lacks as OpenAI batch input
files (`{"custom_id", "method", "url", "body"}` per line, the custom_id being the cache key) and
stops. Whatever runs them (vLLM's `run-batch`, a Ray Data job, the OpenAI or Azure Batch API
through their own tools) writes OpenAI batch output lines
(`{"custom_id", "response": {"status_code", "body"}, "error"}`); `import_results` puts every
answered line into the cache, after which the same build command continues exactly as after
`batch collect`: answered requests come from the cache, the next stage's requests are written.
A result file imported once is skipped by later imports (OUT/batch/imported.json), so the loop's
`batch import OUT results/*.jsonl` may name every pass's results each time.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rsgpt4v.core.files import read_jsonl, write_atomic
from rsgpt4v.llm.batch import BatchQueue, request_id, split_request_files
from rsgpt4v.llm.cache import Cache
from rsgpt4v.llm.completion import completion_problem

REQUESTS = Path("batch") / "requests"
RESULTS = Path("batch") / "results"


def write_request_files(queue: BatchQueue | None, folder: Path, prefix: str, max_lines: int,
                        max_bytes: int) -> list[Path]:
    """The queued requests as `<prefix>-NNN.jsonl` files in `folder`, replacing that prefix's files of
    an earlier pass (their requests are either answered now or queued again)."""
    for old in folder.glob(f"{prefix}-*.jsonl"):
        old.unlink()
    if queue is None or not queue.lines:
        return []
    return split_request_files(queue, folder, prefix, max_lines, max_bytes)


def run_commands(out: Path, model: str) -> list[str]:
    """Shell lines that run every request file of OUT with vLLM's OpenAI-compatible batch runner and
    import the results."""
    requests, results = out / REQUESTS, out / RESULTS
    q = shlex.quote
    return [f"mkdir -p {q(str(results))}",
            f"for f in {q(str(requests))}/*.jsonl; do vllm run-batch -i \"$f\" "
            f"-o {q(str(results))}/\"$(basename \"$f\")\" --model {q(model)}; done",
            f"rsgpt4v batch import {q(str(out))} {q(str(results))}/*.jsonl"]


@dataclass
class ImportTally:
    """What an import found, by kind; `problems` name FILE:LINE."""

    answers: int = 0
    failed: int = 0
    unknown: int = 0
    duplicates: int = 0  # answers already in the cache, the same (a line given twice, a file imported again)
    conflicts: int = 0  # answers that differ from the one already in the cache, which is kept
    problems: list[str] = field(default_factory=list)


def _answer(line: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None, str | None]:
    """(custom_id, completion body, why there is none) of one output line; a body of another shape
    than a live answer's (`choices: [null]`, a number for content) is none."""
    key = line.get("custom_id")
    if not isinstance(key, str) or not key:
        return None, None, "no custom_id"
    response = line.get("response")
    if not isinstance(response, dict):
        error = line.get("error") or {}
        message = error.get("message") if isinstance(error, dict) else error
        return key, None, f"no response ({message or 'no error given'})"
    status = response.get("status_code")
    body = response.get("body")
    if status != 200 or not isinstance(body, dict):
        error = (body or {}).get("error") if isinstance(body, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        return key, None, f"status {status}" + (f": {message}" if message else "")
    problem = completion_problem(body)
    if problem is not None:
        return key, None, problem
    return key, body, None


def import_results(paths: list[Path], cache: Cache, model: str, known: set[str] | None = None) -> ImportTally:
    """Every answered line of the OpenAI batch output files `paths` into `cache`; `known` (the custom_ids
    of the request files, when they are at hand) flags answers to requests this build never wrote.
    An answer already in the cache is kept: the same again is counted a duplicate, another one a
    conflict, named."""
    tally = ImportTally()
    for path in paths:
        try:
            f = open(path, "rb")
        except OSError as exc:
            tally.problems.append(f"{path}: cannot read ({exc.strerror or exc})")
            continue
        with f:
            for number, line, problem in read_jsonl(f, skip_blank=True):
                if problem is not None or not isinstance(line, dict):
                    tally.problems.append(f"{path}:{number}: {problem or 'not a JSON object'}")
                    continue
                _import_line(path, number, line, cache, model, known, tally)
    return tally


def _import_line(path: Path, number: int, line: dict[str, Any], cache: Cache, model: str, known: set[str] | None,
                 tally: ImportTally) -> None:
    key, body, why = _answer(line)
    if body is None or key is None:
        tally.failed += 1
        tally.problems.append(f"{path}:{number}: {why}; the request is written again on the next pass")
        return
    earlier = cache.get(key)
    if earlier is not None:
        if _canonical(earlier) == _canonical(body):
            tally.duplicates += 1
        else:
            tally.conflicts += 1
            tally.problems.append(f"{path}:{number}: another answer to {key[:16]}... is already in the cache; the "
                                  "first one is kept")
        return
    if known is not None and key not in known:
        tally.unknown += 1
    cache.put(key, "batch", str(body.get("model") or model), body)
    tally.answers += 1


def _canonical(body: Any) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


def request_ids(folder: Path) -> tuple[set[str], list[str]]:
    """The custom_ids of the request files in `folder`, and a FILE:LINE problem for each line that has
    none (a line cut short): the import goes on without it."""
    ids: set[str] = set()
    problems: list[str] = []
    for path in sorted(folder.glob("*.jsonl")):
        with open(path, "rb") as f:
            for line in read_jsonl(f, skip_blank=True):
                try:
                    ids.add(request_id(path, *line))
                except ValueError as exc:
                    problems.append(f"{exc}; an answer to it counts among those not in the request files")
    return ids, problems


IMPORTED = Path("batch") / "imported.json"


def already_imported(ledger: Path, cache: Path) -> dict[str, str]:
    """The result files imported into `cache` before, by the SHA-256 of their content, whatever their
    name (OUT/batch/imported.json), so the loop's `batch import OUT results/*.jsonl` reads only the
    new ones."""
    try:
        entries = json.loads(ledger.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(entries, list):
        return {}
    into = str(cache.resolve())
    return {e["sha256"]: e["file"] for e in entries
            if isinstance(e, dict) and e.get("cache") == into and isinstance(e.get("sha256"), str)}


def record_imported(ledger: Path, cache: Path, files: dict[str, Path]) -> None:
    """Add the files just imported (by digest) to the ledger."""
    try:
        entries = json.loads(ledger.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        entries = []
    entries = entries if isinstance(entries, list) else []
    entries += [{"sha256": sha, "file": str(path), "cache": str(cache.resolve())} for sha, path in files.items()]
    ledger.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(ledger, (json.dumps(entries, indent=1) + "\n").encode("utf-8"))
