"""Request files for any batch engine and `batch import` of their results: a test plays vLLM's
run-batch (same custom_id, OpenAI batch-output lines) and the dataset must equal a live build's."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import collect_output
from typer.testing import CliRunner

from rsgpt4v.cli import app
from rsgpt4v.llm.batch import BatchQueue
from rsgpt4v.llm.batch_files import import_results, write_request_files
from rsgpt4v.llm.cache import Cache
from rsgpt4v.llm.mock import completion_for
from scripts.native_tree import write_tree

RECIPE = ("sources:\n  - {source: rsicd, root: rsicd, stages: [global, dialogue]}\n"
          "  - {source: dior-rsvg, root: dior-rsvg, stages: [local, global]}\n"
          "  - {source: rsvqa-lr, root: rsvqa-lr, stages: []}\n")


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*args], catch_exceptions=False)
    return result.exit_code, result.output


def vllm_run_batch(request_file: Path, result_file: Path) -> int:
    """What `vllm run-batch -i request_file -o result_file` writes: one output line per request."""
    lines = []
    for n, raw in enumerate(request_file.read_text(encoding="utf-8").splitlines()):
        request = json.loads(raw)
        assert request["method"] == "POST" and request["url"] == "/v1/chat/completions"
        lines.append(json.dumps({"id": f"vllm-{n}", "custom_id": request["custom_id"],
                                 "response": {"status_code": 200, "request_id": f"vllm-batch-{n}",
                                              "body": completion_for(request["body"])},
                                 "error": None}))
    result_file.parent.mkdir(parents=True, exist_ok=True)
    result_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)


def dataset(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and (p.suffix == ".jsonl" and p.parent == out or "images" in p.parts)}


def test_files_engine_then_import_equals_a_live_build(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_tree(data, per_source=5)
    recipe = tmp_path / "mix.yaml"
    recipe.write_text(RECIPE, encoding="utf-8")
    live = tmp_path / "live"
    code, output = run("build", "--recipe", str(recipe), "--data", str(data), "--dry-run", "--no-progress",
                       "--out", str(live))
    assert code == 0, output
    out = tmp_path / "files"
    args = ("build", "--recipe", str(recipe), "--data", str(data), "--dry-run", "--no-progress", "--batch",
            "--batch-engine", "files", "--out", str(out))
    passes = []
    for _ in range(4):
        code, output = run(*args)
        assert code == 0, output
        status = json.loads((out / "manifest.json").read_text())["status"]
        if status == "complete":
            break
        assert status == "requests_written" and "vllm run-batch -i" in output and "batch import" in output
        requests = sorted((out / "batch" / "requests").glob("*.jsonl"))
        assert requests and not (out / "train.jsonl").exists()
        results = [out / "batch" / "results" / f"pass{len(passes)}-{f.name}" for f in requests]
        passes.append(sum(vllm_run_batch(f, r) for f, r in zip(requests, results)))
        code, output = run("batch", "import", str(out), *map(str, results))
        assert code == 0, output
        assert f"imported {passes[-1]} answers" in output
    # pass 1: DIOR-RSVG local (6 samples: one image in two splits) + RSICD global (5);
    # pass 2: DIOR-RSVG global + RSICD dialogue; then the dataset
    assert passes == [11, 11] and status == "complete"
    assert not list((out / "batch" / "requests").glob("*.jsonl"))
    assert dataset(out) == dataset(live)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["usage"]["api_calls"] == 0


def test_single_source_files_engine_names_files_after_the_source(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, output = run("build", "--source", "dota", "--sample", "--dry-run", "--no-progress", "--batch",
                       "--batch-engine", "files", "--out", str(out))
    assert code == 0, output
    files = sorted(p.name for p in (out / "batch" / "requests").glob("*.jsonl"))
    assert files == ["dota-001.jsonl"]
    first = json.loads((out / "batch" / "requests" / files[0]).read_text().splitlines()[0])
    assert set(first) == {"custom_id", "method", "url", "body"} and first["body"]["model"]


def test_request_files_split_and_replace_an_earlier_pass(tmp_path: Path) -> None:
    queue = BatchQueue()
    for i in range(5):
        queue.add(f"k{i}", "global", {"model": "m", "messages": [{"role": "user", "content": "x" * 10}]})
    folder = tmp_path / "requests"
    assert [p.name for p in write_request_files(queue, folder, "rsicd", 2, 10_000)] == [
        "rsicd-001.jsonl", "rsicd-002.jsonl", "rsicd-003.jsonl"]
    (folder / "other-001.jsonl").write_text("{}\n")
    assert [p.name for p in write_request_files(queue, folder, "rsicd", 5, 10_000)] == ["rsicd-001.jsonl"]
    assert sorted(p.name for p in folder.iterdir()) == ["other-001.jsonl", "rsicd-001.jsonl"]
    assert write_request_files(BatchQueue(), folder, "rsicd", 5, 10_000) == []
    assert sorted(p.name for p in folder.iterdir()) == ["other-001.jsonl"]


def test_import_keeps_answers_and_names_every_bad_line(tmp_path: Path) -> None:
    body = completion_for({"model": "m", "messages": []})
    results = tmp_path / "results.jsonl"
    results.write_text("\n".join([
        json.dumps({"custom_id": "a", "response": {"status_code": 200, "body": body}, "error": None}),
        json.dumps({"custom_id": "b", "response": {"status_code": 500, "body": {"error": {"message": "boom"}}}}),
        json.dumps({"custom_id": "c", "response": None, "error": {"message": "expired"}}),
        "{not json",
        json.dumps({"response": {"status_code": 200, "body": body}}),
        "",
    ]), encoding="utf-8")
    cache = Cache(tmp_path / "cache.sqlite")
    tally = import_results([results], cache, "m", known={"b", "c"})
    assert (tally.answers, tally.failed, tally.unknown) == (1, 3, 1)
    assert cache.get("a") == body and cache.get("b") is None
    assert tally.problems == [
        f"{results}:2: status 500: boom; the request is written again on the next pass",
        f"{results}:3: no response (expired); the request is written again on the next pass",
        f"{results}:4: invalid JSON: Expecting property name enclosed in double quotes: column 2",
        f"{results}:5: no custom_id; the request is written again on the next pass",
    ]
    cache.close()
    code, output = run("batch", "import", str(tmp_path), str(results))  # the same file again, into the same cache
    assert code == 1 and "imported 0 answers" in output and "1 already in the cache" in output


def test_import_reads_line_by_line_through_separators_bad_bytes_and_a_cut_last_line(tmp_path: Path) -> None:
    """A U+2028 or CR inside an answer does not split its line; a line that is not UTF-8 and a last
    line cut off are named, and the lines around them imported."""
    def line(key: str, text: str) -> bytes:
        body = completion_for({"model": "m", "messages": []})
        body["choices"][0]["message"]["content"] = text
        record = {"custom_id": key, "response": {"status_code": 200, "body": body}}
        return json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n"

    results = tmp_path / "results.jsonl"
    results.write_bytes(line("a", "one\u2028two") + b'{"custom_id": "\xff"}\n' + line("b", "three")
                        + line("c", "four")[:30])
    cache = Cache(tmp_path / "cache.sqlite")
    tally = import_results([results], cache, "m")
    assert tally.answers == 2
    assert cache.get("a")["choices"][0]["message"]["content"] == "one\u2028two"
    assert cache.get("b")["choices"][0]["message"]["content"] == "three"
    assert tally.problems == [f"{results}:2: invalid JSON: not UTF-8 text (byte 16 of the line)",
                              f"{results}:4: truncated: the last line is cut off "
                              "(Expecting value: column 31)"]
    cache.close()


def test_collect_reads_batch_output_line_by_line_and_counts_a_bad_line_as_failed(tmp_path: Path) -> None:
    """The Batch API's output file through the same reader: a U+2028 inside an answer does not split
    its line, and a line that cannot be read is counted failed (its request goes in the next pass)."""
    def answer(key: str, text: str) -> bytes:
        body = completion_for({"model": "m", "messages": []})
        body["choices"][0]["message"]["content"] = text
        record = {"custom_id": key, "response": {"status_code": 200, "body": body}}
        return json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n"

    tally, cache = collect_output(tmp_path, answer("a", "one\u2028two") + b"{oops\n\n" + answer("b", "three"))
    assert tally == {"answers": 2, "failed": 1, "rejected": 0}
    assert cache.get("a")["choices"][0]["message"]["content"] == "one\u2028two"
    assert cache.get("b")["choices"][0]["message"]["content"] == "three"
    cache.close()
