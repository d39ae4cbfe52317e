"""What the kinds that probe a list of targets once per interval share (http.py,
tcp.py): the loop that keeps the interval (and follows a reload's new interval at
once), the shard rule and the per-process limit on targets."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from nautilus_config.errors import ConfigError

from ..schedule import Schedule, clock


class Target(Protocol):
    @property
    def engine(self) -> str: ...

    @property
    def label(self) -> str: ...


class Every:
    """Calls `probe(due)` once per `interval()` seconds, open loop, until `stop`. A
    probe late by more than an interval is sent once, not as a burst. `replan()` (a
    reload changed the interval) wakes the loop: the next probe is one new interval
    after the last."""

    def __init__(self, interval: Callable[[], float],
                 probe: Callable[[float], Awaitable[None]]) -> None:
        self.interval, self.probe = interval, probe
        self._replanned = asyncio.Event()

    def replan(self) -> None:
        self._replanned.set()

    async def run(self, stop: asyncio.Event) -> None:
        interval = self.interval()
        schedule = Schedule(1 / interval, clock())
        while not stop.is_set():
            if (new := self.interval()) != interval:
                schedule = Schedule(1 / new, schedule.next_due() - interval + new)
                interval = new
            self._replanned.clear()
            if due := schedule.take_due(clock()):
                await self.probe(due[-1])
            waits = {asyncio.ensure_future(stop.wait()),
                     asyncio.ensure_future(self._replanned.wait())}
            try:
                await asyncio.wait(waits, timeout=max(schedule.next_due() - clock(), 0.0),
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()


def shard_targets(spec: Any, index: int, count: int) -> Any:
    """Each of a (dataclass) spec's `targets` to exactly one shard (None: this shard
    has none)."""
    targets: tuple[Target, ...] = spec.targets
    mine = tuple(t for k, t in enumerate(sorted(targets, key=lambda t: (t.engine, t.label)))
                 if k % count == index - 1)
    return dataclasses.replace(spec, targets=mine) if mine else None


def target_limit(key: str, most: int) -> Callable[[Any, str], None]:
    """ProbeKind.limit: at most `most` targets per exporter process."""
    def limit(spec: Any, part: str) -> None:
        if len(spec.targets) > most:
            raise ConfigError(key, f"{part}names {len(spec.targets)} targets; at most "
                              f"{most} per exporter (shard the rest: --shard)")
    return limit
