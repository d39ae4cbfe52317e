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
import heapq
import logging
import random
import ssl
from dataclasses import dataclass
from collections.abc import Callable

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidStatus, PayloadTooBig, ProtocolError
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from nautilus_wire import ws_protocol as wp

from ..config import WsEndpoint, WsSpec
from ..metrics import EndpointSeries, Metrics
from ..schedule import EARLY_S, Schedule, clock, sleep_for
from ..supervise import Supervisor

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

    def __init__(self, prober: WebSocketProbe, ep: Endpoint) -> None:
        self.prober, self.ep = prober, ep
        extensions = [ClientPerMessageDeflateFactory()] if prober.spec.compression else None
        self.proto = ClientProtocol(parse_uri(ep.spec.url), extensions=extensions,
                                    max_size=MAX_FRAME)
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
                self.transport.write_eof()
        if self.proto.close_expected() and not self.transport.is_closing():
            # The server closes the TCP connection after the closing handshake.
            asyncio.get_running_loop().call_later(1.0, self.transport.abort)


def _ssl_context(ep: WsEndpoint) -> ssl.SSLContext | None:
    if not ep.url.startswith("wss://"):
        return None
    context = ssl.create_default_context(cafile=ep.ca_file)
    if ep.cert_file:
        context.load_cert_chain(ep.cert_file, ep.key_file)
    return context


class WebSocketProbe:
    kind = "websocket"

    def __init__(self, spec: WsSpec, metrics: Metrics,
                 supervisor: Supervisor | None = None) -> None:
        self.spec = spec
        self.m = metrics
        self.supervisor = supervisor or Supervisor(metrics)
        n = len(spec.endpoints)
        self.endpoints = [Endpoint(e, spec.connections // n + (i < spec.connections % n),
                                   _ssl_context(e), metrics.init_endpoint(e.label))
                          for i, e in enumerate(spec.endpoints)]
        for ep in self.endpoints:
            ep.m.desired.set(ep.target)
        self.open: list[_Conn] = []
        self.pending: dict[str, tuple[_Conn, float]] = {}
        self._deadlines: list[tuple[float, str]] = []
        self._next_id = 0
        self._rr = 0
        self._closing = False
        self._connects: set[asyncio.Task[None]] = set()
        self._late_ids: set[str] = set()  # timed out, in case their ack still comes
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
        reason: str | None = None
        try:
            # Inside the try: whatever the URL or the connection does is counted.
            uri = parse_uri(ep.spec.url)
            async with asyncio.timeout(self.spec.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: _Conn(self, ep), uri.host, uri.port, ssl=ep.ssl,
                    server_hostname=uri.host if ep.ssl else None)
                assert conn.handshake is not None
                await conn.handshake
        except TimeoutError:
            reason = "timeout"
        except ConnectionRefusedError:
            reason = "refused"
        except ssl.SSLError:
            reason = "tls"
        except InvalidStatus:
            reason = "handshake"
        except Exception as exc:
            log.debug("connecting to %s failed: %r", ep.spec.label, exc)
            reason = "handshake" if conn is not None and conn.proto.handshake_exc else "error"
        finally:
            ep.connecting -= 1
        if conn is not None:
            conn.handshake = None
        if reason is not None:
            self.m.ws_connect_failures.labels(ep.spec.label, reason).inc()
            ep.back_off(clock())
            if conn is not None and conn.transport is not None:
                conn.transport.abort()
            return
        assert conn is not None
        if self._closing or conn.transport is None or conn.transport.is_closing():
            return
        conn.opened_at = clock()
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
        # Bad framing, or a frame over MAX_FRAME (an EOF is not one of them).
        bad_frames = isinstance(conn.proto.parser_exc, (ProtocolError, PayloadTooBig))
        if close is not None and close.code == wp.UNAUTHORIZED:
            reason = "unauthorized"
        elif close is not None:
            reason = "closed"
        elif bad_frames:
            reason = "protocol_error"
        else:  # reset, or EOF without a close frame (1006)
            reason = "dropped"
        if close is not None and bad_frames:
            reason = "protocol_error"  # we closed it (1002/1009) after a bad frame
        self.m.ws_disconnects.labels(ep.spec.label, reason).inc()
        now = clock()
        if reason in ("unauthorized", "protocol_error") or now - conn.opened_at < QUICK_LOSS_S:
            ep.back_off(now)

    # -- heartbeats ---------------------------------------------------------------------

    async def run_heartbeats(self, stop: asyncio.Event) -> None:
        schedule = Schedule(self.spec.heartbeat_rate, clock())
        timeout = self.spec.heartbeat_timeout
        while not stop.is_set():
            now = clock()
            for due in schedule.take_due(now + EARLY_S):
                if not self.open:
                    self.m.ws_skipped.inc()
                    continue
                self._rr = (self._rr + 1) % len(self.open)
                conn = self.open[self._rr]
                self._next_id += 1
                hb_id = f"{self._next_id:x}"
                if not conn.send(wp.client_frame("heartbeat", id=hb_id)):
                    self.m.ws_skipped.inc()  # closing; it leaves the pool shortly
                    continue
                self.pending[hb_id] = (conn, min(due, now))
                heapq.heappush(self._deadlines, (due + timeout, hb_id))
                conn.ep.m.sent.inc()
            self._expire(clock())
            await asyncio.sleep(sleep_for(schedule.next_due() - EARLY_S, clock()))

    def _expire(self, now: float) -> None:
        while self._deadlines and self._deadlines[0][0] <= now:
            _, hb_id = heapq.heappop(self._deadlines)
            entry = self.pending.pop(hb_id, None)
            if entry is not None:
                entry[0].ep.m.timeouts.inc()
                self._late_ids.add(hb_id)
        if len(self._late_ids) > 100_000:  # bounded memory; a few late ones go uncounted
            self._late_ids.clear()

    def frame(self, conn: _Conn, data: bytes) -> None:
        now = clock()
        m = conn.ep.m
        try:
            obj = wp.parse(data)
        except wp.WsProtocolError:
            m.invalid.inc()
            return
        kind = obj["type"]
        if kind == "heartbeat_ack":
            entry = self.pending.pop(str(obj.get("id")), None)
            if entry is not None:
                conn.ep.backoff = 0.0  # the endpoint answers: a later loss starts afresh
                m.heartbeat_latency.observe(now - entry[1])
                m.received.inc()
                if self.on_latency is not None:
                    self.on_latency(now - entry[1])
            elif str(obj.get("id")) in self._late_ids:
                self._late_ids.discard(str(obj.get("id")))
                m.late.inc()
        elif kind == wp.ERROR:
            self.pending.pop(str(obj.get("id")), None)
            m.error_replies.inc()
        elif kind == wp.BROADCAST and conn.last_seq is not None:
            seq = obj.get("seq")
            if isinstance(seq, int):
                m.broadcast_frames.inc()
                if conn.last_seq and seq > conn.last_seq + 1:
                    m.broadcast_gaps.inc(seq - conn.last_seq - 1)
                conn.last_seq = max(conn.last_seq, seq)

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
