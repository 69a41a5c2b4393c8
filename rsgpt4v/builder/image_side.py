"""The build's image side: each sample's windows written and made ready for the model stages by the
worker pool of `rsgpt4v.imaging.cutter`, streamed to the build in sample order.

The build submits a sample's job as soon as its scenes are known (from the image header alone) and
takes finished jobs in the order it submitted them, so the model stages start on the first
image's windows while the pool cuts the next ones. What is held is bounded by the pixel budget
(`engine.max_pixels_in_flight`): a job holds its decoded image until it is done, and the windows it
hands to the model stages until their scenes are done. An image whose windows for the model
stages would not fit the budget together is cut in several jobs (each decodes it again), so a
20000 x 20000 image never holds all its windows at once. An estimate decodes nothing: its views are
sized placeholders made here.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from rsgpt4v.core.config import BuildConfig
from rsgpt4v.core.schema import Sample, Scene
from rsgpt4v.imaging.cutter import Cutter, ImageDone, ImageJob, View, WindowDone, WindowOut, default_workers
from rsgpt4v.imaging.images import ImageError, data_url, fit_size, png_header
from rsgpt4v.imaging.pixel_budget import PixelBudget
from rsgpt4v.prompting.stages import SentImage, WindowView
from rsgpt4v.records.writer import DatasetWriter


@dataclass
class ReadyWindow:
    """One scene's window, ready: its image's path under OUT, what the model stages see of it (None
    when no stage runs), and the pixels of the budget it holds until its scene is done."""

    scene: Scene
    rel_image: str
    view: WindowView | None
    pixels: int


@dataclass
class ReadyImage:
    """One job of a sample done (an image's windows, or a part of them): its windows, or the
    ImageError that kept it from being cut; whether it is the sample's first part; the kind of image
    it was stretched from; how many window files were encoded."""

    sample: Sample
    windows: list[ReadyWindow]
    first: bool = True
    error: ImageError | None = None
    stretched: str | None = None
    encoded: int = 0


@dataclass
class _Submitted:
    sample: Sample
    scenes: list[Scene]
    plans: list[WindowOut]
    future: asyncio.Future[ImageDone] | None
    first: bool


# Called by `submit` while the budget has no room: the build takes the oldest job (whose windows
# then belong to scenes, which give their room back as they finish on their own).
MakeRoom = Callable[[], Awaitable[None]]


class ImageSide:
    """Submits jobs to the pool (or, for an estimate, makes placeholder views) and hands finished
    jobs back in submission order."""

    def __init__(self, cfg: BuildConfig, writer: DatasetWriter, budget: PixelBudget, estimate: bool) -> None:
        self.cfg = cfg
        self.writer = writer
        self.budget = budget
        self.estimate = estimate
        self.workers = cfg.image.workers or default_workers()
        self.views = bool(cfg.stages)
        self._cutter = None if estimate else Cutter(self.workers)
        self._jobs: deque[_Submitted] = deque()

    @property
    def full(self) -> bool:
        """Enough jobs in flight to keep every worker busy while the build takes the oldest."""
        return len(self._jobs) > 2 * self.workers

    @property
    def ready(self) -> bool:
        """Whether the oldest job is done: the build takes it at once, so its scenes start."""
        return bool(self._jobs) and (self._jobs[0].future is None or self._jobs[0].future.done())

    def __len__(self) -> int:
        return len(self._jobs)

    async def submit(self, sample: Sample, scenes: list[Scene], size: tuple[int, int], make_room: MakeRoom) -> None:
        """Start cutting a sample's windows, each job once the budget has room for it: a job holds its
        decoded image while the worker does, and its windows for the model stages until their scenes
        are done. Jobs submitted earlier are taken (`make_room`) before waiting for room, so the wait is
        only ever for work under way."""
        plans = [self.writer.plan(s.image_name, sample.image_path, s.window, s.window == (0, 0, *size))
                 for s in scenes]
        if self._cutter is None or not scenes:
            self._jobs.append(_Submitted(sample, scenes, plans, None, True))
            return
        view = View(self.cfg.image.max_side, self.cfg.image.encode, self.cfg.image.jpeg_quality) if self.views else None
        image_pixels = size[0] * size[1]
        start = 0
        for i, part in enumerate(self._parts(plans)):
            held = image_pixels + sum(self._view_pixels(p) for p in part)
            while self._jobs and not self.budget.fits(held):
                await make_room()
            await self.budget.acquire(held)
            job = ImageJob(sample.image_path, self.cfg.image.max_pixels, tuple(part), view)
            future = asyncio.wrap_future(self._cutter.submit(job))
            future.add_done_callback(lambda _, n=image_pixels: self.budget.release(n))
            self._jobs.append(_Submitted(sample, scenes[start:start + len(part)], part, future, i == 0))
            start += len(part)

    def _parts(self, plans: list[WindowOut]) -> list[list[WindowOut]]:
        """The windows of one image in jobs whose views fit a quarter of the budget each (all in one
        job when no views are made, or when they fit)."""
        share = self.budget.max_pixels // 4
        parts: list[list[WindowOut]] = [[]]
        held = 0
        for plan in plans:
            pixels = self._view_pixels(plan)
            if parts[-1] and held + pixels > share:
                parts.append([])
                held = 0
            parts[-1].append(plan)
            held += pixels
        return parts

    def _view_pixels(self, plan: WindowOut) -> int:
        if not self.views:
            return 0
        x0, y0, x1, y1 = plan.window
        (w, h), _ = fit_size((x1 - x0, y1 - y0), self.cfg.image.max_side)
        return w * h

    async def take(self) -> ReadyImage:
        """The oldest submitted job, when it is done."""
        job = self._jobs.popleft()
        result = None
        if job.future is not None:
            try:
                result = await job.future
            except ImageError as exc:
                # No scene will hold these windows: give their room back.
                self.budget.release(sum(self._view_pixels(p) for p in job.plans))
                return ReadyImage(job.sample, [], job.first, exc)
        ready = []
        for i, (scene, plan) in enumerate(zip(job.scenes, job.plans)):
            if result is None:
                rel, view = f"{scene.image_name}.{plan.fmt}", self._placeholder(scene) if self.views else None
                pixels = 0
            else:
                w = result.windows[i]
                self.writer.written(plan, w.key, w.size)
                rel = self.writer.rel(plan)
                view = _view(w, self.cfg.image.encode) if w.view is not None else None
                pixels = self._view_pixels(plan)
            ready.append(ReadyWindow(scene, rel, view, pixels))
        return ReadyImage(job.sample, ready, job.first, None, result and result.stretched,
                          result.encoded if result else 0)

    def _placeholder(self, scene: Scene) -> WindowView:
        """An estimate's view: a PNG header of the size the window would be sent at, and no pixels."""
        (w, h), scale = fit_size((scene.width, scene.height), self.cfg.image.max_side)
        return WindowView(SentImage(url=data_url(png_header(w, h), "png"), width=w, height=h, scale=scale), None)

    def close(self, cancel: bool = False) -> None:
        # A build that stops early leaves jobs it never took; one that failed on its own (a full
        # disk while another image was being written) would otherwise be logged as "never retrieved"
        # whenever it is collected, after the build has already reported why it stopped.
        for job in self._jobs:
            if job.future is not None and not job.future.cancel() and not job.future.cancelled():
                job.future.exception()
        self._jobs.clear()
        if self._cutter is not None:
            self._cutter.close(cancel)


def _view(done: WindowDone, fmt: str) -> WindowView:
    assert done.view is not None
    v = done.view
    return WindowView(SentImage(url=data_url(v.sent, fmt), width=v.size[0], height=v.size[1], scale=v.scale),
                      v.image())

