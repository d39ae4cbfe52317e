"""The exporter's MessageBus prober in-process on a fresh registry, and synthetic
engines around it, for tests and benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from exporter.probes.messagebus import ProbeSpec
from exporter.probes.trading_request import CompositeSpec
from exporter.metrics import build
from exporter.probes.base import Probe
from exporter.probes.bus import MessageBus
from exporter.probes.messagebus import MessageBusProbe
from exporter.probes.trading_request import TradingRequestProbe
from exporter.schedule import EARLY_S, clock
from nautilus_wire.protocol import DEFAULT_PREFIX, request_stream
from nautilus_wire.redis_client import connect
from nautilus_wire.requester import make_transport


# How long the sender may take to catch up with its schedules before a stop (a send
# to Redis in flight holds it; a loaded machine, more): far beyond that, it is stuck.
CATCH_UP_S = 5.0


@dataclass(frozen=True)
class Window:
    """When the harness's schedules ran, by the probes' clock: each started between
    `started` and `made` (as its probe was made), and the sender had taken every probe
    due by `caught_up` before they stopped, at `stopped`."""

    started: float
    made: float
    caught_up: float
    stopped: float

    def due(self, rate: float) -> tuple[float, float]:
        """The least and the most probes a schedule of `rate` handed out (sent or
        skipped): one at its start and one per 1/rate after, every one due by
        `caught_up`, none due later than EARLY_S after the stop."""
        return ((self.caught_up - self.made) * rate,
                (self.stopped + EARLY_S - self.started) * rate + 1)


class Harness:
    """The exporter's MessageBus probe in-process, with a fresh registry. A count of
    probes is judged against `window.due(rate)`, never the nominal duration: on a
    loaded machine the set-up and a late wake-up make the schedules run longer."""

    def __init__(self, bus: MessageBus, registry: CollectorRegistry, window: Window) -> None:
        self.bus, self.registry, self.window = bus, registry, window

    def text(self) -> str:
        return generate_latest(self.registry).decode()

    def due(self, rate: float) -> tuple[float, float]:
        return self.window.due(rate)


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
    started = clock()
    messagebus = MessageBusProbe(bus, tuple(probes))
    composite = TradingRequestProbe(bus, trading) if trading is not None else None
    made = clock()
    found: list[Probe] = [messagebus, *([composite] if composite else [])]
    stop, sending = asyncio.Event(), asyncio.Event()
    for probe in found:
        await probe.start()
    # The MessageBus probe's loops run until the end (its receiver settles the
    # probes); the trading request stops sending with the rest after `duration`.
    tasks = [asyncio.create_task(found[0].run(stop)),
             *(asyncio.create_task(p.run(sending)) for p in found[1:])]
    try:
        await asyncio.sleep(duration)
        caught_up = clock()
        plans = [*messagebus.plans, *(composite.plans if composite else [])]
        while any(p.schedule.next_due() <= caught_up for p in plans):
            assert clock() - caught_up < CATCH_UP_S, "the sender stopped taking due probes"
            await asyncio.sleep(0.001)
        messagebus.apply(())
        sending.set()
        window = Window(started, made, caught_up, clock())
        await bus.drain(drain)
        yield Harness(bus, registry, window)
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
