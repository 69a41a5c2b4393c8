"""Peak memory of a build over very large images: it must stay flat however large or many they are.

Writes DOTA-layout folders of N synthetic images of S x S pixels (a gradient, so the PNGs stay
small on disk) with a few labelled objects in four windows of each, serves them a slow fake API
(`rsgpt4v fake-server --latency`), runs `rsgpt4v build` in a child process and reads its peak RSS.
Prints a table; the figure to watch is the ratio of 4 images to 1 image at the largest size.

    python scripts/bench_memory.py            # 4000 and 12000 px, 1 and 4 images
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from rsgpt4v.llm.fakeserver import FakeServer, Knobs


def write_dota(root: Path, n: int, side: int) -> None:
    (root / "images").mkdir(parents=True)
    (root / "labelTxt").mkdir()
    gradient = Image.linear_gradient("L").resize((side, side)).convert("RGB")
    for i in range(n):
        gradient.save(root / "images" / f"P{i:04d}.png", compress_level=1)
        lines = ["imagesource:synthetic", "gsd:0.5"]
        for wx, wy in ((0, 0), (side // 2, 0), (0, side // 2), (side // 2, side // 2)):
            for k in range(5):
                x, y = wx + 100 + 60 * k, wy + 100
                lines.append(f"{x} {y} {x + 40} {y} {x + 40} {y + 20} {x} {y + 20} small-vehicle 0")
        (root / "labelTxt" / f"P{i:04d}.txt").write_text("\r\n".join(lines) + "\r\n")


def peak_rss_mib(root: Path, out: Path, url: str) -> tuple[float, float]:
    """(seconds, peak RSS of the build process in MiB): each build runs in a fresh child of a fresh
    child, so RUSAGE_CHILDREN of the middle process is this build's alone."""
    code = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    env = {**os.environ, "OPENAI_BASE_URL": url, "OPENAI_API_KEY": "bench"}
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "rsgpt4v", "build", "--source", "dota",
                           "--root", str(root), "--backend", "openai", "--no-progress", "--out", str(out)],
                          env=env, capture_output=True, text=True, check=True)
    return time.monotonic() - start, int(done.stdout.split()[-1]) / 1024


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [4000, 12000]
    rows = []
    with tempfile.TemporaryDirectory() as tmp, FakeServer(Knobs(latency_s=0.3)) as server:
        for side in sizes:
            for n in (1, 4):
                root = Path(tmp) / f"d{side}_{n}"
                write_dota(root, n, side)
                seconds, mib = peak_rss_mib(root, Path(tmp) / f"out{side}_{n}", server.url)
                rows.append((side, n, seconds, mib))
    print(f"{'image side':>10} {'images':>6} {'decoded MiB each':>16} {'wall s':>7} {'peak RSS MiB':>12}")
    for side, n, seconds, mib in rows:
        print(f"{side:>10} {n:>6} {side * side * 3 / 2**20:>16.0f} {seconds:>7.1f} {mib:>12.0f}")
    by = {(s, n): m for s, n, _, m in rows}
    big = max(sizes)
    print(f"peak RSS, 4 images / 1 image at {big} px: x{by[(big, 4)] / by[(big, 1)]:.2f}")


if __name__ == "__main__":
    main()
