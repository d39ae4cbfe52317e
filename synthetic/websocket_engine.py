"""A synthetic WebSocket engine serving the engine-status protocol, with knobs.

Several instances (the migration plan uses three, ports 8080-8082) run from one process:
`nautilus-probe ws-engine --port 8080 --port 8081 --port 8082`.
"""

from __future__ import annotations

import asyncio
import http
import logging
import random
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from nautilus_wire import ws_protocol as wp

from nautilus_wire.self_report import rss_bytes
from .timing import CalibratedSleep

log = logging.getLogger(__name__)

HEALTH_PATH = "/health"  # GET: 200 "ok", or 503 while the `refuse` knob is set


@dataclass
class WsKnobs:
    reply_delay: float = 0.0  # seconds before each reply
    error_ratio: float = 0.0  # replies replaced by an error frame
    drop_ratio: float = 0.0  # share of open connections aborted ...
    drop_interval: float = 1.0  # ... every this many seconds
    refuse: bool = False  # new handshakes get HTTP 503
    tokens: frozenset[str] = frozenset()  # when set, ?token= must be one of them
    broadcast_rate: float = 10.0  # broadcast frames per second per topic
    broadcast_skip_ratio: float = 0.0  # sequence numbers skipped (known gaps)


@dataclass
class WsStats:
    connections: int = 0  # open now
    accepted: int = 0
    refused: int = 0
    unauthorized: int = 0
    dropped: int = 0
    replies: int = 0
    errors: int = 0
    broadcasts: int = 0
    skipped_seqs: dict[str, int] = field(default_factory=dict)


class WebSocketEngine:
    def __init__(self, knobs: WsKnobs | None = None, *, seed: int | None = None) -> None:
        self.knobs = knobs or WsKnobs()
        self.stats = WsStats()
        self.started = time.monotonic()
        self._rng = random.Random(seed)
        self._sleep = CalibratedSleep()
        self._subscribers: dict[str, set[ServerConnection]] = {}
        self._seq: dict[str, int] = {}

    # -- handshake -------------------------------------------------------------------

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        if urlsplit(request.path).path == HEALTH_PATH:  # a plain GET, as a REST health check
            if self.knobs.refuse:
                return conn.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "refusing connections\n")
            return conn.respond(http.HTTPStatus.OK, "ok\n")
        if urlsplit(request.path).path != wp.PATH:
            return Response(http.HTTPStatus.NOT_FOUND, "Not Found", Headers(), b"not found\n")
        if self.knobs.refuse:
            self.stats.refused += 1
            return Response(http.HTTPStatus.SERVICE_UNAVAILABLE, "Service Unavailable",
                            Headers(), b"refusing connections\n")
        return None

    def _authorized(self, conn: ServerConnection) -> bool:
        if not self.knobs.tokens:
            return True
        path = conn.request.path if conn.request is not None else ""
        token = parse_qs(urlsplit(path).query).get("token", [""])[0]
        return token in self.knobs.tokens

    # -- one connection ------------------------------------------------------------

    async def _handle(self, conn: ServerConnection) -> None:
        if not self._authorized(conn):
            self.stats.unauthorized += 1
            await conn.close(wp.UNAUTHORIZED, "unauthorized")
            return
        self.stats.accepted += 1
        self.stats.connections += 1
        topics: set[str] = set()
        try:
            uptime = time.monotonic() - self.started
            await conn.send(wp.encode({"type": wp.STATUS, "data": {
                "state": "running", "uptime": uptime,
                "memory_usage": rss_bytes() / 2**20,  # MiB, as the self-reports
                "cpu_usage": 100.0 * time.process_time() / max(uptime, 1e-9),  # % of a core
            }, "timestamp": wp.now_iso()}))
            async for message in conn:
                await self._answer(conn, message, topics)
        except ConnectionClosed:
            pass
        finally:
            self.stats.connections -= 1
            for topic in topics:
                self._subscribers.get(topic, set()).discard(conn)

    async def _answer(self, conn: ServerConnection, message: str | bytes,
                      topics: set[str]) -> None:
        try:
            frame = wp.parse(message)
        except wp.WsProtocolError as exc:
            await conn.send(wp.encode(wp.error(str(exc))))
            return
        kind = frame["type"]
        if kind not in wp.REPLIES:
            await conn.send(wp.encode(wp.error(f"unknown type {kind[:40]!r}", frame.get("id"))))
            return
        if self.knobs.reply_delay > 0:
            await self._sleep(self.knobs.reply_delay)
        if self._rng.random() < self.knobs.error_ratio:
            self.stats.errors += 1
            await conn.send(wp.encode(wp.error("synthetic error", frame.get("id"))))
            return
        topic = frame.get("topic")
        extra: dict[str, object] = {}
        if kind == "subscribe" and isinstance(topic, str):
            topics.add(topic)
            self._subscribers.setdefault(topic, set()).add(conn)
        elif kind == "unsubscribe" and isinstance(topic, str):
            topics.discard(topic)
            self._subscribers.get(topic, set()).discard(conn)
        elif kind == "get_stats":
            extra["data"] = {"connections": self.stats.connections, "topics": sorted(topics)}
        self.stats.replies += 1
        await conn.send(wp.encode(wp.reply_to(frame, **extra)))

    # -- background behaviour --------------------------------------------------------

    async def _broadcast_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(1.0 / self.knobs.broadcast_rate)
            for topic, conns in list(self._subscribers.items()):
                seq = self._seq.get(topic, 0) + 1
                if self._rng.random() < self.knobs.broadcast_skip_ratio:
                    seq += 1  # one sequence number never sent: a known gap
                    self.stats.skipped_seqs[topic] = self.stats.skipped_seqs.get(topic, 0) + 1
                self._seq[topic] = seq
                if conns:
                    self.stats.broadcasts += 1
                    broadcast(conns, wp.encode({"type": wp.BROADCAST, "topic": topic, "seq": seq,
                                                "data": {}, "timestamp": wp.now_iso()}))

    async def _drop_loop(self, stop: asyncio.Event, server: object) -> None:
        while not stop.is_set():
            await asyncio.sleep(self.knobs.drop_interval)
            if self.knobs.drop_ratio <= 0:
                continue
            for conn in list(server.connections):  # type: ignore[attr-defined]  # websockets >= 13
                if self._rng.random() < self.knobs.drop_ratio:
                    self.stats.dropped += 1
                    conn.transport.abort()  # an abrupt drop, not a polite close

    async def run(self, stop: asyncio.Event, port: int, host: str = "127.0.0.1",
                  ssl_context: ssl.SSLContext | None = None,
                  ready: asyncio.Future[int] | None = None) -> None:
        """Serve on host:port (0: a free port, reported through `ready`) until stop."""
        async with serve(self._handle, host, port, compression=None,
                         process_request=self._process_request, ssl=ssl_context,
                         ping_interval=None, max_queue=64) as server:
            if ready is not None:
                ready.set_result(server.sockets[0].getsockname()[1])
            tasks = [asyncio.create_task(self._broadcast_loop(stop)),
                     asyncio.create_task(self._drop_loop(stop, server))]
            await stop.wait()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
