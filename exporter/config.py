"""The exporter's YAML configuration: decode strictly, validate, never half-apply."""

from __future__ import annotations

import dataclasses
import ssl
from urllib.parse import urlencode
from dataclasses import dataclass
from typing import Any

from nautilus_wire import protocol
from nautilus_wire.redis_client import RedisAccess

from .memory import DEFAULT_MAX_MEMORY, MIB, Bound
from .memory import bound as memory_bound
from .probes.backlog import BacklogSpec
from .yamlcheck import (ConfigError, Node, at_most, boolean, duration, load_file,
                        messagebus_settings, name, redis_access, non_negative_int, one_of, positive,
                        positive_int, redis_url_check, split_url, string)


# Upper bounds, so that any accepted config runs in bounded memory and CPU (the
# reasoning is in docs/configuration.md). One process sustains about 10,000
# probes/s on 2 cores; beyond that, shard (--workers, --shard).
MAX_RATE = 50_000.0  # probes/s of one engine × op, or trading requests/s
MAX_TOTAL_RATE = 100_000.0  # probes/s over the whole plan
MAX_SERIES = 500  # engine × op series: each is ~100 lines of /metrics
MAX_PAYLOAD = 65_536  # bytes of a probe's payload
MAX_TIMEOUT_S = 60.0
MAX_IN_FLIGHT = 1_000_000
MAX_CONNECTIONS = 100_000  # held WebSocket connections (fds: ulimit -n bounds it too)
MAX_HEARTBEAT_RATE = 50_000.0
MAX_CONNECT_RATE = 10_000.0
MAX_MEMORY_MIB = 65_536


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
class WsEndpoint:
    url: str  # as dialled, with ?token= when one is set
    label: str  # the `endpoint` label: the URL without its query (never the token)
    ca_file: str | None
    cert_file: str | None = None  # a client certificate, for servers that ask for one
    key_file: str | None = None


@dataclass(frozen=True)
class WsSpec:
    """WebSocket probing: a pool of held connections, heartbeats, a subscription check."""

    endpoints: tuple[WsEndpoint, ...]
    connections: int  # held in total, spread round-robin over the endpoints
    connect_rate: float  # new connections per second, at most
    connect_timeout: float
    heartbeat_rate: float  # heartbeats per second over all held connections
    heartbeat_timeout: float
    compression: bool
    subscribe_topic: str | None
    subscribe_connections: int  # per endpoint


@dataclass(frozen=True)
class SelfReportSpec:
    """Which engines' self-reports (`metrics:<engine>`) are read, and how often."""

    engines: tuple[str, ...]
    interval: float


@dataclass(frozen=True)
class Config:
    redis_url: str
    transport: str
    prefix: str
    prober_id: str
    probes: tuple[ProbeSpec, ...]
    trading_request: CompositeSpec | None
    self_reports: SelfReportSpec
    max_in_flight: int
    websocket: WsSpec | None = None
    checksum: str = ""
    redis_access: RedisAccess = RedisAccess()
    max_memory: int = DEFAULT_MAX_MEMORY  # bytes: a config whose memory bound is higher is refused

    @property
    def memory(self) -> Bound:
        """The most memory this configuration can make the exporter hold (memory.py)."""
        return memory_bound(self)

    @classmethod
    def load(cls, path: str, redis_url: str | None = None,
             shard: tuple[int, int] = (1, 1)) -> Config:
        cfg, digest = load_file(path, parse)
        if redis_url is not None:
            cfg = dataclasses.replace(cfg, redis_url=redis_url_check("--redis.url", redis_url))
        return dataclasses.replace(cfg.shard(*shard), checksum=digest)

    @property
    def backlog(self) -> BacklogSpec | None:
        """The probed engines' request-stream backlog, read on the self-report interval
        (pub/sub keeps no backlog to read)."""
        if self.transport != "streams":
            return None
        engines = dict.fromkeys(p.engine for p in self.probes)
        engines.update(dict.fromkeys(e for e, _ in self.trading_request.legs)
                       if self.trading_request else {})
        return BacklogSpec(self.prefix, tuple(engines), self.self_reports.interval)

    def shard(self, index: int, count: int) -> Config:
        """Shard `index` of `count` (1-based) of this probe plan, for running several
        exporters: each engine × op is probed by exactly one shard, the trading
        request's rate and the WebSocket pool are split evenly, and every shard
        has its own prober id. Prometheus sums the shards' series."""
        if count == 1:
            return self
        probes = tuple(p for k, p in enumerate(sorted(self.probes, key=lambda p: (p.engine, p.op)))
                       if k % count == index - 1)
        trading = self.trading_request and dataclasses.replace(
            self.trading_request, rate=self.trading_request.rate / count)
        ws = self.websocket
        if ws is not None:
            ws = dataclasses.replace(
                ws, connections=ws.connections // count + (index - 1 < ws.connections % count),
                heartbeat_rate=ws.heartbeat_rate / count,
                connect_rate=ws.connect_rate / count,
                subscribe_connections=ws.subscribe_connections if index == 1 else 0)
        return dataclasses.replace(self, probes=probes, trading_request=trading, websocket=ws,
                                   prober_id=f"{self.prober_id}_s{index}")

    def connection(self) -> tuple[object, ...]:
        """What a reload cannot change without reconnecting."""
        return (self.redis_url, self.redis_access, self.transport, self.prefix, self.prober_id)


def _probe_settings(node: Node, base: dict[str, Any]) -> dict[str, Any]:
    out = {
        "rate": node.get("rate", base["rate"], at_most(MAX_RATE, positive)),
        "timeout": node.get("timeout", base["timeout"], at_most(MAX_TIMEOUT_S, duration)),
        "priority": node.get("priority", base["priority"], one_of(*protocol.PRIORITIES)),
        "payload_size": node.get("payload_size", base["payload_size"],
                                 at_most(MAX_PAYLOAD, non_negative_int)),
    }
    node.done()
    return out


def parse(data: Any) -> Config:
    root = Node(data)
    redis_url, transport, prefix = messagebus_settings(root)
    access = redis_access(root, redis_url)
    prober_id = root.get("prober_id", "exporter", name)
    max_in_flight = root.get("max_in_flight", 100_000, at_most(MAX_IN_FLIGHT, positive_int))
    max_memory = root.get("max_memory_mib", DEFAULT_MAX_MEMORY // MIB,
                          at_most(MAX_MEMORY_MIB, positive_int)) * MIB
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
    websocket = _websocket(root.node("websocket")) if "websocket" in root.data else None
    if not probes and websocket is None:
        raise ConfigError("engines", "must name at least one engine and operation to probe")
    if len(probes) > MAX_SERIES:
        raise ConfigError("engines", f"names {len(probes)} engine × op series; at most "
                          f"{MAX_SERIES} per exporter (shard the rest: --shard)")

    trading = None
    if "trading_request" in root.data:
        tnode = root.node("trading_request")
        legs_node = tnode.node("legs")
        legs = tuple((name(legs_node.sub(e), e), name(legs_node.sub(e), op))
                     for e, op in legs_node.items()) or protocol.TRADING_REQUEST_LEGS
        trading = CompositeSpec(
            rate=tnode.get("rate", 10.0, at_most(MAX_RATE, positive)),
            timeout=tnode.get("timeout", defaults["timeout"], at_most(MAX_TIMEOUT_S, duration)),
            priority=tnode.get("priority", "high", one_of(*protocol.PRIORITIES)),
            payload_size=tnode.get("payload_size", defaults["payload_size"],
                                   at_most(MAX_PAYLOAD, non_negative_int)),
            legs=legs)
        tnode.done()

    reports = root.node("self_reports")
    interval = reports.get("interval", 5.0, duration)
    report_engines = reports.get("engines", None, _name_list)
    reports.done()
    if report_engines is None:
        report_engines = tuple(dict.fromkeys(p.engine for p in probes))
    root.done()
    total = sum(p.rate for p in probes) + (trading.rate * len(trading.legs) if trading else 0)
    if total > MAX_TOTAL_RATE:
        raise ConfigError("engines", f"adds up to {total:,.0f} probes/s; at most "
                          f"{MAX_TOTAL_RATE:,.0f} per exporter (shard the rest: --shard)")
    cfg = Config(redis_url, transport, prefix, prober_id, tuple(probes), trading,
                 SelfReportSpec(report_engines, interval), max_in_flight, websocket,
                 redis_access=access, max_memory=max_memory)
    need = cfg.memory
    if need.total > max_memory:
        raise ConfigError("max_memory_mib", f"this configuration may hold up to "
                          f"{need.total / MIB:,.0f} MiB ({need.describe()} MiB), more than "
                          f"{max_memory // MIB:,} MiB: lower max_in_flight, rates, timeouts or "
                          "connections, shard it (--shard), or raise max_memory_mib")
    return cfg


def parse_shard(text: str) -> tuple[int, int]:
    """"2/3" -> (2, 3): the second of three shards."""
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise ConfigError("--shard", f"must look like 1/3, got {text!r}") from None
    if not 1 <= index <= count:
        raise ConfigError("--shard", f"must be i/N with 1 <= i <= N, got {text!r}")
    return index, count


WS_SECURITY = ("token", "ca_file", "cert_file", "key_file")


def _endpoint(path: str, value: Any, defaults: dict[str, str | None]) -> WsEndpoint:
    given = dict(defaults)
    if isinstance(value, dict):
        node = Node(value, path)
        url = node.get("url", None, string)
        given = {key: node.get(key, given[key], string) for key in WS_SECURITY}
        node.done()
        path = node.sub("url")
    else:
        url = string(path, value)
    if url is None or not url.startswith(("ws://", "wss://")):
        raise ConfigError(path, f"must be a ws:// or wss:// URL, got {url!r}")
    split_url(path, url)
    for key in ("ca_file", "cert_file", "key_file"):
        if given[key] is not None and not url.startswith("wss://"):
            raise ConfigError(path, f"{key} needs a wss:// URL")
    if (given["cert_file"] is None) != (given["key_file"] is None):
        raise ConfigError(path, "cert_file and key_file go together")
    try:  # files that cannot be loaded are a config error now, not at the first connection
        if url.startswith("wss://"):
            context = ssl.create_default_context(cafile=given["ca_file"])
            if given["cert_file"]:
                context.load_cert_chain(given["cert_file"], given["key_file"])
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(path, f"cannot load the TLS files: {exc}") from None
    label = url.split("?", 1)[0]
    if given["token"] is not None:
        url = f"{url}{'&' if '?' in url else '?'}{urlencode({'token': given['token']})}"
    return WsEndpoint(url, label, given["ca_file"], given["cert_file"], given["key_file"])


def _websocket(node: Node) -> WsSpec:
    defaults = {key: node.get(key, None, string) for key in WS_SECURITY}
    raw = node.get("endpoints", None)
    if not isinstance(raw, list) or not raw:
        raise ConfigError(node.sub("endpoints"), "must be a non-empty list of ws:// URLs")
    endpoints = tuple(_endpoint(f"{node.sub('endpoints')}[{i}]", v, defaults)
                      for i, v in enumerate(raw))
    sub = node.node("subscribe")
    topic = sub.get("topic", None, string)
    sub_conns = sub.get("connections", 1 if topic else 0, non_negative_int)
    sub.done()
    spec = WsSpec(
        endpoints=endpoints,
        connections=node.get("connections", len(endpoints), at_most(MAX_CONNECTIONS, positive_int)),
        connect_rate=node.get("connect_rate", 500.0, at_most(MAX_CONNECT_RATE, positive)),
        connect_timeout=node.get("connect_timeout", 5.0, at_most(MAX_TIMEOUT_S, duration)),
        heartbeat_rate=node.get("heartbeat_rate", 10.0, at_most(MAX_HEARTBEAT_RATE, positive)),
        heartbeat_timeout=node.get("heartbeat_timeout", 2.0, at_most(MAX_TIMEOUT_S, duration)),
        compression=node.get("compression", False, boolean),
        subscribe_topic=topic, subscribe_connections=sub_conns)
    node.done()
    return spec


def _name_list(path: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(path, f"must be a list of engine names, got {value!r}")
    return tuple(name(f"{path}[{i}]", v) for i, v in enumerate(value))
