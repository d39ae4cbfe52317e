"""Supervised loops: a probe loop ends only at shutdown.

An unexpected exception is counted (`loop_restarts_total{loop}`), logged with its
traceback once per streak (then one line per interval with a count), and the
loop starts again after an exponential backoff. A loop that keeps failing makes
/-/healthy answer 500.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from .metrics import LOOPS, Metrics
from .schedule import clock

log = logging.getLogger(__name__)

BACKOFF_S = 0.1
MAX_BACKOFF_S = 10.0
# Restarts within this window that make the exporter unhealthy.
TROUBLE_WINDOW_S = 60.0
TROUBLE_RESTARTS = 3
# A loop that ran this long without failing starts its backoff afresh.
STABLE_AFTER_S = 60.0


class Supervisor:
    def __init__(self, metrics: Metrics, loops: Iterable[str] = ()) -> None:
        """`loops`: besides metrics.LOOPS, those whose series exist from the start
        (the runtime passes every kind's, ProbeKind.loops)."""
        self.metrics = metrics
        self._restarts: dict[str, deque[float]] = {}
        self._counters: dict[str, Any] = {}  # loop -> its bound loop_restarts child
        for loop in (*LOOPS, *loops):
            self._add(loop)

    def _add(self, loop: str) -> None:
        self._restarts[loop] = deque()
        self._counters[loop] = self.metrics.loop_restarts.labels(loop)

    async def run(self, loop: str, body: Callable[[], Awaitable[None]],
                  stop: asyncio.Event) -> None:
        """Run body() until `stop` is set, restarting it whenever it fails. A loop not
        declared gets its series when it first runs."""
        if loop not in self._restarts:
            self._add(loop)
        backoff = BACKOFF_S
        streak = 0
        while not stop.is_set():
            started = clock()
            try:
                await body()
                if stop.is_set():
                    return
                raise RuntimeError("the loop returned before shutdown")
            except Exception as exc:
                if clock() - started > STABLE_AFTER_S:
                    backoff, streak = BACKOFF_S, 0
                streak += 1
                self._counters[loop].inc()
                self._restarts[loop].append(clock())
                if streak == 1:
                    log.error("%s loop failed; restarting in %.1fs", loop, backoff, exc_info=exc)
                elif streak in (2, 5) or streak % 50 == 0:
                    log.error("%s loop failed %d times in a row (last: %r); restarting in %.1fs",
                              loop, streak, exc, backoff)
            try:
                await asyncio.wait_for(stop.wait(), backoff)
            except TimeoutError:
                pass
            backoff = min(backoff * 2, MAX_BACKOFF_S)

    def troubled(self) -> list[str]:
        """Loops that restarted TROUBLE_RESTARTS times or more in the last minute."""
        now = clock()
        out = []
        for loop, times in self._restarts.items():
            while times and now - times[0] > TROUBLE_WINDOW_S:
                times.popleft()
            if len(times) >= TROUBLE_RESTARTS:
                out.append(loop)
        return out
