"""MessageBus request/reply probing of every configured engine × op, open loop, with
full reply accounting.

Every probe carries a correlation id and a per (engine, op) sequence number.
Its latency runs from its *scheduled* send time to the reply, so a stalled
engine fills the tail of the histogram instead of slowing the prober. The
connection and the plan runner are bus.py's (the trading request shares them);
the classification of replies is `replies.ReplyTracker`'s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from nautilus_config.checks import name, Node
from nautilus_config.errors import ConfigError

from ..costs import Cost
from ..schedule import Schedule, clock
from .base import Context, ProbeKind
from .bus import (REQUEST_OVERHEAD_BYTES, Batch, defaults, MessageBus, Plan, probe_settings,
                  run_plans)

MAX_SERIES = 500  # engine × op series per exporter: each is ~100 lines of /metrics


@dataclass(frozen=True)
class ProbeSpec:
    """One stream of probes: an engine's operation at a fixed open-loop rate."""

    engine: str
    op: str
    rate: float  # probes per second
    timeout: float  # seconds
    priority: str
    payload_size: int  # bytes


class MessageBusProbe:
    """Probes every configured engine × op at its own open-loop rate; also runs the
    connection's reply reader."""

    kind = "messagebus"

    def __init__(self, bus: MessageBus, specs: tuple[ProbeSpec, ...]) -> None:
        self.bus = bus
        self.plans: list[Plan] = []
        self.apply(specs)

    def plan(self, spec: ProbeSpec, schedule: Schedule | None = None) -> Plan:
        s = self.bus.tracker.series(spec.engine, spec.op)
        payload = "x" * spec.payload_size
        tracker = self.bus.tracker

        def fire(due: float, batch: Batch) -> None:
            batch.append(tracker.request(s, due, spec.timeout, spec.priority, payload))

        schedule = schedule.continued(spec.rate) if schedule else Schedule(spec.rate, clock())
        return Plan(schedule, spec.timeout, fire, [s], spec.payload_size + REQUEST_OVERHEAD_BYTES)

    def apply(self, specs: tuple[ProbeSpec, ...]) -> bool:
        """Replace what is probed; probes in flight are still accounted for, and a
        series probed before keeps its schedule."""
        before = {(p.series[0].engine, p.series[0].op): p.schedule for p in self.plans}
        self.plans = [self.plan(spec, before.get((spec.engine, spec.op))) for spec in specs]
        return True

    async def start(self) -> None:
        await self.bus.start()

    async def run(self, stop: asyncio.Event) -> None:
        sup = self.bus.supervisor
        await asyncio.gather(
            sup.run("messagebus_send", lambda: run_plans(self.bus, lambda: self.plans, stop), stop),
            sup.run("messagebus_receive", lambda: self.bus.run_receiver(stop), stop))

    async def close(self) -> None:
        """The connection is closed by its owner, after every probe using it."""


def _shard(specs: tuple[ProbeSpec, ...], index: int, count: int) -> tuple[ProbeSpec, ...]:
    """Each engine × op to exactly one shard."""
    ordered = sorted(specs, key=lambda p: (p.engine, p.op))
    return tuple(p for k, p in enumerate(ordered) if k % count == index - 1)


def _build(specs: tuple[ProbeSpec, ...], ctx: Context) -> MessageBusProbe:
    assert ctx.bus is not None  # a bus kind: the runtime connects first
    return MessageBusProbe(ctx.bus, specs)


def _memory(specs: tuple[ProbeSpec, ...]) -> Cost:
    return Cost(series=len(specs), flows=tuple((p.rate, p.timeout) for p in specs))


def _parse(root: Node, parsed: Mapping[str, Any]) -> tuple[ProbeSpec, ...]:
    """`engines:` (engine: op: settings) over `defaults:`. Always a spec, if empty: its
    probe reads the replies of every bus kind."""
    base = defaults(root)
    probes: list[ProbeSpec] = []
    engines = root.node("engines")
    for engine, ops in engines.items():
        epath = engines.sub(engine)
        name(epath, engine)
        ops_node = Node(ops, epath)
        for op, settings in ops_node.items():
            name(ops_node.sub(op), op)
            probes.append(ProbeSpec(engine, op, **probe_settings(
                Node(settings, ops_node.sub(op)), base)))
    return tuple(probes)


def _limit(specs: tuple[ProbeSpec, ...], part: str) -> None:
    if len(specs) > MAX_SERIES:
        raise ConfigError("engines", f"{part}names {len(specs)} engine × op series; at most "
                          f"{MAX_SERIES} per exporter (shard the rest: --shard)")


KIND = ProbeKind("messagebus", build=_build, shard=_shard, bus=True, memory=_memory,
                 sections=("engines", "defaults"), parse=_parse, limit=_limit,
                 loops=("messagebus_send", "messagebus_receive"),
                 no_panels="the dashboards' own rows: every dashboard is about the engine × op probes")
