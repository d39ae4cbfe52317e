"""The prober's two hot Redis commands without redis-py's per-command machinery.

Pipelined XADD of the due requests and blocking XREAD of the replies are all a
prober does thousands of times a second; redis-py wraps each in a connection-pool
checkout, an asyncio timeout and `wait_for`, and response callbacks. Here each
direction has one plain `asyncio.Protocol` connection whose bytes hiredis parses:
a batch of XADDs is one write and one wake-up, an XREAD one write and one wake-up.

It is used only where it applies: a plain TCP Redis (`redis://`, ACL user and
password included) with hiredis installed. Anything else — TLS, a Unix socket,
Redis Cluster, no hiredis — keeps redis-py (requester.make_transport). Errors are
redis-py's own exception types, so callers count them as before.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis._parsers.base import BaseParser
from redis.exceptions import TimeoutError as RedisTimeoutError

from . import protocol
from .redis_client import _Connection, ENCODING_ERRORS, hiredis
from .replies import decode, Malformed, RECEIVE_BATCH, RECEIVE_BLOCK_S, request_stream_maxlen
from .protocol import Reply, Request

CONNECT_TIMEOUT_S = 1.0
# A command's answer later than this means the connection is dead (redis-py's
# socket_timeout in redis_client.connect, plus the XREAD's own block).
ANSWER_TIMEOUT_S = 2.0
# How often a connection checks its oldest unanswered command against its deadline:
# one timer per connection instead of one timeout per command (which cost more than
# the command).
WATCH_S = 0.25


def _error(answer: Any) -> Exception:
    """An error reply as redis-py raises it: OOM is OutOfMemoryError, WRONGPASS an
    AuthenticationError, so logs and callers name the cause alike on both paths."""
    return BaseParser.parse_error(str(answer))  # type: ignore[no-untyped-call,no-any-return]  # redis-py untyped


class _Wire(asyncio.Protocol):
    """One connection: commands written in order, their answers parsed by hiredis
    and handed to the waiting caller in the same order."""

    def __init__(self) -> None:
        self._reader = hiredis.Reader(encoding="utf-8", errors=ENCODING_ERRORS)
        self._transport: asyncio.Transport | None = None
        # (answers expected, answers so far, the caller's future, its deadline)
        self._waiting: deque[tuple[int, list[Any], asyncio.Future[list[Any]], float]] = deque()
        self._watch: asyncio.TimerHandle | None = None
        self.lost: BaseException | None = None
        # Kept: asyncio.get_running_loop() makes a getpid() system call on every call.
        self._loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # a TCP connection's
        self._watch = self._loop.call_later(WATCH_S, self._check)

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (answer := self._reader.gets()) is not False:
            if not self._waiting:
                self.close(RedisConnectionError("an answer nobody asked for"))
                return
            n, answers, future, _ = self._waiting[0]
            answers.append(answer)
            if len(answers) == n:
                self._waiting.popleft()
                if not future.done():
                    future.set_result(answers)

    def _check(self) -> None:
        """Answers come in order: when the oldest is overdue, Redis is not answering."""
        if self._waiting and self._waiting[0][3] < time.monotonic():
            why = RedisTimeoutError("Redis did not answer in time")
            self._fail(why)
            self.close(why)
        elif self.lost is None:
            self._watch = self._loop.call_later(WATCH_S, self._check)

    def _fail(self, why: BaseException) -> None:
        self.lost = self.lost or why
        while self._waiting:
            future = self._waiting.popleft()[2]
            if not future.done():
                future.set_exception(self.lost)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._watch is not None:
            self._watch.cancel()
        self._fail(RedisConnectionError(f"connection to Redis lost ({exc or 'closed by peer'})"))

    def close(self, why: BaseException) -> None:
        self.lost = self.lost or why
        if self._transport is not None:
            self._transport.close()

    async def call(self, packed: bytes, answers: int, timeout: float) -> list[Any]:
        """Write `packed` (`answers` commands) and wait for their answers, at most
        `timeout` (+ WATCH_S). A caller that gives up (cancellation) leaves answers
        in flight: the connection is closed rather than read out of step."""
        if self.lost is not None or self._transport is None:
            raise self.lost or RedisConnectionError("not connected")
        future: asyncio.Future[list[Any]] = self._loop.create_future()
        self._waiting.append((answers, [], future, time.monotonic() + timeout))
        self._transport.write(packed)
        try:
            return await future
        except asyncio.CancelledError:
            self.close(RedisConnectionError("a caller stopped waiting"))
            raise


def settings(client: aioredis.Redis) -> dict[str, Any] | None:
    """Where and how to connect, when the thin path applies to this client."""
    if hiredis is None or not isinstance(client, aioredis.Redis):
        return None
    pool = client.connection_pool
    kw = pool.connection_kwargs
    if pool.connection_class is not _Connection or kw.get("credential_provider"):
        return None  # TLS, a Unix socket, or credentials we would have to ask for
    return {"host": kw.get("host", "localhost"), "port": int(kw.get("port", 6379)),
            "db": int(kw.get("db", 0) or 0), "username": kw.get("username"),
            "password": kw.get("password")}


class ThinStreamsTransport:
    """The streams transport (requester.StreamsTransport) on two thin connections:
    one for XADD batches, one for the blocking XREAD."""

    def __init__(self, settings: dict[str, Any], prefix: str, prober: str, last_id: str) -> None:
        self._settings = settings
        self._prefix = prefix
        self.reply_key = protocol.reply_key(prefix, prober)
        self._last_id = last_id
        self._send: _Wire | None = None
        self._receive: _Wire | None = None
        self._streams: dict[tuple[str, str], bytes] = {}  # (engine, priority) -> stream key
        self._lock = asyncio.Lock()  # one dial at a time

    async def start(self) -> None:
        pass

    async def _dial(self) -> _Wire:
        s = self._settings
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                _, wire = await loop.create_connection(_Wire, s["host"], s["port"])
        except (OSError, TimeoutError) as exc:
            raise RedisConnectionError(f"cannot connect to Redis at {s['host']}:{s['port']}: "
                                       f"{exc or 'timed out'}") from None
        hello = []
        if s["password"] is not None:
            auth = ("AUTH", s["username"], s["password"]) if s["username"] else ("AUTH", s["password"])
            hello.append(hiredis.pack_command(auth))
        if s["db"]:
            hello.append(hiredis.pack_command(("SELECT", str(s["db"]))))
        if hello:
            for answer in await wire.call(b"".join(hello), len(hello), ANSWER_TIMEOUT_S):
                if isinstance(answer, hiredis.ReplyError):
                    wire.close(RedisConnectionError("refused"))
                    # WRONGPASS / NOAUTH: AuthenticationError, as redis-py raises it
                    raise _error(answer)
        return wire

    async def _wire(self, which: str) -> _Wire:
        wire: _Wire | None = getattr(self, which)
        if wire is None or wire.lost is not None:
            async with self._lock:
                wire = getattr(self, which)
                if wire is None or wire.lost is not None:
                    wire = await self._dial()
                    setattr(self, which, wire)
        assert wire is not None
        return wire

    def _stream(self, req: Request) -> bytes:
        key = (req.engine, req.prio)
        if (stream := self._streams.get(key)) is None:
            stream = self._streams[key] = protocol.request_stream(
                self._prefix, req.engine, req.prio).encode()
        return stream

    async def send(self, requests: list[Request]) -> None:
        if not requests:
            return  # no answer would come to wait for
        pack, flat = hiredis.pack_command, itertools.chain.from_iterable
        packed = b"".join(
            pack(("XADD", self._stream(req), "MAXLEN", "~",
                  request_stream_maxlen(len(req.payload)), "*", *flat(req.fields().items())))
            for req in requests)
        wire = await self._wire("_send")
        for answer in await wire.call(packed, len(requests), ANSWER_TIMEOUT_S):
            if isinstance(answer, hiredis.ReplyError):
                raise _error(answer)

    async def receive(self) -> list[Reply | Malformed]:
        wire = await self._wire("_receive")
        command = hiredis.pack_command(("XREAD", "COUNT", RECEIVE_BATCH, "BLOCK",
                                        int(RECEIVE_BLOCK_S * 1000), "STREAMS",
                                        self.reply_key, self._last_id))
        [answer] = await wire.call(command, 1, ANSWER_TIMEOUT_S + RECEIVE_BLOCK_S)
        if isinstance(answer, hiredis.ReplyError):
            raise _error(answer)
        out: list[Reply | Malformed] = []
        for _stream, entries in answer or ():
            for entry_id, flat in entries:
                self._last_id = entry_id
                if len(flat) % 2:  # Redis never sends this; a proxy in between might
                    out.append(Malformed("an odd number of fields", None))
                    continue
                out.append(decode(dict(zip(flat[::2], flat[1::2], strict=True)), entry_id))
        return out

    async def close(self) -> None:
        for wire in (self._send, self._receive):
            if wire is not None:
                wire.close(RedisConnectionError("closed"))
