"""A worked example at scale: the bundled rs-gpt4v recipe over a synthetic ten-source tree.

For each size (images in all), writes the ten sources in their native layouts (scripts/native_tree.py,
with its planted cross-source duplicates: one byte-identical, one resized, one re-encoded as JPEG,
one slightly cropped), then runs `rsgpt4v build --recipe rs-gpt4v --dry-run` in a child process
(the mock answers through the real openai client) and prints wall time, the child's peak resident
memory and records per second, then a rerun (everything from the cache), then the peak of the
recipe's most memory-hungry source built alone: the floor under the recipe's peak, so the last
column is what the recipe itself costs above it.

    python scripts/simulate_scale.py                       # 1,000, 5,000 and 20,000 images
    python scripts/simulate_scale.py --sizes 500,2000      # any sizes
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scripts.native_tree import SOURCES  # noqa: E402

LARGEST = "dior-rsvg"


def run_child(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"build failed:\n{stderr}")
    return wall, usage.ru_maxrss / 1024


def one_size(images: int, scratch: Path) -> dict[str, object]:
    data, out = scratch / f"data{images}", scratch / f"out{images}"
    # In a child of its own: Linux counts a forked child's pre-exec pages in its peak RSS, so a parent
    # grown by writing the tree would inflate every build's measured memory.
    subprocess.run([sys.executable, "-c", f"from scripts.native_tree import write_tree; from pathlib import Path; "
                    f"write_tree(Path({str(data)!r}), per_source={images // len(SOURCES)})"],
                   cwd=Path(__file__).resolve().parents[1], check=True)
    build = [sys.executable, "-m", "rsgpt4v", "build", "--recipe", "rs-gpt4v", "--data", str(data),
             "--dry-run", "--no-progress", "--out", str(out)]
    wall, peak = run_child(build)
    manifest = json.loads((out / "manifest.json").read_text())
    rerun_wall, rerun_peak = run_child(build)
    rerun = json.loads((out / "manifest.json").read_text())
    # The floor under the recipe's peak: its most memory-hungry source (DIOR-RSVG: object-level splits
    # read whole, all three stages) built alone.
    _, alone_peak = run_child([sys.executable, "-m", "rsgpt4v", "build", "--source", LARGEST, "--root",
                               str(data / LARGEST), "--dry-run", "--no-progress", "--out", str(scratch / "alone")])
    for folder in (data, out, scratch / "alone"):
        shutil.rmtree(folder)
    records = manifest["counts"]["records"]
    return {"images": images, "records": records, "requests": manifest["usage"]["api_calls"], "wall_s": wall,
            "peak_mib": peak, "records_per_s": records / wall, "clusters": manifest["leakage"]["clusters"],
            "dropped": sum(manifest["leakage"]["dropped_from_train"].values()),
            "rerun_s": rerun_wall, "rerun_peak_mib": rerun_peak, "rerun_calls": rerun["usage"]["api_calls"],
            "alone_peak_mib": alone_peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,5000,20000", help="comma-separated image counts")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for images in (int(s) for s in args.sizes.split(",")):
            rows.append(one_size(images, Path(scratch)))
            r = rows[-1]
            print(f"{r['images']:>7,} images: {r['wall_s']:.1f} s, {r['peak_mib']:.0f} MiB", file=sys.stderr)
    print("| images | records | mock requests | wall | peak memory | records/s | clusters found | training images "
          f"dropped | rerun (cache only) | {LARGEST} alone | recipe above it |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['images']:,} | {r['records']:,} | {r['requests']:,} | {r['wall_s']:.1f} s | {r['peak_mib']:.0f} MiB "
              f"| {r['records_per_s']:.0f} | {r['clusters']} | {r['dropped']} | {r['rerun_s']:.1f} s, "
              f"{r['rerun_peak_mib']:.0f} MiB, {r['rerun_calls']} calls | {r['alone_peak_mib']:.0f} MiB "
              f"| {r['peak_mib'] - r['alone_peak_mib']:.1f} MiB |")
    base = rows[0]
    for r in rows[1:]:
        scale = r["images"] / base["images"]
        print(f"\n{r['images']:,} vs {base['images']:,} images (x{scale:.0f}): wall x{r['wall_s'] / base['wall_s']:.1f}, "
              f"peak memory x{r['peak_mib'] / base['peak_mib']:.2f} ({LARGEST} alone "
              f"x{r['alone_peak_mib'] / base['alone_peak_mib']:.2f})")


if __name__ == "__main__":
    main()
