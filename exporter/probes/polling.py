"""What the probes that read Redis at a fixed interval share (self-reports, backlog):
the MessageBus connection's client, a supervised loop named after the probe kind,
and quiet failure logging."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis.asyncio as aioredis

from nautilus_wire.failure_log import FailureLog

from ..metrics import Metrics
from ..supervise import Supervisor


class PollingProbe:
    kind = ""  # also the supervised loop's name (metrics.LOOPS)
    what = ""  # how the failure log names it

    def __init__(self, client: aioredis.Redis, metrics: Metrics, spec: Any,
                 supervisor: Supervisor) -> None:
        self._redis = client
        self._m = metrics
        self.spec = spec
        self.supervisor = supervisor
        self.warn = FailureLog(logging.getLogger(type(self).__module__), self.what)

    async def start(self) -> None:
        """Nothing to open: it reads through the MessageBus connection's client."""

    async def close(self) -> None:
        """The client is closed by its owner."""

    async def poll(self) -> None:
        raise NotImplementedError

    async def run(self, stop: asyncio.Event) -> None:
        await self.supervisor.run(self.kind, lambda: self._poll_until(stop), stop)

    async def _poll_until(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.poll()
            try:
                await asyncio.wait_for(stop.wait(), self.spec.interval)
            except TimeoutError:
                pass
