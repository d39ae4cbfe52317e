"""Responder library: answer protocol-v1 probes from inside an engine.

A real engine embeds it in a few lines::

    async def handle(req: Request) -> Verdict | None:
        ...            # do the operation named by req.op; raise to reply "error"
        return None    # reply "ok"

    await Responder(redis_client, "risk", handle).run(stop_event)

The synthetic engines use the same class, so tests exercise the real thing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from . import protocol
from .failure_log import FailureLog
from .protocol import ProtocolError, Reply, Request
from .redis_client import BUS_ERRORS, reset_after

log = logging.getLogger(__name__)

READ_BLOCK_MS = 100
READ_BATCH = 512
REPLY_STREAM_MAXLEN = 10_000
# A reply held back for reordering goes out anyway after this long.
HOLD_MAX_S = 1.0
# Requests left pending by a consumer that died are taken over after this long
# (XAUTOCLAIM); consumers idle this long are removed from the group.
CLAIM_IDLE_MS = 30_000
CONSUMER_IDLE_MS = 3_600_000
HOUSEKEEPING_S = 10.0
# Pause between reads while Redis is unreachable.
RETRY_S = 0.2
# After an unexpected failure the read loop starts again, backing off to this.
MAX_BACKOFF_S = 10.0


@dataclass(slots=True)
class Verdict:
    """A handler's decision about one request; returning None means "ok, one reply"."""

    error: str = ""
    copies: int = 1  # 0: no reply at all; 2 or more: duplicate replies
    reorder: bool = False  # send after the next reply to the same prober and op
    service_us: int | None = None  # default: measured around the handler


Handler = Callable[[Request], Awaitable["Verdict | None"]]


@dataclass
class ResponderStats:
    """What the responder did; synthetic-engine tests compare it with the prober's counts."""

    received: int = 0
    replies: int = 0  # distinct requests answered (first copy)
    errors: int = 0  # answered with status "error"
    dropped: int = 0  # handler chose no reply
    expired: int = 0  # past deadline_ms on arrival: dropped unanswered
    malformed: int = 0  # not protocol data, or a reply_to not of the protocol's shape
    loop_restarts: int = 0  # the read loop failed unexpectedly and started again
    claimed: int = 0  # pending requests taken over from a dead consumer
    duplicates: int = 0  # extra copies sent
    reordered: int = 0  # replies sent after a later one on the same stream
    write_failures: int = 0
    service_us_total: int = 0
    by_op: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class _Outgoing:
    reply: Reply | None  # None: nothing to send, only the acknowledgement
    reply_to: str
    verdict: Verdict
    ack: tuple[str, str] | None  # (stream, entry id) to XACK


class Responder:
    def __init__(self, client: aioredis.Redis, engine: str, handler: Handler, *,
                 transport: str = "streams", prefix: str = protocol.DEFAULT_PREFIX,
                 consumer: str | None = None, concurrency: int = 256,
                 reply_maxlen: int = REPLY_STREAM_MAXLEN) -> None:
        if transport not in protocol.TRANSPORTS:
            raise ValueError(f"unknown transport {transport!r}")
        self.engine = engine
        self.stats = ResponderStats()
        self._redis = client
        self._handler = handler
        self._transport = transport
        self._prefix = prefix
        self._consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self._slots = asyncio.Semaphore(concurrency)
        self._reply_maxlen = reply_maxlen
        self._out: list[_Outgoing] = []
        self._out_ready = asyncio.Event()
        self._held: dict[tuple[str, str], tuple[float, _Outgoing]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._streams = [protocol.request_stream(prefix, engine, p) for p in protocol.PRIORITIES]
        self.warn = FailureLog(log, engine)

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set, then finish what is in hand and return. Nothing
        but `stop` ends it: an unexpected failure is counted and reading starts again."""
        writer = asyncio.create_task(self._write_loop(stop))
        backoff = 0.1
        try:
            while not stop.is_set():
                try:
                    if self._transport == "streams":
                        await self._read_streams(stop)
                    else:
                        await self._read_pubsub(stop)
                except Exception as exc:  # noqa: BLE001 - an engine must keep answering
                    self.stats.loop_restarts += 1
                    log.error("%s: request loop failed; restarting in %.1fs", self.engine,
                              backoff, exc_info=exc if self.stats.loop_restarts == 1 else None)
                    try:
                        await asyncio.wait_for(stop.wait(), backoff)
                    except asyncio.TimeoutError:
                        pass
                    backoff = min(backoff * 2, MAX_BACKOFF_S)
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=5)
        finally:
            self._out_ready.set()
            await writer

    # -- reading ---------------------------------------------------------------

    async def _ensure_groups(self) -> None:
        for stream in self._streams:
            try:
                # From "0": requests queued before we started are served (or
                # dropped by their deadline), not silently skipped.
                await self._redis.xgroup_create(stream, protocol.RESPONDER_GROUP, id="0",
                                                mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def _read_streams(self, stop: asyncio.Event) -> None:
        need_groups = True
        streams = {s: ">" for s in self._streams}
        rank = {s: i for i, s in enumerate(self._streams)}
        housekeeping_at = 0.0
        while not stop.is_set():
            try:
                if need_groups:
                    await self._ensure_groups()
                    need_groups = False
                if time.monotonic() >= housekeeping_at:
                    housekeeping_at = time.monotonic() + HOUSEKEEPING_S
                    await self._housekeeping(rank)
                resp = await self._redis.xreadgroup(protocol.RESPONDER_GROUP, self._consumer,
                                                    streams, count=READ_BATCH,
                                                    block=READ_BLOCK_MS)
            except BUS_ERRORS as exc:
                # Redis restarted or unreachable: groups may be gone; retry.
                self.warn.failed("reading requests", repr(exc))
                await reset_after(self._redis, exc)
                need_groups = True
                await asyncio.sleep(RETRY_S)
                continue
            self.warn.recovered("reading requests")
            await self._handle_entries(resp or (), rank)

    async def _handle_entries(self, resp: Any, rank: dict[str, int]) -> None:
        # Higher priorities first within what was read.
        for stream, entries in sorted(resp, key=lambda r: rank.get(r[0], 99)):
            for entry_id, fields in entries:
                if fields is None:  # deleted (trimmed) while pending: nothing to answer
                    self._ack_only((stream, entry_id))
                    continue
                try:
                    req = self._decode(fields)
                except ProtocolError as exc:
                    self._malformed(f"{stream} {entry_id}: {exc}")
                    self._ack_only((stream, entry_id))
                    continue
                await self._dispatch(req, (stream, entry_id))

    def _decode(self, fields: Any) -> Request:
        req = Request.from_fields(fields)
        # Replies go only to keys of the protocol's shape: a request cannot make an
        # engine write anywhere else in Redis.
        if req.reply_to != protocol.reply_key(self._prefix, req.prober):
            raise ProtocolError(f"reply_to {req.reply_to[:60]!r} is not the prober's reply key")
        return req

    def _malformed(self, what: str) -> None:
        self.stats.malformed += 1
        self.warn.failed("malformed requests", what)

    async def _housekeeping(self, rank: dict[str, int]) -> None:
        """Take over requests a dead consumer left pending; forget long-idle consumers."""
        for stream in self._streams:
            try:
                claimed = await self._redis.xautoclaim(
                    stream, protocol.RESPONDER_GROUP, self._consumer, CLAIM_IDLE_MS,
                    start_id="0-0", count=READ_BATCH)
            except ResponseError:
                continue  # no group yet
            entries = claimed[1] if claimed else []
            if entries:
                self.stats.claimed += len(entries)
                await self._handle_entries([(stream, entries)], rank)
            for consumer in await self._redis.xinfo_consumers(stream, protocol.RESPONDER_GROUP):
                if consumer.get("name") != self._consumer and consumer.get("pending") == 0 \
                        and consumer.get("idle", 0) > CONSUMER_IDLE_MS:
                    await self._redis.xgroup_delconsumer(stream, protocol.RESPONDER_GROUP,
                                                         consumer["name"])

    async def _read_pubsub(self, stop: asyncio.Event) -> None:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        channel = protocol.request_channel(self._prefix, self.engine)
        try:
            while not stop.is_set():
                try:
                    if not pubsub.subscribed:
                        await pubsub.subscribe(channel)
                    msg = await pubsub.get_message(timeout=READ_BLOCK_MS / 1000)
                except BUS_ERRORS as exc:
                    self.warn.failed("reading requests", repr(exc))
                    await asyncio.sleep(RETRY_S)
                    continue
                if msg is None or msg.get("type") != "message":
                    continue
                try:
                    req = self._decode(protocol.json_object(msg["data"]))
                except ProtocolError as exc:
                    self._malformed(f"{channel}: {exc}")
                    continue
                await self._dispatch(req, None)
        finally:
            await pubsub.aclose()

    async def _dispatch(self, req: Request, ack: tuple[str, str] | None) -> None:
        self.stats.received += 1
        if req.deadline_ms < time.time() * 1000:
            self.stats.expired += 1
            self._ack_only(ack)
            return
        await self._slots.acquire()
        task = asyncio.create_task(self._serve(req, ack))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, req: Request, ack: tuple[str, str] | None) -> None:
        started = time.perf_counter()
        try:
            verdict = await self._handler(req) or Verdict()
        except Exception as exc:  # the engine's failure becomes an "error" reply
            verdict = Verdict(error=str(exc) or type(exc).__name__)
        finally:
            self._slots.release()
        service_us = verdict.service_us
        if service_us is None:
            service_us = int((time.perf_counter() - started) * 1e6)
        reply = Reply.answering(req, error=verdict.error, service_us=service_us)
        self.stats.service_us_total += service_us
        self.stats.by_op[req.op] = self.stats.by_op.get(req.op, 0) + 1
        self._queue(_Outgoing(reply, req.reply_to, verdict, ack))

    # -- writing ---------------------------------------------------------------

    def _queue(self, out: _Outgoing) -> None:
        self._out.append(out)
        self._out_ready.set()

    def _ack_only(self, ack: tuple[str, str] | None) -> None:
        """An expired or malformed request: acknowledged, never answered."""
        if ack is not None:
            self._queue(_Outgoing(None, "", Verdict(copies=0), ack))

    async def _write_loop(self, stop: asyncio.Event) -> None:
        while True:
            try:
                await asyncio.wait_for(self._out_ready.wait(), HOLD_MAX_S)
            except asyncio.TimeoutError:
                pass
            self._out_ready.clear()
            batch, self._out = self._out, []
            batch.extend(self._release_stale_holds(force=stop.is_set()))
            if batch:
                await self._write(batch)
            if stop.is_set() and not self._out and not self._tasks and not self._held:
                return

    def _release_stale_holds(self, force: bool) -> list[_Outgoing]:
        now = time.monotonic()
        stale = [k for k, (t, _) in self._held.items() if force or now - t > HOLD_MAX_S]
        return [self._held.pop(k)[1] for k in stale]

    def _expand(self, batch: list[_Outgoing]) -> list[tuple[str, Reply]]:
        """Turn decisions into the replies to send, in order (duplicates, reordering)."""
        sends: list[tuple[str, Reply]] = []
        for out in batch:
            if out.reply is None:
                continue
            v = out.verdict
            if v.copies <= 0:
                self.stats.dropped += 1
                continue
            key = (out.reply_to, out.reply.op)
            if v.reorder and key not in self._held:
                self._held[key] = (time.monotonic(), _Outgoing(out.reply, out.reply_to,
                                                               Verdict(copies=v.copies), None))
                continue
            self._count_reply(out)
            sends.extend((out.reply_to, out.reply) for _ in range(v.copies))
            held = self._held.pop(key, None) if not v.reorder else None
            if held is not None:
                self.stats.reordered += 1
                self._count_reply(held[1])
                sends.extend((held[1].reply_to, held[1].reply) for _ in range(held[1].verdict.copies))
        return sends

    def _count_reply(self, out: _Outgoing) -> None:
        assert out.reply is not None
        self.stats.replies += 1
        self.stats.duplicates += out.verdict.copies - 1
        if out.reply.status == protocol.STATUS_ERROR:
            self.stats.errors += 1

    async def _write(self, batch: list[_Outgoing]) -> None:
        sends = self._expand(batch)
        pipe = self._redis.pipeline(transaction=False)
        for reply_to, reply in sends:
            if self._transport == "streams":
                pipe.xadd(reply_to, reply.fields(), maxlen=self._reply_maxlen, approximate=True)
            else:
                pipe.publish(reply_to, reply.to_json())
        acks: dict[str, list[str]] = {}
        for out in batch:
            if out.ack is not None:
                acks.setdefault(out.ack[0], []).append(out.ack[1])
        for stream, ids in acks.items():
            pipe.xack(stream, protocol.RESPONDER_GROUP, *ids)
        if not sends and not acks:
            return
        try:
            await pipe.execute()
            self.warn.recovered("writing replies")
        except BUS_ERRORS as exc:
            self.stats.write_failures += len(sends)
            self.warn.failed("writing replies", repr(exc), len(sends))
            await reset_after(self._redis, exc)
