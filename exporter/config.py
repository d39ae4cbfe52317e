"""The exporter's YAML configuration: decode strictly, validate, never half-apply."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from . import protocol
from .yamlcheck import (ConfigError, Node, duration, load_file, name, non_negative_int, one_of,
                        positive, positive_int, redis_url_check, string)

DEFAULT_LEGS = (("risk", "limit_check"), ("analytics", "calculation"),
                ("factor", "factor_calculation"), ("ml", "process"))


@dataclass(frozen=True)
class ProbeSpec:
    """One stream of probes: an engine's operation at a fixed open-loop rate."""

    engine: str
    op: str
    rate: float  # probes per second
    timeout: float  # seconds
    priority: str
    payload_size: int  # bytes


@dataclass(frozen=True)
class CompositeSpec:
    """The "trading request": legs sent in parallel; as slow as its slowest leg."""

    rate: float
    timeout: float
    priority: str
    payload_size: int
    legs: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Config:
    redis_url: str
    transport: str
    prefix: str
    prober_id: str
    probes: tuple[ProbeSpec, ...]
    trading_request: CompositeSpec | None
    self_report_interval: float
    self_report_engines: tuple[str, ...]
    max_in_flight: int
    checksum: str = ""

    @classmethod
    def load(cls, path: str, redis_url: str | None = None) -> "Config":
        cfg, digest = load_file(path, parse)
        if redis_url is not None:
            cfg = dataclasses.replace(cfg, redis_url=redis_url_check("--redis.url", redis_url))
        return dataclasses.replace(cfg, checksum=digest)

    def connection(self) -> tuple[str, str, str, str]:
        """What a reload cannot change without reconnecting."""
        return (self.redis_url, self.transport, self.prefix, self.prober_id)


def _probe_settings(node: Node, base: dict[str, Any]) -> dict[str, Any]:
    out = {
        "rate": node.get("rate", base["rate"], positive),
        "timeout": node.get("timeout", base["timeout"], duration),
        "priority": node.get("priority", base["priority"], one_of(*protocol.PRIORITIES)),
        "payload_size": node.get("payload_size", base["payload_size"], non_negative_int),
    }
    node.done()
    return out


def parse(data: Any) -> Config:
    root = Node(data)
    redis_url = root.get("redis_url", "redis://127.0.0.1:6379/0", redis_url_check)
    transport = root.get("transport", "streams", one_of(*protocol.TRANSPORTS))
    prefix = root.get("prefix", protocol.DEFAULT_PREFIX, string)
    prober_id = root.get("prober_id", "exporter", name)
    max_in_flight = root.get("max_in_flight", 100_000, positive_int)
    defaults = _probe_settings(root.node("defaults"), {
        "rate": 10.0, "timeout": 2.0, "priority": "normal", "payload_size": 64})

    probes: list[ProbeSpec] = []
    engines = root.node("engines")
    for engine, ops in engines.items():
        epath = engines.sub(engine)
        name(epath, engine)
        ops_node = Node(ops, epath)
        for op, settings in ops_node.items():
            name(ops_node.sub(op), op)
            probes.append(ProbeSpec(engine, op, **_probe_settings(Node(settings, ops_node.sub(op)),
                                                                  defaults)))
    if not probes:
        raise ConfigError("engines", "must name at least one engine and operation to probe")

    trading = None
    if "trading_request" in root.data:
        tnode = root.node("trading_request")
        legs_node = tnode.node("legs")
        legs = tuple((name(legs_node.sub(e), e), name(legs_node.sub(e), op))
                     for e, op in legs_node.items()) or DEFAULT_LEGS
        trading = CompositeSpec(
            rate=tnode.get("rate", 10.0, positive),
            timeout=tnode.get("timeout", defaults["timeout"], duration),
            priority=tnode.get("priority", "high", one_of(*protocol.PRIORITIES)),
            payload_size=tnode.get("payload_size", defaults["payload_size"], non_negative_int),
            legs=legs)
        tnode.done()

    reports = root.node("self_reports")
    interval = reports.get("interval", 5.0, duration)
    report_engines = reports.get("engines", None, _name_list)
    reports.done()
    if report_engines is None:
        report_engines = tuple(dict.fromkeys(p.engine for p in probes))
    root.done()
    return Config(redis_url, transport, prefix, prober_id, tuple(probes), trading,
                  interval, report_engines, max_in_flight)


def _name_list(path: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(path, f"must be a list of engine names, got {value!r}")
    return tuple(name(f"{path}[{i}]", v) for i, v in enumerate(value))
