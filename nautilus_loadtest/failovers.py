"""MessageBus failovers during a load test: the bus's masters, looked at once a
second (exporter/bus_master.py), and each change recorded with when it happened
and which phase was running. The run's result lists them and the summary says
so: the requests a failover cost are that phase's errors, counted, not dropped."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from exporter.bus_master import masters, WATCH_S
from exporter.schedule import clock


class FailoverWatch:
    """Each master replaced: {at (unix s), at_s (s into the run), phase, from, to}."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._started = clock()
        self._known: set[str] | None = None
        self.phase = ""  # the phase running now, set by the scenario
        self.events: list[dict[str, Any]] = []

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.check()
            try:
                await asyncio.wait_for(stop.wait(), WATCH_S)
            except TimeoutError:
                pass

    async def check(self) -> None:
        now = await masters(self._client)
        if now is None:
            return
        if self._known is not None and now - self._known:
            self.events.append({"at": round(time.time(), 2),  # to find it on the dashboards
                                "at_s": round(clock() - self._started, 2), "phase": self.phase,
                                "from": sorted(self._known), "to": sorted(now)})
        self._known = now


def merged(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every worker watches the same bus: the fullest account of its failovers."""
    return max((r.get("failovers", []) for r in results), key=len, default=[])


def lines(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Summary rows: the run is marked, with where each failover fell."""
    return [(f"MessageBus failover {i}", f"at {e['at_s']:.1f} s, during {e['phase'] or 'start'}"
             f" ({', '.join(e['from'])} -> {', '.join(e['to'])}); that phase's errors include "
             "the requests it cost") for i, e in enumerate(events, 1)]
