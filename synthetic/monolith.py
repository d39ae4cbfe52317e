"""The "monolith" baseline: one serial service, ~200 ms per trading request.

Risk 50 ms + factor 100 ms + analytics 30 ms + WebSocket broadcast 20 ms, one
request at a time (the GIL-bound original). It answers protocol v1 as engine
`monolith`, operation `trading_request`, so the same prober measures both.
"""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from nautilus_wire import protocol
from nautilus_wire.protocol import Request
from nautilus_wire.responder import Responder

ENGINE = protocol.BASELINE_ENGINE
OPERATION = "trading_request"
STEPS_S = (("risk", 0.050), ("factor", 0.100), ("analytics", 0.030), ("broadcast", 0.020))


class Monolith:
    def __init__(self, client: aioredis.Redis, *, transport: str = "streams",
                 prefix: str = protocol.DEFAULT_PREFIX, workers: int = 1) -> None:
        # workers=1 is the serial original; more model a scaled-out monolith.
        self.responder = Responder(client, ENGINE, {OPERATION: self.handle},
                                   transport=transport, prefix=prefix, concurrency=workers,
                                   self_report=None)

    async def handle(self, req: Request) -> None:
        for _step, seconds in STEPS_S:
            await asyncio.sleep(seconds)
        return None

    async def run(self, stop: asyncio.Event) -> None:
        await self.responder.run(stop)
