"""The composite "trading request": risk, analytics, factor and ml legs in parallel.

Its latency is the slowest leg's, from the shared scheduled send time; it fails
if any leg fails (reason of the first failing leg). Each leg is also an
ordinary probe of its engine × op, counted in that engine's metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..config import CompositeSpec
from ..metrics import Metrics
from nautilus_wire.protocol import Request

from ..schedule import Schedule, clock
from .messagebus import MessageBusProber, Pending, Plan


@dataclass(slots=True)
class TradingRequest:
    metrics: Metrics
    remaining: int
    slowest: float = 0.0
    failure: str | None = None

    def leg_done(self, failure: str | None, latency: float) -> None:
        if failure is not None and self.failure is None:
            self.failure = failure
        self.slowest = max(self.slowest, latency)
        self.remaining -= 1
        if self.remaining == 0:
            if self.failure is None:
                self.metrics.trading_latency.observe(self.slowest)
            else:
                self.metrics.trading_failures.labels(self.failure).inc()


def plan_trading_request(prober: MessageBusProber, spec: CompositeSpec) -> Plan:
    legs = [prober.stream(engine, op) for engine, op in spec.legs]
    payload = "x" * spec.payload_size
    m = prober.metrics
    for reason in ("timeout", "error", "invalid", "send_failed"):
        m.trading_failures.labels(reason)

    def fire(due: float, batch: list[tuple[Request, Pending]]) -> None:
        m.trading_requests.inc()
        parent = TradingRequest(m, len(legs))
        for st in legs:
            batch.append(prober.new_request(st, due, spec.timeout, spec.priority, payload, parent))

    return Plan(Schedule(spec.rate, clock()), spec.timeout, fire, legs)
