"""WebSocket probing: hold a pool of connections, heartbeat them open loop, check
subscriptions.

Held connections cost no task: each is a sans-I/O `websockets` ClientProtocol
driven by an asyncio.Protocol's callbacks. One connector task opens connections
(bounded rate, round-robin over endpoints, backoff per endpoint), one scheduler
task sends heartbeats at a fixed total rate to the open connections in turn.
A heartbeat's latency runs from its scheduled send time to its heartbeat_ack;
an error frame is a failure, never a reply.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import dataclasses
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import urlencode
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidStatus, PayloadTooBig, ProtocolError
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri, WebSocketURI

from nautilus_wire import ws_protocol as wp
from nautilus_wire.failure_log import FailureLog

from ..metrics import CONNECT_BUCKETS, LATENCY_BUCKETS, counter, gauge, histogram
from ..schedule import EARLY_S, Schedule, clock, sleep_for
from ..costs import PER_CONNECTION, PER_CONNECTION_DEFLATE, Cost
from ..supervise import Supervisor
from nautilus_config.checks import (at_most, boolean, duration, Node, non_negative_int, positive,
                                    positive_int, split_url, string)
from nautilus_config.errors import ConfigError
from .base import MAX_TIMEOUT_S, Context, ProbeKind, client_tls, one_section
from .heartbeats import AckKind, Disconnect, HeartbeatTracker, Loss, broadcast_gap, loss_reason

log = logging.getLogger(__name__)

CONNECT_TICK_S = 0.01
MAX_CONNECTING = 256
# Reconnecting backs off exponentially, with jitter (x0.5-1.5), from 0.1 s up to
# this, after a failed connect, an unauthorized close, a protocol error, or any
# loss of a connection that lived under QUICK_LOSS_S; after a heartbeat answered,
# or CALM_S without trouble, it starts again from 0.1 s.
MAX_BACKOFF_S = 5.0
QUICK_LOSS_S = 1.0
CALM_S = 30.0
MAX_FRAME = 2**16  # larger frames close the connection: a protocol_error
# Configuration bounds (docs/configuration.md).
MAX_CONNECTIONS = 100_000  # held connections (fds: ulimit -n bounds it too)
MAX_HEARTBEAT_RATE = 50_000.0
MAX_CONNECT_RATE = 10_000.0

class ConnectFailure(str, Enum):
    """Why a connection could not be opened: the `reason` of ws_connect_failures_total."""

    REFUSED = "refused"
    TIMEOUT = "timeout"
    HANDSHAKE = "handshake"  # an HTTP status other than 101
    TLS = "tls"
    ERROR = "error"


EP = ("endpoint",)


@dataclass(slots=True)
class EndpointSeries:
    """The children of one endpoint, bound once."""

    open: Any
    desired: Any
    connect_duration: Any
    heartbeat_latency: Any
    sent: Any
    received: Any
    error_replies: Any
    timeouts: Any
    late: Any
    invalid: Any
    broadcast_frames: Any
    broadcast_gaps: Any
    connect_failures: dict[ConnectFailure, Any]
    disconnects: dict[Disconnect, Any]


@dataclass
class WsMetrics:
    """The WebSocket probe's metric group (docs/metrics.md)."""

    open: Gauge
    desired: Gauge
    connect_duration: Histogram
    connect_failures: Counter
    disconnects: Counter
    heartbeat_latency: Histogram
    sent: Counter
    received: Counter
    error_replies: Counter
    timeouts: Counter
    late: Counter
    invalid: Counter
    broadcast_frames: Counter
    broadcast_gaps: Counter
    skipped: Counter

    def init_endpoint(self, endpoint: str) -> EndpointSeries:
        """Every series of an endpoint (a never-seen failure reads 0)."""
        return EndpointSeries(
            open=self.open.labels(endpoint), desired=self.desired.labels(endpoint),
            connect_duration=self.connect_duration.labels(endpoint),
            heartbeat_latency=self.heartbeat_latency.labels(endpoint),
            sent=self.sent.labels(endpoint), received=self.received.labels(endpoint),
            error_replies=self.error_replies.labels(endpoint),
            timeouts=self.timeouts.labels(endpoint), late=self.late.labels(endpoint),
            invalid=self.invalid.labels(endpoint),
            broadcast_frames=self.broadcast_frames.labels(endpoint),
            broadcast_gaps=self.broadcast_gaps.labels(endpoint),
            connect_failures={r: self.connect_failures.labels(endpoint, r.value)
                              for r in ConnectFailure},
            disconnects={r: self.disconnects.labels(endpoint, r.value) for r in Disconnect})


def build_metrics(reg: CollectorRegistry) -> WsMetrics:
    return WsMetrics(
        open=gauge(reg, "ws_connections_open", "WebSocket connections held open.", EP),
        desired=gauge(reg, "ws_connections_desired", "WebSocket connections the configuration "
                      "asks the prober to hold open.", EP),
        connect_duration=histogram(reg, "ws_connect_duration_seconds", "Time to open a "
                                   "WebSocket connection: TCP, TLS and handshake.", EP,
                                   CONNECT_BUCKETS),
        connect_failures=counter(reg, "ws_connect_failures", "WebSocket connections that could "
                                 "not be opened, by reason: refused, timeout, handshake "
                                 "(HTTP status), tls, error.", (*EP, "reason")),
        disconnects=counter(reg, "ws_disconnects", "Open WebSocket connections lost, by reason: "
                            "dropped (no close frame), closed (by the server), unauthorized "
                            "(close code 4001), protocol_error.", (*EP, "reason")),
        heartbeat_latency=histogram(reg, "ws_heartbeat_latency_seconds", "Heartbeat round trip, "
                                    "from the scheduled send time to heartbeat_ack.", EP,
                                    LATENCY_BUCKETS),
        sent=counter(reg, "ws_messages_sent", "Heartbeats sent.", EP),
        received=counter(reg, "ws_messages_received", "Heartbeat acknowledgements received in "
                         "time.", EP),
        error_replies=counter(reg, "ws_error_replies", "Error frames received (failures, never "
                              "counted as replies).", EP),
        timeouts=counter(reg, "ws_timeouts", "Heartbeats not acknowledged in time.", EP),
        late=counter(reg, "ws_replies_late", "Acknowledgements that arrived after their "
                     "heartbeat timed out.", EP),
        invalid=counter(reg, "ws_invalid_frames", "Frames that were not protocol JSON.", EP),
        broadcast_frames=counter(reg, "ws_broadcast_frames", "Broadcast frames received by "
                                 "subscribed connections.", EP),
        broadcast_gaps=counter(reg, "ws_broadcast_gaps", "Broadcast sequence numbers missed by "
                               "subscribed connections.", EP),
        skipped=counter(reg, "ws_heartbeats_skipped", "Heartbeats due while no connection was "
                        "open."))


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


@dataclass(eq=False)
class Endpoint:
    spec: WsEndpoint
    target: int
    ssl: ssl.SSLContext | None
    m: EndpointSeries
    open: int = 0
    connecting: int = 0
    subscribed: int = 0
    retry_at: float = 0.0
    backoff: float = 0.0
    troubled_at: float = -CALM_S
    uri: WebSocketURI | None = None  # parsed once: every connection shares it

    def back_off(self, now: float) -> None:
        """Wait before the next connection to this endpoint, longer each time."""
        if now - self.troubled_at > CALM_S:
            self.backoff = 0.0
        self.troubled_at = now
        self.backoff = min(max(self.backoff * 2, 0.1), MAX_BACKOFF_S)
        self.retry_at = now + self.backoff * random.uniform(0.5, 1.5)


class _Conn(asyncio.Protocol):
    """One held connection: bytes in and out of a sans-I/O ClientProtocol."""

    __slots__ = ("prober", "ep", "proto", "transport", "handshake", "is_open", "last_seq",
                 "index", "opened_at")

    def __init__(self, prober: WebSocketProbe, ep: Endpoint, uri: WebSocketURI) -> None:
        self.prober, self.ep = prober, ep
        extensions = [ClientPerMessageDeflateFactory()] if prober.spec.compression else None
        self.proto = ClientProtocol(uri, extensions=extensions, max_size=MAX_FRAME)
        self.opened_at = 0.0
        self.transport: asyncio.Transport | None = None
        self.handshake: asyncio.Future[None] | None = \
            asyncio.get_running_loop().create_future()
        self.is_open = False
        self.last_seq: int | None = None  # subscribed connections only
        self.index = -1  # position in the prober's open list

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # asyncio hands the base class
        self.proto.send_request(self.proto.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        self.proto.receive_data(data)
        self._events()

    def eof_received(self) -> bool | None:
        self.proto.receive_eof()
        self._events()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.handshake is not None and not self.handshake.done():
            self.handshake.set_exception(exc or ConnectionError("closed during handshake"))
        self.prober.lost(self)

    def send(self, text: str) -> bool:
        """False when the connection is already closing (the frame is not sent)."""
        if self.proto.state is not State.OPEN:
            return False
        self.proto.send_text(text.encode())
        self._flush()
        return True

    def _events(self) -> None:
        for event in self.proto.events_received():
            if isinstance(event, Response):
                # The protocol's parser keeps the response for the connection's life;
                # its headers, checked by now, were a third of a held connection's memory.
                event.headers.clear()
                event.body = b""
                if self.handshake is not None and not self.handshake.done():
                    if self.proto.handshake_exc is not None:
                        self.handshake.set_exception(self.proto.handshake_exc)
                    else:
                        self.handshake.set_result(None)
            elif isinstance(event, Frame) and event.opcode is Opcode.TEXT and event.fin:
                self.prober.frame(self, bytes(event.data))
            elif isinstance(event, Frame) and event.opcode in (Opcode.BINARY, Opcode.TEXT, Opcode.CONT):
                self.ep.m.invalid.inc()  # binary or fragmented: not protocol frames
        self._flush()

    def _flush(self) -> None:
        if self.transport is None:
            return
        for data in self.proto.data_to_send():
            if data:
                self.transport.write(data)
            elif self.transport.can_write_eof():
                # As websockets does: write_eof() documents no exceptions; OSError is
                # plausible, and uvloop raises RuntimeError once the transport is closed.
                try:
                    self.transport.write_eof()
                except (OSError, RuntimeError):
                    pass
        if self.proto.close_expected() and not self.transport.is_closing():
            # The server closes the TCP connection after the closing handshake.
            asyncio.get_running_loop().call_later(1.0, self.transport.abort)


def _ssl_context(ep: WsEndpoint) -> ssl.SSLContext | None:
    return client_tls(ep.ca_file, ep.cert_file, ep.key_file) if ep.url.startswith("wss://") else None


class WebSocketProbe:
    kind = "websocket"

    def __init__(self, spec: WsSpec, metrics: WsMetrics, supervisor: Supervisor) -> None:
        self.spec = spec
        self.m = metrics
        self.supervisor = supervisor
        n = len(spec.endpoints)
        self.endpoints = [Endpoint(e, spec.connections // n + (i < spec.connections % n),
                                   _ssl_context(e), metrics.init_endpoint(e.label))
                          for i, e in enumerate(spec.endpoints)]
        for ep in self.endpoints:
            ep.m.desired.set(ep.target)
        self.open: list[_Conn] = []
        # Each kind of fault per endpoint logged once per 10 s with a count, as for
        # the MessageBus (docs/configuration.md).
        self.warn = FailureLog(log, "WebSocket")
        self.heartbeats: HeartbeatTracker[_Conn] = HeartbeatTracker(spec.heartbeat_timeout)
        self._rr = 0
        self._closing = False
        self._connects: set[asyncio.Task[None]] = set()
        # Optional raw observers (benchmark runs keep exact histograms of their own).
        self.on_connect: Callable[[float], None] | None = None
        self.on_latency: Callable[[float], None] | None = None

    # -- connections -------------------------------------------------------------------

    async def run_connector(self, stop: asyncio.Event) -> None:
        tokens, last = 0.0, clock()
        turn = 0
        while not stop.is_set():
            now = clock()
            burst = max(self.spec.connect_rate * 0.1, 1.0)
            tokens = min(tokens + (now - last) * self.spec.connect_rate, burst)
            last = now
            idle = 0
            # Round-robin over endpoints: one refusing endpoint never starves the rest.
            while tokens >= 1 and len(self._connects) < MAX_CONNECTING and idle < len(self.endpoints):
                ep = self.endpoints[turn % len(self.endpoints)]
                turn += 1
                if ep.open + ep.connecting >= ep.target or now < ep.retry_at:
                    idle += 1
                    continue
                idle = 0
                tokens -= 1
                ep.connecting += 1
                task = asyncio.create_task(self._connect(ep))
                self._connects.add(task)
                task.add_done_callback(self._connects.discard)
            await asyncio.sleep(CONNECT_TICK_S)

    async def _connect(self, ep: Endpoint) -> None:
        loop = asyncio.get_running_loop()
        started = clock()
        conn: _Conn | None = None
        reason: ConnectFailure | None = None
        try:
            # Inside the try: whatever the URL or the connection does is counted.
            uri = ep.uri = ep.uri or parse_uri(ep.spec.url)
            async with asyncio.timeout(self.spec.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: _Conn(self, ep, uri), uri.host, uri.port, ssl=ep.ssl,
                    server_hostname=uri.host if ep.ssl else None)
                assert conn.handshake is not None
                await conn.handshake
        except TimeoutError:
            reason = ConnectFailure.TIMEOUT
        except ConnectionRefusedError:
            reason = ConnectFailure.REFUSED
        except ssl.SSLError:
            reason = ConnectFailure.TLS
        except InvalidStatus:
            reason = ConnectFailure.HANDSHAKE
        except Exception as exc:
            log.debug("connecting to %s failed: %r", ep.spec.label, exc)
            reason = (ConnectFailure.HANDSHAKE if conn is not None and conn.proto.handshake_exc
                      else ConnectFailure.ERROR)
        finally:
            ep.connecting -= 1
        if conn is not None:
            conn.handshake = None
        if reason is not None:
            ep.m.connect_failures[reason].inc()
            self.warn.failed(f"connects to {ep.spec.label}", reason.value)
            ep.back_off(clock())
            if conn is not None and conn.transport is not None:
                conn.transport.abort()
            return
        assert conn is not None
        if self._closing or conn.transport is None or conn.transport.is_closing():
            return
        conn.opened_at = clock()
        self.warn.recovered(f"connects to {ep.spec.label}")
        ep.m.connect_duration.observe(clock() - started)
        if self.on_connect is not None:
            self.on_connect(clock() - started)
        ep.open += 1
        ep.m.open.inc()
        conn.is_open = True
        conn.index = len(self.open)
        self.open.append(conn)
        if self.spec.subscribe_topic and ep.subscribed < self.spec.subscribe_connections:
            ep.subscribed += 1
            conn.last_seq = 0
            conn.send(wp.client_frame("subscribe", topic=self.spec.subscribe_topic))

    def lost(self, conn: _Conn) -> None:
        if not conn.is_open:
            return
        conn.is_open = False
        ep = conn.ep
        ep.open -= 1
        ep.m.open.dec()
        if conn.last_seq is not None:
            ep.subscribed -= 1
        # Swap-remove: O(1), order does not matter for round-robin.
        last = self.open.pop()
        if last is not conn:
            self.open[conn.index] = last
            last.index = conn.index
        if self._closing:
            return
        close = conn.proto.close_rcvd
        reason = loss_reason(Loss(
            close.code if close is not None else None,
            # Bad framing, or a frame over MAX_FRAME (an EOF is not one of them).
            isinstance(conn.proto.parser_exc, (ProtocolError, PayloadTooBig))))
        ep.m.disconnects[reason].inc()
        if reason is not Disconnect.CLOSED:
            self.warn.failed(f"connections to {ep.spec.label}", f"lost: {reason.value}")
        now = clock()
        if (reason in (Disconnect.UNAUTHORIZED, Disconnect.PROTOCOL_ERROR)
                or now - conn.opened_at < QUICK_LOSS_S):
            ep.back_off(now)

    # -- heartbeats ---------------------------------------------------------------------

    async def run_heartbeats(self, stop: asyncio.Event) -> None:
        schedule = Schedule(self.spec.heartbeat_rate, clock())
        while not stop.is_set():
            now = clock()
            for due in schedule.take_due(now + EARLY_S):
                if not self.open:
                    self.m.skipped.inc()
                    continue
                self._rr = (self._rr + 1) % len(self.open)
                conn = self.open[self._rr]
                hb_id = self.heartbeats.new_id()
                if not conn.send(wp.client_frame("heartbeat", id=hb_id)):
                    self.m.skipped.inc()  # closing; it leaves the pool shortly
                    continue
                self.heartbeats.track(hb_id, conn, min(due, now), due)
                conn.ep.m.sent.inc()
            self.expire(clock())
            await asyncio.sleep(sleep_for(schedule.next_due() - EARLY_S, clock()))

    def expire(self, now: float) -> None:
        """Count the heartbeats whose timeout has passed by `now`."""
        for conn in self.heartbeats.expire(now):
            conn.ep.m.timeouts.inc()
            self.warn.failed(f"heartbeats to {conn.ep.spec.label}", "timeout")

    def frame(self, conn: _Conn, data: bytes) -> None:
        now = clock()
        m = conn.ep.m
        try:
            obj = wp.parse(data)
        except wp.WsProtocolError as exc:
            m.invalid.inc()
            self.warn.failed(f"replies from {conn.ep.spec.label}", f"invalid: {exc}")
            return
        kind = obj["type"]
        if kind == "heartbeat_ack":
            ack = self.heartbeats.ack(str(obj.get("id")), now)
            if ack.kind is AckKind.ANSWERED:
                conn.ep.backoff = 0.0  # the endpoint answers: a later loss starts afresh
                m.heartbeat_latency.observe(ack.latency)
                m.received.inc()
                if self.on_latency is not None:
                    self.on_latency(ack.latency)
            elif ack.kind is AckKind.LATE:
                m.late.inc()
        elif kind == wp.ERROR:
            self.heartbeats.error(str(obj.get("id")))
            m.error_replies.inc()
            self.warn.failed(f"replies from {conn.ep.spec.label}", "error replies")
        elif kind == wp.BROADCAST and conn.last_seq is not None:
            seq = obj.get("seq")
            if isinstance(seq, int):
                m.broadcast_frames.inc()
                missed, conn.last_seq = broadcast_gap(conn.last_seq, seq)
                if missed:
                    m.broadcast_gaps.inc(missed)

    # -- lifecycle ------------------------------------------------------------------------

    def apply(self, spec: WsSpec) -> bool:
        """A changed WebSocket section reopens the pool from scratch (False: replace me)."""
        return spec == self.spec

    async def start(self) -> None:
        """Connections are opened by run(), at the configured connect rate."""

    async def run(self, stop: asyncio.Event) -> None:
        try:
            sup = self.supervisor
            await asyncio.gather(
                sup.run("websocket_connect", lambda: self.run_connector(stop), stop),
                sup.run("websocket_heartbeat", lambda: self.run_heartbeats(stop), stop))
        finally:
            await self.close()

    async def close(self) -> None:
        self._closing = True
        for task in list(self._connects):
            task.cancel()
        await asyncio.gather(*self._connects, return_exceptions=True)
        for conn in list(self.open):
            if conn.transport is not None:
                conn.transport.abort()
        for ep in self.endpoints:
            ep.m.desired.set(0)  # no longer held: nothing to miss
        await asyncio.sleep(0)


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
            client_tls(given["ca_file"], given["cert_file"], given["key_file"])
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


def _shard(ws: WsSpec, index: int, count: int) -> WsSpec:
    """The pool and the heartbeat and connect rates split evenly; one shard subscribes."""
    return dataclasses.replace(
        ws, connections=ws.connections // count + (index - 1 < ws.connections % count),
        heartbeat_rate=ws.heartbeat_rate / count, connect_rate=ws.connect_rate / count,
        subscribe_connections=ws.subscribe_connections if index == 1 else 0)


def _memory(ws: WsSpec) -> Cost:
    per_conn = PER_CONNECTION_DEFLATE if ws.compression else PER_CONNECTION
    return Cost(series=len(ws.endpoints), held=ws.connections * per_conn)


def _build(spec: WsSpec, ctx: Context) -> WebSocketProbe:
    return WebSocketProbe(spec, ctx.group, ctx.supervisor)


KIND = ProbeKind("websocket", build=_build, shard=_shard, sections=("websocket",),
                 parse=one_section("websocket", _websocket), metrics=build_metrics,
                 memory=_memory, loops=("websocket_connect", "websocket_heartbeat"),
                 no_panels="a dashboard of its own (Nautilus: WebSocket): its series are "
                           "per endpoint, not per engine")
