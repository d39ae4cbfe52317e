"""The exporter's MessageBus prober in-process on a fresh registry, and synthetic
engines around it, for tests and benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from exporter.probes.messagebus import ProbeSpec
from exporter.probes.trading_request import CompositeSpec
from exporter.metrics import build
from exporter.probes.base import Probe
from exporter.probes.bus import MessageBus
from exporter.probes.messagebus import MessageBusProbe
from exporter.probes.trading_request import TradingRequestProbe
from nautilus_wire.protocol import DEFAULT_PREFIX, request_stream
from nautilus_wire.redis_client import connect
from nautilus_wire.requester import make_transport


class Harness:
    """The exporter's MessageBus probe in-process, with a fresh registry."""

    def __init__(self, bus: MessageBus, registry: CollectorRegistry) -> None:
        self.bus, self.registry = bus, registry

    def text(self) -> str:
        return generate_latest(self.registry).decode()


@contextlib.asynccontextmanager
async def probing(redis_url: str, probes: list[ProbeSpec], *, duration: float,
                  transport: str = "streams", trading: CompositeSpec | None = None,
                  drain: float = 5.0, prober: str = "tester", thin: bool = True
                  ) -> AsyncIterator[Harness]:
    """Probe for `duration` seconds, stop scheduling, settle every probe, then yield.
    `thin`: streams over the hiredis path where it applies (False: redis-py)."""
    registry = CollectorRegistry()
    client = connect(redis_url)
    bus = MessageBus(client, make_transport(transport, client, DEFAULT_PREFIX, prober, thin),
                     build(registry), prober)
    found: list[Probe] = [MessageBusProbe(bus, tuple(probes))]
    if trading is not None:
        found.append(TradingRequestProbe(bus, trading))
    stop, sending = asyncio.Event(), asyncio.Event()
    for probe in found:
        await probe.start()
    # The MessageBus probe's loops run until the end (its receiver settles the
    # probes); the trading request stops sending with the rest after `duration`.
    tasks = [asyncio.create_task(found[0].run(stop)),
             *(asyncio.create_task(p.run(sending)) for p in found[1:])]
    try:
        await asyncio.sleep(duration)
        found[0].apply(())
        sending.set()
        await bus.drain(drain)
        yield Harness(bus, registry)
    finally:
        stop.set()
        sending.set()
        await asyncio.gather(*tasks)
        for probe in found:
            await probe.close()
        await bus.close()


@contextlib.asynccontextmanager
async def engines_running(redis_url: str, engines: list[Any]) -> AsyncIterator[None]:
    """Run synthetic engines (already constructed on a client) until the block ends."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(e.run(stop)) for e in engines]
    # Every engine's consumer groups exist before the first probe.
    client = connect(redis_url)
    for e in engines:
        stream = request_stream(e.prefix, e.name, "low")
        for _ in range(500):
            if await client.exists(stream):
                break
            await asyncio.sleep(0.01)
    await client.aclose()
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)
