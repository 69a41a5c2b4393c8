"""A bound on the window pixels a build holds at once, whatever the sizes of its images.

Every scene in flight holds its window image until its answers are in. Windows of a tiled image are
small, but a whole-image scene holds the whole image, so a few very large images (12000 x 12000 px:
432 MB each decoded) would multiply the memory of a run. A scene waits before its window is taken
until the scenes still in flight leave room for it; a window larger than the whole budget is let
through alone.
"""

from __future__ import annotations

import asyncio


class PixelBudget:
    """Acquired by one producer (the build loop); released from task callbacks."""

    def __init__(self, max_pixels: int) -> None:
        self.max_pixels = max_pixels
        self.in_use = 0
        self._freed = asyncio.Event()

    def fits(self, pixels: int) -> bool:
        """Whether `acquire(pixels)` would go through now."""
        return not self.in_use or self.in_use + pixels <= self.max_pixels

    async def acquire(self, pixels: int) -> None:
        while not self.fits(pixels):
            self._freed.clear()
            await self._freed.wait()
        self.in_use += pixels

    def release(self, pixels: int) -> None:
        self.in_use -= pixels
        self._freed.set()
