"""The composite "trading request": risk, analytics, factor and ml legs in parallel.

Its latency is the slowest leg's, from the shared scheduled send time; it fails
if any leg fails (reason of the first failing leg). Each leg is also an
ordinary probe of its engine × op, counted in that engine's metrics.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..metrics import Failure, Metrics
from ..schedule import Schedule, clock
from nautilus_config.checks import at_most, duration, name, Node, non_negative_int, one_of, positive
from nautilus_wire import protocol

from ..costs import Cost
from .base import MAX_TIMEOUT_S, Context, ProbeKind
from .bus import (MAX_PAYLOAD, MAX_RATE, REQUEST_OVERHEAD_BYTES, Batch, defaults, MessageBus,
                  Plan, run_plans)


@dataclass(frozen=True)
class CompositeSpec:
    """The "trading request": legs sent in parallel; as slow as its slowest leg."""

    rate: float
    timeout: float
    priority: str
    payload_size: int
    legs: tuple[tuple[str, str], ...]


@dataclass(slots=True)
class TradingRequest:
    """One composite request in flight: settled when its last leg is."""

    metrics: Metrics
    remaining: int
    slowest: float = 0.0
    failure: Failure | None = None

    def leg_done(self, failure: Failure | None, latency: float) -> None:
        if failure is not None and self.failure is None:
            self.failure = failure
        self.slowest = max(self.slowest, latency)
        self.remaining -= 1
        if self.remaining == 0:
            if self.failure is None:
                self.metrics.trading_latency.observe(self.slowest)
            else:
                self.metrics.trading_failure[self.failure].inc()


class TradingRequestProbe:
    kind = "trading_request"

    def __init__(self, bus: MessageBus, spec: CompositeSpec) -> None:
        self.bus = bus
        m = bus.metrics
        if not m.trading_failure:  # a never-seen reason reads 0
            m.trading_failure.update({r: m.trading_failures.labels(r.value) for r in Failure})
        self.plans: list[Plan] = []
        self.apply(spec)

    def apply(self, spec: CompositeSpec) -> bool:
        tracker, m = self.bus.tracker, self.bus.metrics
        legs = [tracker.series(engine, op) for engine, op in spec.legs]
        payload = "x" * spec.payload_size

        def fire(due: float, batch: Batch) -> None:
            m.trading_requests.inc()
            parent = TradingRequest(m, len(legs))
            for s in legs:
                batch.append(tracker.request(s, due, spec.timeout, spec.priority, payload,
                                             parent.leg_done))

        schedule = (self.plans[0].schedule.continued(spec.rate) if self.plans
                    else Schedule(spec.rate, clock()))
        self.plans = [Plan(schedule, spec.timeout, fire, legs,
                           len(legs) * (spec.payload_size + REQUEST_OVERHEAD_BYTES))]
        return True

    async def start(self) -> None:
        """Nothing of its own: it sends through the MessageBus probe's connection."""

    async def run(self, stop: asyncio.Event) -> None:
        await self.bus.supervisor.run(
            "trading_request", lambda: run_plans(self.bus, lambda: self.plans, stop), stop)

    async def close(self) -> None:
        """Legs in flight stay accounted for by the connection's tracker."""


def _shard(spec: CompositeSpec, index: int, count: int) -> CompositeSpec:
    """Every shard sends its share of the rate."""
    return dataclasses.replace(spec, rate=spec.rate / count)


def _build(spec: CompositeSpec, ctx: Context) -> TradingRequestProbe:
    assert ctx.bus is not None  # a bus kind: the runtime connects first
    return TradingRequestProbe(ctx.bus, spec)


def _memory(spec: CompositeSpec) -> Cost:
    """Each leg is a flow and a series of its own; the composite adds one series."""
    return Cost(series=len(spec.legs) + 1, flows=((spec.rate, spec.timeout),) * len(spec.legs))


def _parse(root: Node, parsed: Mapping[str, Any]) -> CompositeSpec | None:
    """`trading_request:` (its legs, else the standard four), its timeout and payload
    size by default those of `defaults:`."""
    if "trading_request" not in root.data:
        return None
    base = defaults(root)
    node = root.node("trading_request")
    legs_node = node.node("legs")
    legs = tuple((name(legs_node.sub(e), e), name(legs_node.sub(e), op))
                 for e, op in legs_node.items()) or protocol.TRADING_REQUEST_LEGS
    spec = CompositeSpec(
        rate=node.get("rate", 10.0, at_most(MAX_RATE, positive)),
        timeout=node.get("timeout", base["timeout"], at_most(MAX_TIMEOUT_S, duration)),
        priority=node.get("priority", "high", one_of(*protocol.PRIORITIES)),
        payload_size=node.get("payload_size", base["payload_size"],
                              at_most(MAX_PAYLOAD, non_negative_int)),
        legs=legs)
    node.done()
    return spec


KIND = ProbeKind("trading_request", build=_build, shard=_shard, bus=True, memory=_memory,
                 sections=("trading_request",), parse=_parse, loops=("trading_request",),
                 no_panels="the overview's service row (the trading request is the system's round trip)")
