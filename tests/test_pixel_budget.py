"""The pixel budget: a scene waits for room; one larger than the whole budget goes alone."""

from __future__ import annotations

import asyncio

from rsgpt4v.imaging.pixel_budget import PixelBudget


def test_acquire_waits_for_room_and_lets_a_large_one_through_alone() -> None:
    async def scenario() -> list[str]:
        budget = PixelBudget(100)
        events: list[str] = []
        await budget.acquire(60)
        waiter = asyncio.create_task(budget.acquire(50))
        await asyncio.sleep(0)  # one step of the event loop: the task runs until it waits
        events.append(f"waiting {not waiter.done()} in use {budget.in_use}")
        budget.release(60)
        await waiter
        events.append(f"admitted, in use {budget.in_use}")
        big = asyncio.create_task(budget.acquire(500))
        await asyncio.sleep(0)  # one step of the event loop: the task runs until it waits
        events.append(f"big waits {not big.done()}")
        budget.release(50)
        await big
        events.append(f"big alone, in use {budget.in_use}")
        return events

    assert asyncio.run(scenario()) == ["waiting True in use 60", "admitted, in use 50", "big waits True",
                                       "big alone, in use 500"]
