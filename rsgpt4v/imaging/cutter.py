"""The image side of a build: a source image decoded once in a worker process, its windows cut,
encoded and written, and what the model stages need of them handed back.

Decoding and encoding are the CPU work of a build, so they run in a pool of processes (`Cutter`,
one per core by default: `image.workers`) while the main process builds records and talks to the
model. Jobs are whole images (one decode serves all of an image's windows, as in the DOTA devkit);
the build submits them ahead, within its pixel budget, and takes each image's windows as soon as
its job is done.

A window file that an earlier run wrote from the same source bytes with the same settings (its
`key`, which the writer keeps beside the file's size) is left as it is: a rerun decodes and encodes
nothing it does not need. Every write goes to a path the writer built (`rsgpt4v.core.paths`).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import threading
import time
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from rsgpt4v.core.files import write_atomic
from rsgpt4v.imaging.images import decode, encode, fit, stretch_kind

# Changes whenever what a window file holds for the same pixels and settings changes (the PNG writer).
ENCODER = "png-sub-deflate1-rle/jpeg-q95-optimized"
WRITTEN_JPEG_QUALITY = 95


@dataclass(frozen=True)
class WindowOut:
    """One window of a job: where its file goes (None: written nowhere, as in an estimate), as what
    (`png`, `jpg`, or `copy`: the source file's own bytes, when it is whole and 8-bit), and the key
    and size an earlier run recorded for that file."""

    window: tuple[int, int, int, int]
    path: Path | None
    fmt: str
    known: tuple[str, int] | None = None


@dataclass(frozen=True)
class View:
    """What the model stages need of each window: the window fitted to `max_side` and encoded as
    `fmt` (the image a request sends), and its pixels (the local stage draws its marks on them)."""

    max_side: int
    fmt: str
    quality: int


@dataclass(frozen=True)
class ImageJob:
    path: Path
    max_pixels: int
    windows: tuple[WindowOut, ...]
    view: View | None


@dataclass(frozen=True)
class Viewed:
    """One window as the model stages see it: pixels (mode RGB) fitted to the view's side, the bytes a
    request sends, and the scale from source pixels."""

    size: tuple[int, int]
    pixels: bytes
    sent: bytes
    scale: float

    def image(self) -> Image.Image:
        return Image.frombytes("RGB", self.size, self.pixels)


@dataclass(frozen=True)
class WindowDone:
    key: str
    size: int
    fmt: str
    view: Viewed | None


@dataclass(frozen=True)
class ImageDone:
    """A finished job: per window in job order, and the kind of image it was stretched from (None:
    8-bit); `encoded` counts the window files encoded (not left as an earlier run wrote them)."""

    windows: tuple[WindowDone, ...]
    stretched: str | None
    encoded: int


def window_key(source_digest: str, out: WindowOut) -> str:
    """What a window file's bytes depend on: the source's bytes, the window, the format and the encoder."""
    return hashlib.sha256(f"{source_digest}|{out.window}|{out.fmt}|{ENCODER}".encode()).hexdigest()[:32]


def _current(out: WindowOut, key: str) -> bool:
    """Whether the file at `out.path` is the one an earlier run wrote for `key`, by key and size."""
    if out.known is None or out.known[0] != key or out.path is None:
        return False
    try:
        return out.path.stat().st_size == out.known[1]
    except OSError:
        return False


def holds(path: Path, data: bytes) -> bool:
    """Whether the file at `path` has exactly `data` (sizes first: most changes change the size)."""
    try:
        return path.stat().st_size == len(data) and path.read_bytes() == data
    except FileNotFoundError:
        return False


def cut(job: ImageJob) -> ImageDone:
    """Do one job (in a worker process): decode the image only when a window file is out of date or
    the model stages need the pixels; ImageError when the image cannot be used."""
    with open(job.path, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    keys = [window_key(digest, out) for out in job.windows]
    todo = {i for i, (out, key) in enumerate(zip(job.windows, keys)) if out.path is not None and not _current(out, key)}
    if not todo and job.view is None:
        known = [out.known[1] if out.known else 0 for out in job.windows]
        return ImageDone(tuple(WindowDone(key, size, out.fmt, None) for key, size, out in zip(keys, known, job.windows)),
                         stretch_kind(job.path, job.max_pixels), 0)
    image, stretched = decode(job.path, job.max_pixels)
    done = []
    for i, (out, key) in enumerate(zip(job.windows, keys)):
        whole = out.window == (0, 0, image.width, image.height)
        window = image if whole else image.crop(out.window)
        size = out.known[1] if out.known else 0
        if i in todo:
            size = _write(out, window, job.path, stretched)
        done.append(WindowDone(key, size, out.fmt, _view(window, job.view) if job.view else None))
    return ImageDone(tuple(done), stretched, len(todo))


def _write(out: WindowOut, window: Image.Image, source: Path, stretched: str | None) -> int:
    """Write one window file unless it already holds these bytes; its size."""
    assert out.path is not None
    if out.fmt == "copy" and stretched is None:
        data = source.read_bytes()
    else:
        fmt = out.path.suffix.lstrip(".") if out.fmt == "copy" else out.fmt
        data = encode(window, fmt, quality=WRITTEN_JPEG_QUALITY)
    if not holds(out.path, data):
        write_atomic(out.path, data)
    return len(data)


def _view(window: Image.Image, view: View) -> Viewed:
    clean, scale = fit(window, view.max_side)
    return Viewed(clean.size, clean.tobytes(), encode(clean, view.fmt, view.quality), scale)


def default_workers() -> int:
    """One worker per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _outlive_no_build(build: int) -> None:
    """In a worker: exit when the build process is gone. A build killed outright (SIGKILL) cannot
    shut its pool down, and idle workers would wait on their job queue forever."""
    def watch() -> None:
        while True:
            time.sleep(1.0)
            try:
                os.kill(build, 0)
            except ProcessLookupError:
                os._exit(1)
            except PermissionError:  # the pid was reused by another user's process: ours is gone
                os._exit(1)

    threading.Thread(target=watch, name="build-watch", daemon=True).start()


class Cutter:
    """A pool of `workers` processes doing `cut` jobs. Workers start from a small server process
    (forkserver), not from the build's own process with its threads and open files. One worker is a
    thread of the build process instead: a second process would only add its start-up (decoding
    and zlib let go of the interpreter while they work)."""

    def __init__(self, workers: int) -> None:
        if workers == 1:
            self._pool: Executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cutter")
            return
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["rsgpt4v.imaging.cutter"])
        self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_outlive_no_build,
                                         initargs=(os.getpid(),))

    def submit(self, job: ImageJob) -> Future[ImageDone]:
        return self._pool.submit(cut, job)

    def close(self, cancel: bool = False) -> None:
        self._pool.shutdown(wait=True, cancel_futures=cancel)
