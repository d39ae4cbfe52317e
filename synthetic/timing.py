"""Sleeps that land on time: the known truth of the synthetic engines."""

from __future__ import annotations

import asyncio
import time


class CalibratedSleep:
    """Event-loop timers overshoot by a fraction of a millisecond (more on an idle
    VM); subtract the running average overshoot so a 20 ms service time is 20 ms."""

    def __init__(self) -> None:
        self.overshoot = 0.0

    async def __call__(self, seconds: float) -> None:
        started = time.perf_counter()
        await asyncio.sleep(max(seconds - self.overshoot, 0.0))
        actual = time.perf_counter() - started
        self.overshoot = min(max(self.overshoot + 0.05 * (actual - seconds), 0.0), 0.002)
