"""Load drivers: a measured phase (`Tally`) and the two ways to offer load — closed
loop (N requests in flight) and open loop (a fixed rate, timed from the scheduled
send, so a slow system cannot slow the offered load)."""

from __future__ import annotations

import asyncio
import math
import sys
from collections.abc import Awaitable, Callable

from exporter.schedule import Schedule, clock, sleep_for

from .histogram import LatencyHistogram


class Tally:
    """One measured phase: latencies, errors, and live progress on stderr."""

    def __init__(self, label: str, show: bool) -> None:
        self.label, self.show = label, show
        self.hist = LatencyHistogram()
        self.errors = 0
        self.started = clock()
        self._last = 0.0

    def ok(self, seconds: float) -> None:
        self.hist.record(seconds)
        self._progress()

    def failed(self) -> None:
        self.errors += 1
        self._progress()

    def _progress(self) -> None:
        now = clock()
        if self.show and now - self._last >= 1.0:
            self._last = now
            elapsed = now - self.started
            p99 = self.hist.quantile(0.99) * 1e3 if self.hist.count else float("nan")
            print(f"\r{self.label}: {elapsed:5.1f}s {self.hist.count:8d} ok "
                  f"{self.hist.count / max(elapsed, 1e-9):9.1f}/s {self.errors:6d} errors "
                  f"p99 {p99:8.2f} ms", end="", file=sys.stderr, flush=True)

    def elapsed(self) -> float:
        if self.show:
            print(file=sys.stderr)
        return clock() - self.started


async def closed_loop(call: Callable[[], Awaitable[None]], concurrency: int, duration: float,
                       stop: asyncio.Event, tally: Tally) -> float:
    end = clock() + duration

    async def worker() -> None:
        while clock() < end and not stop.is_set():
            t0 = clock()
            try:
                await call()
                tally.ok(clock() - t0)
            except Exception:
                tally.failed()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return tally.elapsed()


async def open_loop(call: Callable[[], Awaitable[None]], rate: float, duration: float,
                     stop: asyncio.Event, tally: Tally, share: tuple[int, int] = (0, 1)) -> float:
    """The requests due at `rate`/s in [start, start + `duration`): a count fixed by
    the schedule, not by when the last timer fires. `share` (i, N): of them, only
    requests k with k mod N = i (shares.py), so N shares send exactly the requests of
    one whole run."""
    start = clock()
    index, count = share
    total = math.ceil(rate * duration - 1e-9)
    k = 0
    tasks: set[asyncio.Task[None]] = set()

    async def one(due: float) -> None:
        try:
            await call()
            tally.ok(clock() - due)  # from the scheduled time: no coordinated omission
        except Exception:
            tally.failed()

    schedule = Schedule(rate, start)
    while k < total and not stop.is_set():
        for due in schedule.take_due(clock()):
            if k == total:
                break
            k += 1
            if (k - 1) % count != index:
                continue
            task = asyncio.create_task(one(due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.sleep(sleep_for(schedule.next_due(), clock()))
    if tasks:
        await asyncio.wait(tasks)
    return tally.elapsed()
