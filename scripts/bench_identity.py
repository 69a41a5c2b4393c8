"""The leakage guard's price per image: fingerprinting (open as the build opens, digest of the pixels,
perceptual hashes) against the decode alone, and against a greyscale draft read (the guard before it
hashed what the trainer sees: JPEG decoded at 1/8 scale, no stretch, no colour).

    python scripts/bench_identity.py [--n 40]

Prints milliseconds per image for each kind of image and the ratios, all measured in one run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rsgpt4v.builder.identity import fingerprint  # noqa: E402
from rsgpt4v.imaging.images import open_image  # noqa: E402
from scripts.native_tree import texture  # noqa: E402

LIMIT = 400_000_000


def draft_grey(path: Path) -> None:
    """The cheapest read a hash could use: a greyscale draft, thumbnails of it."""
    with Image.open(path) as im:
        im.draft("L", (64, 64))
        grey = im.convert("L")
    grey.resize((9, 8), Image.Resampling.BOX)
    grey.resize((8, 8), Image.Resampling.BOX)


def timed(work: Callable[[Path], object], paths: list[Path]) -> float:
    started = time.perf_counter()
    for path in paths:
        work(path)
    return (time.perf_counter() - started) / len(paths) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=40, help="images of each kind")
    n = parser.parse_args().n
    with tempfile.TemporaryDirectory() as scratch:
        kinds: dict[str, list[Path]] = {}
        for kind, side, suffix in (("jpeg 256", 256, ".jpg"), ("jpeg 600", 600, ".jpg"), ("png 1024", 1024, ".png"),
                                   ("16-bit tif 512", 512, ".tif")):
            kinds[kind] = []
            for i in range(n):
                path = Path(scratch) / f"{kind.replace(' ', '_')}_{i}{suffix}"
                im = texture(i, side)
                if kind.startswith("16-bit"):
                    im = im.convert("L").convert("I").point(lambda v: v * 4 + 1000).convert("I;16")
                im.save(path, **({"quality": 90} if suffix == ".jpg" else {}))
                kinds[kind].append(path)
        print(f"{'image':<16}{'fingerprint':>14}{'decode only':>14}{'grey draft':>13}{'fp/decode':>11}{'fp/draft':>10}")
        for kind, paths in kinds.items():
            fp = timed(lambda p: fingerprint(p, LIMIT), paths)
            decode = timed(lambda p: open_image(p, LIMIT), paths)
            draft = timed(draft_grey, paths)
            print(f"{kind:<16}{fp:>11.2f} ms{decode:>11.2f} ms{draft:>10.2f} ms{fp / decode:>10.2f}x{fp / draft:>9.1f}x")


if __name__ == "__main__":
    main()
