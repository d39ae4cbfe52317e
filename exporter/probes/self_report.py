"""Engine self-reports: `metrics:<engine>` JSON in Redis -> gauges.

The migration plan's report format: {"throughput": ops/s, "latency": ms, "cpu_usage": %
of one core, "memory_usage": MiB, "error_rate": 0..1, "timestamp": unix s}.
Gauges are converted to base units.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from nautilus_wire import protocol
from nautilus_wire.redis_client import BUS_ERRORS, reset_after

from .base import Context, ProbeKind, whole
from .polling import PollingProbe

log = logging.getLogger(__name__)

# The report's numeric fields, all required.
FIELDS = ("throughput", "latency", "cpu_usage", "memory_usage", "error_rate")
MIB = 1024.0 * 1024.0


MAX_OPERATIONS = 32  # label values come from the target: keep them bounded


def parse_operations(data: dict[str, Any]) -> dict[str, float]:
    """The optional per-operation throughput, {"op": ops/s}."""
    ops = data.get("operations", {})
    if not isinstance(ops, dict) or len(ops) > MAX_OPERATIONS:
        raise ValueError(f"operations must be an object of at most {MAX_OPERATIONS} numbers")
    out = {}
    for op, value in ops.items():
        if not protocol.NAME_RE.match(str(op)) or isinstance(value, bool) or \
                not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"operations[{str(op)[:20]!r}] is not a name and a number")
        out[str(op)] = float(value)
    return out


def parse_report(raw: Any) -> dict[str, Any]:
    """The report's numbers, or ValueError saying what is wrong."""
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("report is not a JSON object")
    out: dict[str, Any] = {}
    for name in (*FIELDS, "timestamp"):
        value = data.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"field {name!r} missing or not a number")
        out[name] = float(value)
    out["operations"] = parse_operations(data)
    return out


@dataclass(frozen=True)
class SelfReportSpec:
    """Which engines' self-reports (`metrics:<engine>`) are read, and how often."""

    engines: tuple[str, ...]
    interval: float


class SelfReportProbe(PollingProbe):
    """Reads every engine's self-report at a fixed interval into gauges."""

    kind = "self_report"
    what = "Engine self-reports"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._ops: dict[str, set[str]] = {}  # engine -> operations it last reported

    def apply(self, spec: SelfReportSpec) -> bool:
        # Engines no longer read lose their series (a stale "up" would lie forever).
        for engine in set(self.spec.engines) - set(spec.engines):
            self._m.remove_report(engine, self._ops.pop(engine, ()))
        self.spec = spec
        self._init_errors()
        return True

    async def close(self) -> None:
        for engine in self.spec.engines:
            self._m.remove_report(engine, self._ops.pop(engine, ()))

    def _init_errors(self) -> None:
        for engine in self.spec.engines:  # a report never unreadable reads 0
            self._m.report_errors.labels(engine)

    async def start(self) -> None:
        self._init_errors()

    async def poll(self) -> None:
        engines = self.spec.engines
        if not engines:
            return
        try:
            keys = [protocol.report_key(e) for e in engines]
            if isinstance(self._redis, aioredis.RedisCluster):
                raws = await self._redis.mget_nonatomic(keys)  # the keys span slots
            else:
                raws = await self._redis.mget(keys)
        except BUS_ERRORS as exc:
            self.warn.failed("read", repr(exc))
            self._m.bus_errors.labels("self_report").inc()
            await reset_after(self._redis, exc)
            return
        self.warn.recovered("read")
        now = time.time()
        for engine, raw in zip(engines, raws, strict=True):
            if raw is None:
                self._m.report_up.labels(engine).set(0)
                continue
            try:
                report = parse_report(raw)
            except ValueError as exc:  # JSONDecodeError is a ValueError
                log.debug("bad self-report from %s: %s", engine, exc)
                self._m.report_errors.labels(engine).inc()
                self._m.report_up.labels(engine).set(0)
                continue
            s = self._m.init_report(engine)
            s.up.set(1)
            s.age.set(max(now - report["timestamp"], 0.0))
            # Base units: seconds, ratios, bytes.
            s.throughput.set(report["throughput"])
            s.latency.set(report["latency"] * 1e-3)
            s.cpu.set(report["cpu_usage"] * 1e-2)
            s.memory.set(report["memory_usage"] * MIB)
            s.error_ratio.set(report["error_rate"])
            for op, rate in report["operations"].items():
                self._m.reported_op_throughput.labels(engine, op).set(rate)
            # Operations the engine stopped reporting go (bounded: MAX_OPERATIONS).
            for op in self._ops.get(engine, set()) - set(report["operations"]):
                self._m.reported_op_throughput.remove(engine, op)
            self._ops[engine] = set(report["operations"])


def _build(spec: SelfReportSpec, ctx: Context) -> SelfReportProbe:
    assert ctx.bus is not None  # reads through the MessageBus connection's client
    return SelfReportProbe(ctx.bus.client, ctx.metrics, spec, ctx.supervisor)


# Every shard reads every report (a report is one key; its series carry the instance).
KIND = ProbeKind("self_report", build=_build, shard=whole, bus=True)
