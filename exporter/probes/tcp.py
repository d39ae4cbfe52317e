"""TCP connect probing: each target (an engine's host:port) is connected to once per
interval and the connection closed at once; a connection made within the timeout
is a success. Its time runs from the scheduled time to the connection made. For
engines whose health endpoint is not HTTP, or to tell "nothing listens" from "the
service answers badly".

    tcp:
      interval: 5s
      timeout: 2s
      targets:                       # engine: host:port, or a list of them
        risk: 10.0.0.5:7001
        websocket: [ws-1:8080, ws-2:8081]
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from nautilus_config.checks import at_most, duration, name, Node, string
from nautilus_config.errors import ConfigError
from nautilus_wire.failure_log import FailureLog

from ..costs import Cost
from ..metrics import CONNECT_BUCKETS, counter, gauge, histogram, remove
from ..schedule import clock
from .base import MAX_TIMEOUT_S, Context, Panel, ProbeKind
from .targets import Every, shard_targets, target_limit

log = logging.getLogger(__name__)

MAX_TARGETS = 500  # each is a handful of series
TARGET = ("engine", "target")


class TcpFailure(str, Enum):
    """Why a connect failed: the `reason` label of tcp_failures_total."""

    REFUSED = "refused"  # the host answered: nothing listens on the port
    TIMEOUT = "timeout"  # no answer within the timeout (a firewall drops, the host is down)
    UNREACHABLE = "unreachable"  # no route to the host or its network
    DNS = "dns"  # the host name does not resolve
    ERROR = "error"  # anything else


@dataclass(frozen=True)
class TcpTarget:
    engine: str  # the `engine` label
    host: str
    port: int

    @property
    def label(self) -> str:  # the `target` label
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class TcpSpec:
    targets: tuple[TcpTarget, ...]
    interval: float
    timeout: float


@dataclass(slots=True)
class TargetSeries:
    """The children of one target, bound once."""

    connects: Any
    duration: Any
    up: Any
    failures: dict[TcpFailure, Any]


@dataclass
class TcpMetrics:
    connects: Counter
    failures: Counter
    duration: Histogram
    up: Gauge

    def init_target(self, t: TcpTarget) -> TargetSeries:
        """Every series of a target (a never-seen failure reads 0)."""
        return TargetSeries(
            connects=self.connects.labels(t.engine, t.label),
            duration=self.duration.labels(t.engine, t.label),
            up=self.up.labels(t.engine, t.label),
            failures={r: self.failures.labels(t.engine, t.label, r.value) for r in TcpFailure})

    def remove_target(self, t: TcpTarget) -> None:
        for family in (self.connects, self.duration, self.up):
            remove(family, t.engine, t.label)
        for reason in TcpFailure:
            remove(self.failures, t.engine, t.label, reason.value)


def build_metrics(reg: CollectorRegistry) -> TcpMetrics:
    return TcpMetrics(
        connects=counter(reg, "tcp_connects", "TCP connect probes attempted.", TARGET),
        failures=counter(reg, "tcp_failures", "TCP connect probes that failed, by reason: "
                         "refused, timeout, unreachable, dns, error.", (*TARGET, "reason")),
        duration=histogram(reg, "tcp_connect_duration_seconds", "Successful TCP connects, "
                           "from the scheduled time to the connection made.", TARGET,
                           CONNECT_BUCKETS),
        up=gauge(reg, "tcp_up", "1 when the last TCP connect probe succeeded.", TARGET))


def classify(exc: BaseException) -> TcpFailure:
    """The reason label of an exception raised while connecting."""
    if isinstance(exc, TimeoutError):
        return TcpFailure.TIMEOUT
    if isinstance(exc, ConnectionRefusedError):
        return TcpFailure.REFUSED
    if isinstance(exc, socket.gaierror):
        return TcpFailure.DNS
    if isinstance(exc, OSError) and exc.errno in (101, 113):  # ENETUNREACH, EHOSTUNREACH
        return TcpFailure.UNREACHABLE
    return TcpFailure.ERROR


class TcpProbe:
    kind = "tcp"

    def __init__(self, spec: TcpSpec, ctx: Context) -> None:
        self.spec = spec
        self.m: TcpMetrics = ctx.group
        self.supervisor = ctx.supervisor
        self.series = {t: self.m.init_target(t) for t in spec.targets}
        self.warn = FailureLog(log, "TCP connect probe of")
        self.every = Every(lambda: self.spec.interval, self._probe_all)

    def apply(self, spec: TcpSpec) -> bool:
        """The same targets: applied in place (a new interval or timeout at once);
        otherwise replaced (a removed target's series go with the old probe)."""
        if spec.targets != self.spec.targets:
            return False
        if spec.interval != self.spec.interval:
            self.every.replan()
        self.spec = spec
        return True

    async def start(self) -> None:
        """Nothing to open: each probe is a connection of its own."""

    async def run(self, stop: asyncio.Event) -> None:
        await self.supervisor.run(self.kind, lambda: self.every.run(stop), stop)

    async def _probe_all(self, due: float) -> None:
        await asyncio.gather(*(self.probe(t, due) for t in self.spec.targets))

    async def probe(self, target: TcpTarget, due: float) -> None:
        """Connect to one target once; every outcome is counted, none is raised."""
        s = self.series[target]
        s.connects.inc()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.spec.timeout):
                transport, _ = await loop.create_connection(asyncio.Protocol, target.host,
                                                            target.port)
        except Exception as exc:  # every failure is a counted reason, the loop goes on
            reason = classify(exc)
            s.failures[reason].inc()
            s.up.set(0)
            self.warn.failed(target.label, f"{reason.value}: {exc!r}")
            return
        took = clock() - due
        transport.abort()  # nothing to say: the connection was the probe
        self.warn.recovered(target.label)
        s.duration.observe(took)
        s.up.set(1)

    async def close(self) -> None:
        for target in self.series:
            self.m.remove_target(target)


def _target(path: str, engine: str, value: Any) -> TcpTarget:
    text = string(path, value)
    try:
        parts = urlsplit(f"tcp://{text}")
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if not host or port is None or not 1 <= port <= 65535 or parts.path or parts.query:
        raise ConfigError(path, f"must be host:port with a port of 1-65535, got {text!r}")
    return TcpTarget(engine, host, port)


def _targets(node: Node) -> tuple[TcpTarget, ...]:
    """engine: host:port, or engine: [host:port, ...] (several instances of one engine)."""
    out: list[TcpTarget] = []
    for engine, value in node.items():
        path = node.sub(engine)
        name(path, engine)
        values = value if isinstance(value, list) else [value]
        if not values:
            raise ConfigError(path, "must be host:port or a non-empty list of them")
        for i, v in enumerate(values):
            p = f"{path}[{i}]" if isinstance(value, list) else path
            target = _target(p, engine, v)
            if target in out:
                raise ConfigError(p, f"repeats {target.label}")
            out.append(target)
    return tuple(out)


def _parse(root: Node, parsed: Mapping[str, Any]) -> TcpSpec | None:
    if "tcp" not in root.data:
        return None
    node = root.node("tcp")
    targets_node = node.node("targets")
    targets = _targets(targets_node)
    if not targets:
        raise ConfigError(targets_node.path, "must map at least one engine to its host:port")
    interval = node.get("interval", 5.0, at_most(MAX_TIMEOUT_S, duration))
    timeout = node.get("timeout", min(2.0, interval), at_most(MAX_TIMEOUT_S, duration))
    if timeout > interval:
        raise ConfigError(node.sub("timeout"), f"must not exceed {node.sub('interval')} "
                          f"({interval:g}s), got {timeout:g}s")
    node.done()
    return TcpSpec(targets, interval, timeout)


PANELS = (
    Panel("TCP connect", (("min({P}_tcp_up{sel})", "worst target"),), up=True,
          description="UP when every host:port of the engine accepted a connection in time "
          "at its last probe. No data: the engine has no `tcp:` target."),
    Panel("TCP connect time p99", ((
        "(histogram_quantile(0.99, sum by (target, le) (rate({P}_tcp_connect_duration_seconds"
        "_bucket{sel}[{rate}]))) >= 0)", "{{target}}"),), "s",
        "Successful connects, per host:port, from the scheduled time to the connection made."),
    Panel("TCP connect failures by reason", (
        ("sum by (reason) (rate({P}_tcp_failures_total{sel}[{rate}]))", "{{reason}}"),
        ("sum(rate({P}_tcp_connects_total{sel}[{rate}]))", "probes sent")), "ops",
        "refused (nothing listens), timeout, unreachable, dns, error."),
)

KIND = ProbeKind("tcp", build=TcpProbe, shard=shard_targets, sections=("tcp",), parse=_parse,
                 metrics=build_metrics, memory=lambda spec: Cost(series=len(spec.targets)),
                 limit=target_limit("tcp.targets", MAX_TARGETS), loops=("tcp",),
                 row="TCP connect (host:port probes)", panels=PANELS)
