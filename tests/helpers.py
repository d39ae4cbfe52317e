"""Reading numbers back out of an exposition, the way Prometheus would."""

from __future__ import annotations

import asyncio
import contextlib
import math
from typing import AsyncIterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from exporter.config import CompositeSpec, ProbeSpec
from exporter.metrics import build
from exporter.probes.messagebus import MessageBusProber
from exporter.probes.trading_request import plan_trading_request
from exporter.transport import connect, make_transport, ready


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (0 if none)."""
    total = 0.0
    for (n, lbls), v in samples(text).items():
        if n == name and all((k, val) in lbls for k, val in labels.items()):
            total += v
    return total


def buckets(text: str, name: str, **labels: str) -> list[tuple[float, float]]:
    """Cumulative (upper bound, count) pairs of a histogram, summed over other labels."""
    acc: dict[float, float] = {}
    for (n, lbls), v in samples(text).items():
        if n != f"{name}_bucket" or not all((k, val) in lbls for k, val in labels.items()):
            continue
        le = float(dict(lbls)["le"])
        acc[le] = acc.get(le, 0.0) + v
    return sorted(acc.items())


def bucket_delta(before: str, after: str, name: str, **labels: str) -> list[tuple[float, float]]:
    """What a histogram gained between two scrapes, as cumulative (le, count) pairs."""
    b0 = dict(buckets(before, name, **labels))
    return [(le, c - b0.get(le, 0.0)) for le, c in buckets(after, name, **labels)]


def histogram_quantile(q: float, cumulative: list[tuple[float, float]]) -> float:
    """PromQL's histogram_quantile: linear interpolation inside the bucket."""
    total = cumulative[-1][1]
    if total == 0:
        return math.nan
    rank = q * total
    prev_le, prev_count = 0.0, 0.0
    for le, count in cumulative:
        if count >= rank:
            if math.isinf(le):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_count) / max(count - prev_count, 1e-12)
        prev_le, prev_count = le, count
    return math.nan


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
