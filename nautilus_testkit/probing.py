"""The exporter's MessageBus prober in-process on a fresh registry, and synthetic
engines around it, for tests and benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator

from prometheus_client import CollectorRegistry, generate_latest

from exporter.config import CompositeSpec, ProbeSpec
from exporter.metrics import build
from exporter.probes.messagebus import MessageBusProber
from exporter.probes.trading_request import plan_trading_request
from nautilus_wire.redis_client import connect, ready
from nautilus_wire.requester import make_transport


class Harness:
    """The exporter's prober in-process, with a fresh registry."""

    def __init__(self, prober: MessageBusProber, registry: CollectorRegistry) -> None:
        self.prober, self.registry = prober, registry

    def text(self) -> str:
        return generate_latest(self.registry).decode()


@contextlib.asynccontextmanager
async def probing(redis_url: str, probes: list[ProbeSpec], *, duration: float,
                  transport: str = "streams", trading: CompositeSpec | None = None,
                  drain: float = 5.0) -> AsyncIterator[Harness]:
    """Probe for `duration` seconds, stop scheduling, settle every probe, then yield."""
    registry = CollectorRegistry()
    metrics = build(registry)
    client = connect(redis_url)
    await ready(client)
    tr = make_transport(transport, client, "nautilus:probe", "tester")
    await tr.start()
    prober = MessageBusProber(tr, metrics, "tester")
    plans = [prober.plan_probe(p) for p in probes]
    if trading is not None:
        plans.append(plan_trading_request(prober, trading))
    prober.set_plans(plans)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(prober.run_scheduler(stop)),
             asyncio.create_task(prober.run_receiver(stop))]
    try:
        await asyncio.sleep(duration)
        prober.set_plans([])
        await prober.drain(drain)
        yield Harness(prober, registry)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await tr.close()
        await client.aclose()


@contextlib.asynccontextmanager
async def engines_running(redis_url: str, engines: list) -> AsyncIterator[None]:
    """Run synthetic engines (already constructed on a client) until the block ends."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(e.run(stop)) for e in engines]
    await asyncio.sleep(0.2)  # consumer groups exist before the first probe
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)
