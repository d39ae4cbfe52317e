"""MessageBus backlog: each probed engine's consumer-group state -> gauges.

On the self-report interval it runs `XINFO GROUPS` on the engine's request
streams (one per priority) and exposes, summed over them, the requests handed
to the engine's responders and not yet acknowledged (`pending`), those not yet
handed out (`lag`), how many responders are in the group and how many of them are
active (`XINFO CONSUMERS`: took a request within ACTIVE_IDLE_S on one of the
streams). A stalled engine then shows a growing backlog before its probes time
out; a killed one drops to 0 active responders while it is still in the group. One key per command,
so it is Redis Cluster safe (each stream is routed by its hash tag).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Gauge
from redis.exceptions import ResponseError

from nautilus_wire import protocol
from nautilus_wire.redis_client import BUS_ERRORS, describe, reset_after

from ..metrics import ENGINE, BusOperation, Metrics, gauge, remove
from ..supervise import Supervisor
from .base import Context, Plan, ProbeKind, whole
from .polling import PollingProbe


@dataclass(frozen=True)
class BacklogSpec:
    """Whose request streams are read, and how often (streams transport only)."""

    prefix: str
    engines: tuple[str, ...]
    interval: float


# A responder is active if Redis handed it a request (or, from Redis 7.2, saw it ask
# for one) this recently on any of its engine's streams. A live responder of a probed
# engine reads every ~100 ms and is handed a probe every few; a killed one is
# not active 15 s later. Redis 7.0 counts only deliveries: an engine that is not probed
# at all has no active responders there.
ACTIVE_IDLE_S = 15.0


@dataclass
class Backlog:
    pending: int = 0
    lag: int = 0
    consumers: int = 0
    idle_ms: dict[str, int] = field(default_factory=dict)  # consumer -> XINFO CONSUMERS idle


def active_consumers(streams: list[Backlog], idle_limit_s: float | None = None) -> int:
    """Consumers that took a request within the limit on any of the engine's streams."""
    limit = ACTIVE_IDLE_S if idle_limit_s is None else idle_limit_s
    least: dict[str, int] = {}
    for s in streams:
        for name, idle in s.idle_ms.items():
            least[name] = min(idle, least.get(name, idle))
    return sum(1 for idle in least.values() if idle <= limit * 1000)


def responders(groups: Any) -> dict[str, Any] | None:
    """The responders' group in one stream's XINFO GROUPS answer."""
    return next((g for g in groups or () if g.get("name") == protocol.RESPONDER_GROUP), None)


def group_state(group: dict[str, Any] | None, length: int) -> Backlog:
    """Without the group (no responder ever started) every entry of the stream is
    waiting. A `lag` Redis cannot tell (after deletions: None) counts as the whole
    stream, an upper bound."""
    if group is None:
        return Backlog(lag=length)
    lag = group.get("lag")
    return Backlog(pending=int(group.get("pending") or 0),
                   lag=length if lag is None else int(lag),
                   consumers=int(group.get("consumers") or 0))


@dataclass(slots=True)
class BacklogSeries:
    """One engine's gauges, bound at its first complete read (unknown is no value)."""

    pending: Any
    lag: Any
    consumers: Any
    active: Any


@dataclass
class BacklogMetrics:
    """The backlog probe's metric group (docs/metrics.md)."""

    pending: Gauge
    lag: Gauge
    consumers: Gauge
    active: Gauge

    def init_engine(self, engine: str) -> BacklogSeries:
        return BacklogSeries(self.pending.labels(engine), self.lag.labels(engine),
                             self.consumers.labels(engine), self.active.labels(engine))

    def remove_engine(self, engine: str) -> None:
        for family in (self.pending, self.lag, self.consumers, self.active):
            remove(family, engine)


def build_metrics(reg: CollectorRegistry) -> BacklogMetrics:
    return BacklogMetrics(
        pending=gauge(reg, "messagebus_pending_messages", "Requests handed to the engine's "
                      "responders and not yet acknowledged, over its request streams "
                      "(XINFO GROUPS pending).", ENGINE),
        lag=gauge(reg, "messagebus_lag_messages", "Requests in the engine's request streams "
                  "not yet handed to a responder (XINFO GROUPS lag).", ENGINE),
        consumers=gauge(reg, "messagebus_consumers", "Responders in the engine's consumer "
                        "groups (distinct names over its request streams).", ENGINE),
        active=gauge(reg, "messagebus_consumers_active", "Responders of the engine that "
                     "took a request in the last 15 s (XINFO CONSUMERS idle); 0: "
                     "none is alive.", ENGINE))


class BacklogProbe(PollingProbe):
    """Reads the engines' request-stream backlog at a fixed interval."""

    kind = "backlog"
    what = "MessageBus backlog"

    def __init__(self, client: aioredis.Redis, metrics: Metrics, group: BacklogMetrics,
                 spec: BacklogSpec, supervisor: Supervisor) -> None:
        super().__init__(client, metrics, spec, supervisor)
        self.group = group
        self.series: dict[str, BacklogSeries] = {}

    def apply(self, spec: BacklogSpec) -> bool:
        if spec.engines != self.spec.engines or spec.prefix != self.spec.prefix:
            return False  # replaced: series of engines no longer probed must go
        self.spec = spec
        return True

    async def close(self) -> None:
        for engine in self.series:
            self.group.remove_engine(engine)
        self.series.clear()

    async def _stream(self, key: str) -> Backlog | None:
        try:
            groups = await self._redis.xinfo_groups(key)
        except ResponseError as exc:
            if "no such key" in str(exc).lower():
                return Backlog()  # nothing was ever sent at this priority
            # Not a stream (WRONGTYPE): this engine's backlog is unknown, the others' are not.
            self.warn.failed(f"read {key}", str(exc))
            self._m.bus_error[BusOperation.BACKLOG].inc()
            return None
        group = responders(groups)
        need_length = group is None or group.get("lag") is None
        state = group_state(group, await self._redis.xlen(key) if need_length else 0)
        if state.consumers:
            consumers = await self._redis.xinfo_consumers(key, protocol.RESPONDER_GROUP)
            state.idle_ms = {str(c.get("name")): int(c.get("idle") or 0) for c in consumers}
        return state

    async def poll(self) -> None:
        spec = self.spec
        keys = [[protocol.request_stream(spec.prefix, e, p) for p in protocol.PRIORITIES]
                for e in spec.engines]
        try:
            if isinstance(self._redis, aioredis.RedisCluster):
                # One at a time: redis-py's cluster client can hand a connection that is
                # still being opened to a concurrent first command (AttributeError).
                per_engine = [[await self._stream(k) for k in ks] for ks in keys]
            else:
                per_engine = await asyncio.gather(*(
                    asyncio.gather(*(self._stream(k) for k in ks)) for ks in keys))
        except BUS_ERRORS as exc:
            self.warn.failed("read", describe(exc))
            self._m.bus_error[BusOperation.BACKLOG].inc()
            await reset_after(self._redis, exc)
            return
        self.warn.recovered("read")
        for engine, maybe in zip(spec.engines, per_engine, strict=True):
            streams = [s for s in maybe if s is not None]
            if len(streams) < len(maybe):
                continue
            g = self.series.get(engine)
            if g is None:
                g = self.series[engine] = self.group.init_engine(engine)
            g.pending.set(sum(s.pending for s in streams))
            g.lag.set(sum(s.lag for s in streams))
            # Distinct names over the streams (Redis adds a consumer to a stream's group
            # when it is first handed a request there; every stream with consumers was
            # asked for them).
            g.consumers.set(len({name for s in streams for name in s.idle_ms}))
            g.active.set(active_consumers(streams))


def _derive(plan: Plan) -> BacklogSpec | None:
    """The probed engines' request streams (of this shard's plan), read on the
    self-report interval; pub/sub keeps no backlog to read."""
    if plan.transport != "streams":
        return None
    engines = dict.fromkeys(p.engine for p in plan.specs.get("messagebus", ()))
    if (trading := plan.specs.get("trading_request")) is not None:
        engines.update(dict.fromkeys(e for e, _ in trading.legs))
    reports = plan.specs.get("self_report")
    return BacklogSpec(plan.prefix, tuple(engines), reports.interval if reports else 5.0)


def _build(spec: BacklogSpec, ctx: Context) -> BacklogProbe:
    assert ctx.bus is not None  # reads through the MessageBus connection's client
    return BacklogProbe(ctx.bus.client, ctx.metrics, ctx.group, spec, ctx.supervisor)


KIND = ProbeKind("backlog", build=_build, shard=whole, derive=_derive, bus=True,
                 metrics=build_metrics, loops=("backlog",),
                 no_panels="the engine dashboard's failures and backlog row, beside the "
                           "probed figures")
