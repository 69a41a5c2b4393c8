"""Engine benchmarks: rate-limit efficiency, engine overhead, memory against dataset size, rerun cost.

    python scripts/bench_engine.py            # full run (several minutes: 11,000 images in (c))
    python scripts/bench_engine.py --quick    # smaller sizes, for a smoke test

Prints one table; every ratio is measured within this one run. Nothing leaves the machine: the
server is `rsgpt4v fake-server`'s FakeServer on 127.0.0.1, the builds use the mock.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import openai
from PIL import Image, ImageDraw
from pydantic import BaseModel

from rsgpt4v.core.config import load_config
from rsgpt4v.llm.cache import Cache
from rsgpt4v.llm.cost import PriceTable
from rsgpt4v.llm.engine import Engine
from rsgpt4v.llm.fakeserver import FakeAPI, FakeServer, Knobs
from rsgpt4v.llm.request import ChatRequest


class Reply(BaseModel):
    text: str


def _request(i: int) -> ChatRequest:
    return ChatRequest(stage="global", model="gpt-4o", response_model=Reply,
                       messages=[{"role": "user", "content": f"request number {i}"}],
                       params={"max_completion_tokens": 50})


async def _drive(engine: Engine, n: int) -> float:
    start = time.perf_counter()
    await asyncio.gather(*(engine.complete(_request(i)) for i in range(n)))
    return time.perf_counter() - start


def bench_rate(n: int, rpm: float, latency: float, concurrency: int, folder: Path) -> dict:
    """(a) Achieved request rate against a server enforcing `rpm` per second, with latency."""
    with FakeServer(Knobs(rpm=rpm, latency_s=latency)) as server:
        client = openai.AsyncOpenAI(api_key="x", base_url=server.url, max_retries=0)
        cfg = load_config(overrides={"engine": {"rpm": rpm, "concurrency": concurrency, "backoff_s": 0.05}}).engine
        engine = Engine(client, Cache(folder / "rate.sqlite"), cfg, "gpt-4o", PriceTable.load())
        asyncio.run(_drive(engine, n))
        # the rate at which the server admitted requests, first to last (latency is not throughput)
        stats = server.stats
        achieved = (stats.completed - 1) / (stats.last_admitted - stats.first_admitted) * 60
        return {"requests": n, "ceiling_rpm": rpm, "achieved_rpm": round(achieved), "fraction": achieved / rpm,
                "answered_429": server.stats.throttled, "share_429": server.stats.throttled / server.stats.requests}


def bench_overhead(n: int, folder: Path) -> dict:
    """(b) Requests per second through cache, limiter, retry and the real client, zero latency."""
    import httpx2

    client = openai.AsyncOpenAI(api_key="x", base_url="http://bench.invalid/v1", max_retries=0,
                                http_client=httpx2.AsyncClient(transport=FakeAPI().transport()))
    cfg = load_config(overrides={"engine": {"concurrency": 32}}).engine
    engine = Engine(client, Cache(folder / "overhead.sqlite"), cfg, "gpt-4o", PriceTable.load())
    elapsed = asyncio.run(_drive(engine, n))
    cached = asyncio.run(_drive(engine, n))
    return {"requests": n, "per_second": n / elapsed, "cached_per_second": n / cached}


def make_dataset(root: Path, n: int) -> None:
    """A DOTA-layout folder of `n` distinct small images with two objects each."""
    (root / "images").mkdir(parents=True)
    (root / "labelTxt").mkdir()
    label = b"imagesource:GoogleEarth\r\ngsd:0.5\r\n10 10 40 10 40 30 10 30 plane 0\r\n60 60 70 60 70 66 60 66 small-vehicle 0\r\n"
    for i in range(n):
        im = Image.new("RGB", (128, 128), (90, 100, 80))
        ImageDraw.Draw(im).text((4, 100), f"{i:05d}", fill=(255, 255, 255))
        im.save(root / "images" / f"P{i:05d}.png")
        (root / "labelTxt" / f"P{i:05d}.txt").write_bytes(label)


def child_build(root: str, out: str) -> None:
    """Run one dry-run build in this process, then print its peak resident memory (KiB)."""
    from typer.testing import CliRunner

    from rsgpt4v.cli import app

    result = CliRunner().invoke(app, ["build", "--source", "dota", "--root", root, "--dry-run", "--no-progress",
                                      "--out", out])
    assert result.exit_code == 0, result.output
    print(json.dumps({"maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def _build_in_child(root: Path, out: Path) -> tuple[int, float]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--child-build", str(root), str(out)], check=True,
                          capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["maxrss_kib"], time.perf_counter() - start


def bench_memory_and_rerun(sizes: tuple[int, int], folder: Path) -> dict:
    """(c) Peak memory of a build at two dataset sizes; (d) API calls when the first is rerun."""
    rows = {}
    for n in sizes:
        root = folder / f"data{n}"
        make_dataset(root, n)
        rss, seconds = _build_in_child(root, folder / f"out{n}")
        rows[n] = {"maxrss_mib": rss / 1024, "seconds": seconds,
                   "api_calls": json.loads((folder / f"out{n}" / "manifest.json").read_text())["usage"]["api_calls"]}
    small = sizes[0]
    before = (folder / f"out{small}" / "train.jsonl").read_bytes()
    _build_in_child(folder / f"data{small}", folder / f"out{small}")
    manifest = json.loads((folder / f"out{small}" / "manifest.json").read_text())
    rows["rerun"] = {"api_calls": manifest["usage"]["api_calls"], "cache_hits": manifest["usage"]["cache_hits"],
                     "identical": (folder / f"out{small}" / "train.jsonl").read_bytes() == before}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child-build", nargs=2)
    args = parser.parse_args()
    if args.child_build:
        child_build(*args.child_build)
        return
    sizes = (200, 2000) if args.quick else (1000, 10000)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rate = bench_rate(120 if args.quick else 600, rpm=1200, latency=0.3, concurrency=32, folder=folder)
        overhead = bench_overhead(500 if args.quick else 2000, folder)
        memory = bench_memory_and_rerun(sizes, folder)
    print("| benchmark | measured | target |")
    print("| --- | --- | --- |")
    print(f"| (a) rate vs RPM ceiling ({rate['requests']} requests, {rate['ceiling_rpm']:.0f} RPM enforced per second, "
          f"0.3 s latency) | {rate['achieved_rpm']} RPM = {rate['fraction']:.1%} of ceiling; "
          f"{rate['answered_429']} answered 429 ({rate['share_429']:.2%}) | >= 95 %, < 1 % 429 |")
    print(f"| (b) engine overhead, zero latency ({overhead['requests']} requests, in-process transport) | "
          f"{overhead['per_second']:.0f} requests/s sent; {overhead['cached_per_second']:.0f} requests/s from cache | - |")
    a, b = sizes
    ratio = memory[b]["maxrss_mib"] / memory[a]["maxrss_mib"]
    print(f"| (c) peak memory, dry-run build of {a:,} vs {b:,} images | {memory[a]['maxrss_mib']:.0f} MiB vs "
          f"{memory[b]['maxrss_mib']:.0f} MiB (x{ratio:.2f}); {memory[a]['seconds']:.0f} s vs {memory[b]['seconds']:.0f} s "
          f"| within 20 % |")
    r = memory["rerun"]
    print(f"| (d) rerun of the finished {a:,}-image build | {r['api_calls']} API calls, {r['cache_hits']} cache hits, "
          f"output identical: {r['identical']} | 0 calls |")


if __name__ == "__main__":
    main()
