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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter, Gauge

from nautilus_wire import protocol
from nautilus_wire.redis_client import BUS_ERRORS, describe, reset_after

from ..metrics import ENGINE, ENGINE_OP, BusOperation, Metrics, counter, gauge, remove
from ..supervise import Supervisor
from nautilus_config import checks
from nautilus_config.checks import duration, Node
from nautilus_config.errors import ConfigError
from .base import Context, ProbeKind, whole
from .polling import PollingProbe

log = logging.getLogger(__name__)

# The report's numeric fields, all required.
FIELDS = ("throughput", "latency", "cpu_usage", "memory_usage", "error_rate")
MIB = 1024.0 * 1024.0


MAX_OPERATIONS = protocol.MAX_REPORT_OPERATIONS  # label values come from the target


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


@dataclass(slots=True)
class ReportValues:
    """What one engine reports, bound at its first valid report (an engine that never
    reported has no value series, not zeros)."""

    age: Any
    throughput: Any
    latency: Any
    cpu: Any
    memory: Any
    error_ratio: Any


@dataclass(slots=True)
class EngineReport:
    """The series of one engine whose report is read, each bound when first needed."""

    up: Any
    errors: Any = None  # bound at start() (0: never unreadable) or at the first bad report
    values: ReportValues | None = None
    timestamp: float = 0.0  # of the last valid report read: its age grows while none comes
    ops: dict[str, Any] = field(default_factory=dict)  # op -> its throughput gauge


@dataclass
class ReportMetrics:
    """The self-report probe's metric group (docs/metrics.md)."""

    up: Gauge
    age: Gauge
    errors: Counter
    throughput: Gauge
    latency: Gauge
    cpu: Gauge
    memory: Gauge
    error_ratio: Gauge
    op_throughput: Gauge


    def values(self, engine: str) -> ReportValues:
        return ReportValues(
            age=self.age.labels(engine), throughput=self.throughput.labels(engine),
            latency=self.latency.labels(engine), cpu=self.cpu.labels(engine),
            memory=self.memory.labels(engine), error_ratio=self.error_ratio.labels(engine))

    def remove_engine(self, engine: str, report: EngineReport) -> None:
        for family in (self.up, self.age, self.errors, self.throughput, self.latency, self.cpu,
                       self.memory, self.error_ratio):
            remove(family, engine)
        for op in report.ops:
            remove(self.op_throughput, engine, op)


def build_metrics(reg: CollectorRegistry) -> ReportMetrics:
    return ReportMetrics(
        up=gauge(reg, "engine_report_up", "1 when the engine's self-report (metrics:<engine> "
                 "in Redis) was present and valid at the last read.", ENGINE),
        age=gauge(reg, "engine_report_age_seconds", "Age of the engine's last valid "
                  "self-report now: growing while the report is missing.", ENGINE),
        errors=counter(reg, "engine_report_errors", "Self-reports that could not be read "
                       "or parsed.", ENGINE),
        throughput=gauge(reg, "engine_reported_operations_per_second", "Throughput the "
                         "engine reports for itself.", ENGINE),
        latency=gauge(reg, "engine_reported_latency_seconds", "Average latency the engine "
                      "reports for itself.", ENGINE),
        cpu=gauge(reg, "engine_reported_cpu_ratio", "CPU use the engine reports, as a "
                  "fraction of one core.", ENGINE),
        memory=gauge(reg, "engine_reported_memory_bytes", "Memory the engine reports.", ENGINE),
        error_ratio=gauge(reg, "engine_reported_error_ratio", "Error ratio the engine "
                          "reports (0..1).", ENGINE),
        op_throughput=gauge(reg, "engine_reported_operation_operations_per_second",
                            "Per-operation throughput the engine reports for itself "
                            "(optional `operations` field).", ENGINE_OP))


class SelfReportProbe(PollingProbe):
    """Reads every engine's self-report at a fixed interval into gauges."""

    kind = "self_report"
    what = "Engine self-reports"

    def __init__(self, client: aioredis.Redis, metrics: Metrics, group: ReportMetrics,
                 spec: SelfReportSpec, supervisor: Supervisor) -> None:
        super().__init__(client, metrics, spec, supervisor)
        self.group = group
        self.reports: dict[str, EngineReport] = {}

    def apply(self, spec: SelfReportSpec) -> bool:
        # Engines no longer read lose their series (a stale "up" would lie forever).
        for engine in set(self.spec.engines) - set(spec.engines):
            if engine in self.reports:
                self.group.remove_engine(engine, self.reports.pop(engine))
        self.spec = spec
        self._bind_errors()
        return True

    async def close(self) -> None:
        for engine, report in self.reports.items():
            self.group.remove_engine(engine, report)
        self.reports.clear()

    def _report(self, engine: str) -> EngineReport:
        r = self.reports.get(engine)
        if r is None:
            r = self.reports[engine] = EngineReport(self.group.up.labels(engine))
        return r

    def _errors(self, engine: str) -> Any:
        r = self._report(engine)
        if r.errors is None:
            r.errors = self.group.errors.labels(engine)
        return r.errors

    def _bind_errors(self) -> None:
        for engine in self.spec.engines:  # a report never unreadable reads 0
            self._errors(engine)

    async def start(self) -> None:
        self._bind_errors()

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
            self.warn.failed("read", describe(exc))
            self._m.bus_error[BusOperation.SELF_REPORT].inc()
            await reset_after(self._redis, exc)
            return
        self.warn.recovered("read")
        for engine, raw in zip(engines, raws, strict=True):
            r = self._report(engine)
            if raw is None:
                r.up.set(0)
                continue
            try:
                report = parse_report(raw)
            except ValueError as exc:  # JSONDecodeError is a ValueError
                log.debug("bad self-report from %s: %s", engine, exc)
                self._errors(engine).inc()
                r.up.set(0)
                continue
            r.timestamp = report["timestamp"]
            if r.values is None:
                r.values = self.group.values(engine)
                # Computed at each scrape, not held from the read.
                r.values.age.set_function(lambda r=r: max(time.time() - r.timestamp, 0.0))
            s = r.values
            r.up.set(1)
            # Base units: seconds, ratios, bytes.
            s.throughput.set(report["throughput"])
            s.latency.set(report["latency"] * 1e-3)
            s.cpu.set(report["cpu_usage"] * 1e-2)
            s.memory.set(report["memory_usage"] * MIB)
            s.error_ratio.set(report["error_rate"])
            ops: dict[str, float] = report["operations"]
            # Operations the engine stopped reporting go (bounded: MAX_OPERATIONS).
            for op in set(r.ops) - set(ops):
                remove(self.group.op_throughput, engine, op)
                del r.ops[op]
            for op, rate in ops.items():
                if op not in r.ops:  # op names come from the report: bound when first seen
                    r.ops[op] = self.group.op_throughput.labels(engine, op)
                r.ops[op].set(rate)


def _build(spec: SelfReportSpec, ctx: Context) -> SelfReportProbe:
    assert ctx.bus is not None  # reads through the MessageBus connection's client
    return SelfReportProbe(ctx.bus.client, ctx.metrics, ctx.group, spec, ctx.supervisor)


def _engine_names(path: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(path, f"must be a list of engine names, got {value!r}")
    return tuple(checks.name(f"{path}[{i}]", v) for i, v in enumerate(value))


def _parse(root: Node, parsed: Mapping[str, Any]) -> SelfReportSpec:
    """`self_reports:` (interval, engines); by default the reports of every engine the
    MessageBus probes. Always a spec (with no engines, a probe that reads none)."""
    node = root.node("self_reports")
    interval = node.get("interval", 5.0, duration)
    engines = node.get("engines", None, _engine_names)
    node.done()
    if engines is None:
        engines = tuple(dict.fromkeys(p.engine for p in parsed.get("messagebus", ())))
    return SelfReportSpec(engines, interval)


# Every shard reads every report (a report is one key; its series carry the instance).
KIND = ProbeKind("self_report", build=_build, shard=whole, bus=True, metrics=build_metrics,
                 sections=("self_reports",), parse=_parse, loops=("self_report",),
                 no_panels="the engine dashboard's row of what the engine reports about "
                           "itself, beside the probed figures")
