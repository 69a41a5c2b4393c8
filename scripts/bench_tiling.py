#!/usr/bin/env python3
"""Benchmark of the image side: rsgpt4v's tiling against the DOTA devkit's, on one synthetic DOTA folder.

    python scripts/bench_tiling.py [--images 8] [--size 4000] [--objects 150] [--workers N]
                                   [--devkit DIR [--devkit-python PY]] [--work DIR] [--json FILE]

Builds (once per set of arguments, seeded) a DOTA-layout folder of `--images` photo-textured
`--size`^2 PNGs with `--objects` oriented objects each, many straddling or poking a hair over the
edges of the 1024 px / 200 px-overlap windows (the case that used to stop a build), then:

1. a template-only dry run (`stages: []`: no model stage, every window written and its records
   built) with `--workers` processes (default one per core): windows/s, CPU seconds a window (the
   build process and its workers), PNG bytes, peak resident memory of the whole process tree;
2. the same command again: a rerun must encode no window (`counts.images_encoded` 0);
3. `validate` over the output;
4. with `--devkit DIR` (a checkout of the DOTA devkit the user fetched: DIR/ImgSplit_multi_process.py,
   run by `--devkit-python`, which needs numpy, opencv-python(-headless) and shapely), the devkit's
   ImgSplit_multi_process with as many processes on the same folder, and the ratios.

Everything runs in this one invocation, one after the other, so the ratios hold on a machine shared
with other work even when the seconds do not. Textures: 512 px patches of the bundled DOTA sample's
images (or `--textures DIR` of PNGs), scaled, turned, mirrored, colour-shifted, feathered together,
with mild noise: they compress like aerial photographs, not like flat colour or noise. Needs numpy.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CATEGORIES = {  # DOTA v1.0 category: (length range, width range) in px at gsd ~0.15 m
    "plane": ((40, 90), (35, 80)), "ship": ((25, 90), (8, 25)), "storage-tank": ((20, 70), (20, 70)),
    "baseball-diamond": ((90, 180), (90, 180)), "tennis-court": ((55, 80), (25, 40)),
    "basketball-court": ((60, 90), (30, 50)), "ground-track-field": ((250, 400), (150, 250)),
    "harbor": ((80, 300), (20, 60)), "bridge": ((150, 600), (20, 50)), "large-vehicle": ((35, 70), (10, 18)),
    "small-vehicle": ((15, 30), (7, 14)), "helicopter": ((30, 60), (25, 50)), "roundabout": ((80, 200), (80, 200)),
    "soccer-ball-field": ((200, 300), (120, 200)), "swimming-pool": ((20, 60), (10, 40)),
}
WEIGHTS = {"small-vehicle": 30, "large-vehicle": 18, "ship": 16, "plane": 6, "storage-tank": 8, "harbor": 5,
           "tennis-court": 4, "swimming-pool": 3, "bridge": 2, "basketball-court": 1, "baseball-diamond": 1,
           "ground-track-field": 1, "roundabout": 1, "soccer-ball-field": 1, "helicopter": 1}
PATCH, STEP, WINDOW, OVERLAP = 512, 448, 1024, 200


def window_starts(length: int) -> list[int]:
    if length <= WINDOW:
        return [0]
    return sorted({*range(0, length - WINDOW, WINDOW - OVERLAP), length - WINDOW})


def _ramp(n: int, feather: int) -> np.ndarray:
    r = np.ones(n, np.float32)
    t = (np.arange(feather, dtype=np.float32) + 0.5) / feather
    r[:feather] = 0.5 - 0.5 * np.cos(np.pi * t)
    r[-feather:] = r[:feather][::-1]
    return r


def _patch(src: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = src.shape[:2]
    scale = float(rng.uniform(0.75, 1.6))
    side = min(int(math.ceil(PATCH / scale)), h, w)
    y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = Image.fromarray(src[y:y + side, x:x + side]).resize((PATCH, PATCH), Image.Resampling.BICUBIC)
    patch = np.rot90(np.asarray(crop, np.float32), int(rng.integers(0, 4)))
    if rng.random() < 0.5:
        patch = patch[:, ::-1]
    return patch * rng.uniform(0.9, 1.1, size=3).astype(np.float32) + np.float32(rng.uniform(-8, 8))


def make_pixels(size: int, rng: np.random.Generator, textures: list[np.ndarray]) -> np.ndarray:
    acc = np.zeros((size, size, 3), np.float32)
    wsum = np.zeros((size, size, 1), np.float32)
    ramp = _ramp(PATCH, PATCH - STEP)
    weight = (ramp[:, None] * ramp[None, :])[..., None]
    offsets = list(range(-(PATCH - STEP) // 2, size, STEP))
    for y in offsets:
        for x in offsets:
            patch = _patch(textures[int(rng.integers(0, len(textures)))], rng)
            y0, x0, y1, x1 = max(y, 0), max(x, 0), min(y + PATCH, size), min(x + PATCH, size)
            sl = (slice(y0 - y, y1 - y), slice(x0 - x, x1 - x))
            acc[y0:y1, x0:x1] += patch[sl] * weight[sl]
            wsum[y0:y1, x0:x1] += weight[sl]
    img = acc / np.maximum(wsum, 1e-6) + rng.normal(0.0, 2.0, size=(size, size, 3)).astype(np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _rect(cx: float, cy: float, length: float, width: float, theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    local = np.array([(-length / 2, -width / 2), (length / 2, -width / 2), (length / 2, width / 2),
                      (-length / 2, width / 2)])
    return local @ np.array([[c, s], [-s, c]]) + (cx, cy)


def make_labels(size: int, n: int, rng: np.random.Generator) -> list[str]:
    """DOTA lines: 35 % straddle a window edge, 25 % poke 1-8 px over one, 3 % over the image border."""
    starts = window_starts(size)
    edges = sorted({*starts, *(s + WINDOW for s in starts)} - {0, size})
    names = list(WEIGHTS)
    p = np.array([WEIGHTS[k] for k in names], float) / sum(WEIGHTS.values())
    lines = ["imagesource:GoogleEarth", "gsd:0.146"]
    for _ in range(n):
        cat = names[int(rng.choice(len(names), p=p))]
        (l0, l1), (w0, w1) = CATEGORIES[cat]
        length, width = sorted((float(rng.uniform(l0, l1)), float(rng.uniform(w0, w1))), reverse=True)
        theta = float(rng.uniform(0, 2 * math.pi))
        margin = int(0.5 * math.hypot(length, width)) + 2
        cx, cy = (float(v) for v in rng.uniform(margin, size - margin, size=2))
        mode, axis = rng.random(), int(rng.integers(0, 2))
        pts = _rect(0.0, 0.0, length, width, theta)
        if mode < 0.35 and edges:
            e = float(edges[int(rng.integers(0, len(edges)))]) + float(rng.uniform(-0.4, 0.4)) * length
            cx, cy = (e, cy) if axis == 0 else (cx, e)
        elif mode < 0.60 and edges:
            e, poke = float(edges[int(rng.integers(0, len(edges)))]), float(rng.uniform(1, 8))
            c = e + poke - pts[:, axis].max() if rng.random() < 0.5 else e - poke - pts[:, axis].min()
            cx, cy = (c, cy) if axis == 0 else (cx, c)
        elif mode < 0.63:
            c = (size + float(rng.uniform(1, 6)) - pts[:, axis].max()) if rng.random() < 0.5 \
                else (-float(rng.uniform(1, 6)) - pts[:, axis].min())
            cx, cy = (c, cy) if axis == 0 else (cx, c)
        corners = np.rint(_rect(cx, cy, length, width, theta)).astype(int)
        lines.append(" ".join(str(int(v)) for v in corners.ravel()) + f" {cat} {int(rng.random() < 0.1)}")
    return lines


def make_folder(root: Path, images: int, size: int, objects: int, seed: int, textures: Path) -> Path:
    """The DOTA folder for these arguments, made once (root/images, root/labelTxt)."""
    done = root / "done.json"
    args = {"images": images, "size": size, "objects": objects, "seed": seed, "textures": str(textures)}
    if done.is_file() and json.loads(done.read_text()) == args:
        return root
    sources = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(textures.rglob("*.png"))]
    if not sources:
        sys.exit(f"no PNG textures under {textures}")
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labelTxt").mkdir(parents=True, exist_ok=True)
    for i in range(images):
        name = f"P{8000 + i}"
        Image.fromarray(make_pixels(size, np.random.default_rng([seed, i]), sources)).save(
            root / "images" / f"{name}.png", compress_level=6)
        lines = make_labels(size, objects, np.random.default_rng([seed, i, 1]))
        (root / "labelTxt" / f"{name}.txt").write_bytes(("\r\n".join(lines) + "\r\n").encode("ascii"))
    done.write_text(json.dumps(args))
    return root


def _tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        for task in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo += [int(c) for c in task.read_text().split()]
            except OSError:
                pass
    return pids


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _cpu(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Run `cmd`; wall seconds, CPU seconds of it and every process under it, and the peak of their
    summed resident memory (sampled every 20 ms, each process's CPU count at its last sample)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = 0
    cpu_seen: dict[int, float] = {}
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.wait(0.02):
            tree = _tree(proc.pid)
            peak = max(peak, sum(_rss(p) for p in tree))
            for p in tree:
                cpu_seen[p] = max(cpu_seen.get(p, 0.0), _cpu(p))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = proc.communicate()
    stop.set()
    sampler.join()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited {proc.returncode}:\n{output[-3000:]}")
    own = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # Every process of the tree as last sampled (the command's own rusage misses the workers a pool
    # starts from a server process it never waits for), or the rusage when that says more.
    return {"wall_s": wall, "cpu_s": max(own, sum(cpu_seen.values())), "peak_rss_mib": peak / 2**20}


def png_bytes(folder: Path) -> tuple[int, int]:
    files = list(folder.rglob("*.png"))
    return len(files), sum(f.stat().st_size for f in files)


DEVKIT_DRIVER = """
import sys
sys.path.insert(0, sys.argv[1])
from ImgSplit_multi_process import splitbase
split = splitbase(sys.argv[2], sys.argv[3], gap=200, subsize=1024, num_process=int(sys.argv[4]))
split.splitdata(1)
split.pool.close()
split.pool.join()
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--size", type=int, default=4000)
    ap.add_argument("--objects", type=int, default=150)
    ap.add_argument("--seed", type=int, default=18)
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--textures", type=Path, default=REPO / "rsgpt4v" / "sample_data" / "dota")
    ap.add_argument("--work", type=Path, default=Path("/tmp/rsgpt4v-bench-tiling"))
    ap.add_argument("--devkit", type=Path, help="a DOTA devkit checkout (holding ImgSplit_multi_process.py)")
    ap.add_argument("--devkit-python", default=sys.executable, help="a Python with numpy, cv2 and shapely")
    ap.add_argument("--json", type=Path, help="also write the figures to this file")
    a = ap.parse_args()

    folder = make_folder(a.work / f"dota-{a.images}x{a.size}-{a.objects}-{a.seed}", a.images, a.size, a.objects,
                         a.seed, a.textures)
    config = a.work / "template_only.yaml"
    config.write_text("stages: []   # template records only: the image side and the records, no model stage\n")
    # Interpreter start-up and imports, the fixed cost of each command, measured alone so the throughput
    # of the window writing itself can be compared too (it is what a build of 100k windows waits on).
    startup = run([sys.executable, "-c", "import rsgpt4v.cli, rsgpt4v.builder.pipeline"])["wall_s"]
    out = a.work / "rsgpt4v_out"
    build = [sys.executable, "-m", "rsgpt4v", "build", "--source", "dota", "--root", str(folder), "--dry-run",
             "--config", str(config), "--out", str(out), "--no-progress", "--workers", str(a.workers), "--force"]
    env = {k: v for k, v in os.environ.items() if k != "RSGPT4V_STRICT"}
    subprocess.run(["rm", "-rf", str(out)], check=True)
    first = run(build, env)
    manifest = json.loads((out / "manifest.json").read_text())
    windows = manifest["counts"]["windows"]
    files, size = png_bytes(out / "images")
    rerun = run(build, env)
    again = json.loads((out / "manifest.json").read_text())["counts"]
    valid = subprocess.run([sys.executable, "-m", "rsgpt4v", "validate", str(out)], capture_output=True, text=True)
    results = {"folder": str(folder), "images": a.images, "size": a.size, "objects": a.objects, "workers": a.workers,
               "rsgpt4v": {**first, "windows": windows, "records": manifest["counts"]["records"],
                           "windows_per_s": windows / first["wall_s"], "startup_s": startup,
                           "windows_per_s_after_startup": windows / max(first["wall_s"] - startup, 1e-9),
                           "cpu_s_per_window": first["cpu_s"] / windows,
                           "png_files": files, "png_bytes": size, "record_failures": manifest["counts"]["windows_failed"],
                           "validate": valid.stdout.strip()},
               "rerun": {**rerun, "images_encoded": again["images_encoded"]}}
    r = results["rsgpt4v"]
    print(f"folder: {folder} ({a.images} images of {a.size}^2 px, {a.objects} objects each); {a.workers} workers")
    print(f"rsgpt4v  : {windows} windows ({r['records']} records) in {r['wall_s']:.1f} s = {r['windows_per_s']:.1f} "
          f"windows/s ({r['windows_per_s_after_startup']:.1f} after {startup:.1f} s of start-up); "
          f"{r['cpu_s_per_window']:.3f} CPU-s a window; {size / 2**20:.0f} MiB of PNG; peak RSS "
          f"{r['peak_rss_mib']:.0f} MiB; failed windows {r['record_failures']}; validate: {r['validate']}")
    print(f"rerun    : {rerun['wall_s']:.1f} s, {again['images_encoded']} window images encoded")
    if a.devkit is not None:
        dk_out = a.work / "devkit_out"
        subprocess.run(["rm", "-rf", str(dk_out)], check=True)
        dk_startup = run([a.devkit_python, "-c", f"import sys; sys.path.insert(0, {str(a.devkit.resolve())!r}); "
                          "import ImgSplit_multi_process"])["wall_s"]
        dk = run([a.devkit_python, "-c", DEVKIT_DRIVER, str(a.devkit.resolve()), str(folder), str(dk_out),
                  str(a.workers)])
        dk_files, dk_size = png_bytes(dk_out / "images")
        results["devkit"] = {**dk, "windows": dk_files, "windows_per_s": dk_files / dk["wall_s"],
                             "startup_s": dk_startup,
                             "windows_per_s_after_startup": dk_files / max(dk["wall_s"] - dk_startup, 1e-9),
                             "cpu_s_per_window": dk["cpu_s"] / dk_files, "png_bytes": dk_size}
        d = results["devkit"]
        results["ratios"] = {"speed": r["windows_per_s"] / d["windows_per_s"],
                             "speed_after_startup": r["windows_per_s_after_startup"] / d["windows_per_s_after_startup"],
                             "cpu_per_window": r["cpu_s_per_window"] / d["cpu_s_per_window"],
                             "png_bytes_per_window": (size / files) / (dk_size / dk_files)}
        q = results["ratios"]
        print(f"devkit   : {dk_files} windows in {d['wall_s']:.1f} s = {d['windows_per_s']:.1f} windows/s "
              f"({d['windows_per_s_after_startup']:.1f} after {dk_startup:.1f} s of start-up); "
              f"{d['cpu_s_per_window']:.3f} CPU-s a window; {dk_size / 2**20:.0f} MiB of PNG; peak RSS "
              f"{d['peak_rss_mib']:.0f} MiB ({a.workers} processes)")
        print(f"ratios   : speed x{q['speed']:.2f} (rsgpt4v / devkit; x{q['speed_after_startup']:.2f} after start-up), "
              f"CPU a window x{q['cpu_per_window']:.2f}, "
              f"PNG bytes a window x{q['png_bytes_per_window']:.3f}")
    results["estimate"] = bench_estimate(folder, a)
    if a.json:
        a.json.write_text(json.dumps(results, indent=2) + "\n")


def _estimate(root: Path, *extra: str) -> tuple[dict, dict[str, float]]:
    cmd = [sys.executable, "-m", "rsgpt4v", "estimate", "--source", "dota", "--root", str(root), "--json", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return json.loads(proc.stdout), run(cmd)


def bench_estimate(folder: Path, a: argparse.Namespace) -> dict:
    """`estimate` (every model stage, mock answers) on the folder: a sample of half its images against
    --exact; then on a folder five times as large (the same pixels linked, labels drawn anew), timed."""
    exact, exact_run = _estimate(folder, "--exact")
    half = max(2, a.images // 2)
    sampled, sampled_run = _estimate(folder, "--sample-images", str(half))
    usd = exact["stages"][-1]["usd_live"]
    est = sampled["stages"][-1]["usd_live"]
    big = a.work / f"{folder.name}-x5"
    if not (big / "done").is_file():
        (big / "images").mkdir(parents=True, exist_ok=True)
        (big / "labelTxt").mkdir(parents=True, exist_ok=True)
        for i in range(5 * a.images):
            name = f"P{8000 + i}"
            target = big / "images" / f"{name}.png"
            if not target.exists():
                os.link(folder / "images" / f"P{8000 + i % a.images}.png", target)
            lines = make_labels(a.size, a.objects, np.random.default_rng([a.seed, i, 1]))
            (big / "labelTxt" / f"{name}.txt").write_bytes(("\r\n".join(lines) + "\r\n").encode("ascii"))
        (big / "done").write_text("")
    large, large_run = _estimate(big)
    results = {"exact_usd_live": usd, "exact_wall_s": exact_run["wall_s"],
               "sample": sampled["images_looked_at"], "sample_usd_live": est, "sample_margin": sampled["usd_live_margin"],
               "sample_error": est / usd - 1, "sample_wall_s": sampled_run["wall_s"],
               "large_images": large["images"], "large_looked_at": large["images_looked_at"],
               "large_wall_s": large_run["wall_s"], "large_cpu_s": large_run["cpu_s"]}
    print(f"estimate : {a.images} images --exact ${usd:,.2f} in {exact_run['wall_s']:.1f} s; a sample of "
          f"{results['sample']} ${est:,.2f} +- ${sampled['usd_live_margin']:,.2f} ({results['sample_error']:+.1%}) in "
          f"{sampled_run['wall_s']:.1f} s; {large['images']} images (default sample of {large['images_looked_at']}) "
          f"in {large_run['wall_s']:.1f} s, {large_run['cpu_s']:.1f} CPU-s")
    return results


if __name__ == "__main__":
    main()
