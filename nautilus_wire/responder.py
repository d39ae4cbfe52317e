"""The responder: answers protocol-v1 probes from inside an engine.

An engine gives one handler per operation and runs the responder beside its own
work (docs/engines.md has every integration pattern)::

    from nautilus_wire import Responder, connect

    async def limit_check(req):        # a dry run of the real operation: no side effects
        await risk.check_limits(req.payload, dry_run=True)   # raise -> reply "error"

    async with Responder(connect(url), "risk", {"limit_check": limit_check}):
        await stop.wait()              # your service; the responder answers in the background

The synthetic engines use the same class, so the project's tests exercise it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any, cast
from collections.abc import Mapping

import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError, ResponseError

from . import protocol
from . import self_report as reporting
from .failure_log import ErrorLog, FailureLog
from .handlers import MAX_ERROR_CHARS, SUMMARY_INTERVAL_S, Handler, HandlerTable
from .protocol import ProtocolError, Reply, Request
from .redact import redact
from .redis_client import BUS_ERRORS, describe, reset_after

log = logging.getLogger(__name__)

READ_BLOCK_MS = 100
READ_BATCH = 512
REPLY_STREAM_MAXLEN = 10_000
# Requests a consumer has held this long without acknowledging are taken over by
# another (XAUTOCLAIM): its process died mid-handler. Probe handlers must be faster:
# a live handler slower than this may be served twice (the prober counts the
# second reply as a duplicate). A request past its deadline is acknowledged, not served.
CLAIM_IDLE_MS = 5_000
# Consumers idle this long with nothing pending are removed from the group.
CONSUMER_IDLE_MS = 3_600_000
HOUSEKEEPING_S = 2.0
# Pause between reads while Redis is unreachable.
RETRY_S = 0.2
# After an unexpected failure the read loop starts again, backing off to this.
MAX_BACKOFF_S = 10.0
# On stop, handlers still running after this long are abandoned (their requests
# stay pending and are taken over by another consumer, or by this one's restart).
STOP_GRACE_S = 5.0
# The consumer name when none is given: this variable, else the host name.
CONSUMER_ENV = "NAUTILUS_WIRE_CONSUMER"
MAX_CONSUMER_CHARS = 128
# A second writer of metrics:<engine> is warned about at once, then at most this often.
OVERWRITE_WARN_S = 600.0


def consumer_name(given: str | None = None) -> str:
    """The consumer name: `given`, else $NAUTILUS_WIRE_CONSUMER, else the host name.
    Stable across restarts, so a restarted engine takes back its own pending requests."""
    name = given or os.environ.get(CONSUMER_ENV) or socket.gethostname()
    if not name or len(name) > MAX_CONSUMER_CHARS or not name.isprintable() or " " in name:
        raise ValueError(f"consumer name {name[:40]!r}: 1-{MAX_CONSUMER_CHARS} printable "
                         "characters without spaces")
    return name


@dataclass
class ResponderStats:
    """What the responder did, cumulative since it was made (read it any time)."""

    received: int = 0  # protocol requests read
    replies: int = 0  # requests answered (first copy)
    errors: int = 0  # answered with status "error" (handler raised or unknown op)
    unknown_ops: int = 0  # of those: an operation with no handler
    dropped: int = 0  # handler chose no reply (Verdict(copies=0))
    expired: int = 0  # past deadline_ms on arrival: acknowledged, not answered
    malformed: int = 0  # not protocol data, or a reply_to not of the protocol's shape
    loop_restarts: int = 0  # the read loop failed unexpectedly and started again
    claimed: int = 0  # pending requests taken over from a dead consumer (or a previous run)
    duplicates: int = 0  # extra copies sent
    write_failures: int = 0  # replies that could not be written (Redis unreachable)
    service_us_total: int = 0  # service time of every answered request
    ok_service_us: int = 0  # service time of the successful ones
    by_op: dict[str, int] = field(default_factory=dict)  # answered, per operation
    ok_by_op: dict[str, int] = field(default_factory=dict)  # successful, per operation
    figures_failures: int = 0  # self-reports sent without the engine's figures (they failed)
    report_overwrites: int = 0  # metrics:<engine> found written by someone else
    report_standbys: int = 0  # reports not written: another responder of the engine holds it


@dataclass(slots=True)
class _Outgoing:
    reply: Reply | None  # None: nothing to send, only the acknowledgement
    reply_to: str
    copies: int
    ack: tuple[str, str] | None  # (stream, entry id) to XACK


class Responder:
    """Answers the probes of one engine.

    `handlers`: {operation: handler}, or one handler for every operation. A handler
    takes the `Request` and returns None (reply "ok"), a `Verdict`, or raises (reply
    "error", logged). An operation without a handler is answered "error".
    `consumer`: this process's name in the consumer group (see `consumer_name`).
    `self_report`: publish `metrics:<engine>` (a `SelfReport`); None: don't.
    """

    def __init__(self, client: aioredis.Redis, engine: str,
                 handlers: Mapping[str, Handler] | Handler, *,
                 transport: str = "streams", prefix: str = protocol.DEFAULT_PREFIX,
                 consumer: str | None = None, concurrency: int = 256,
                 self_report: reporting.SelfReport | None = reporting.SelfReport(),  # noqa: B008 - frozen
                 reply_maxlen: int = REPLY_STREAM_MAXLEN) -> None:
        if transport not in protocol.TRANSPORTS:
            raise ValueError(f"unknown transport {transport!r} (one of {protocol.TRANSPORTS})")
        if not protocol.NAME_RE.match(engine):
            raise ValueError(f"engine name {engine[:40]!r} is not [a-z][a-z0-9_]*, at most 63")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.engine = engine
        self.consumer = consumer_name(consumer)
        self.stats = ResponderStats()
        self.handlers = HandlerTable(engine, handlers)
        self.report = self_report
        # Extra fields merged into every self-report (the synthetic engines add theirs).
        self.report_extra: dict[str, Any] = {}
        self._redis = client
        self._transport = transport
        self._prefix = prefix
        self._slots = asyncio.Semaphore(concurrency)
        self._reply_maxlen = reply_maxlen
        self._out: list[_Outgoing] = []
        self._out_ready = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._streams = [protocol.request_stream(prefix, engine, p) for p in protocol.PRIORITIES]
        self._stop = asyncio.Event()
        self._running: asyncio.Task[None] | None = None
        self._closing = False
        self.warn = FailureLog(log, engine)
        self._figures_log = ErrorLog(log, engine, SUMMARY_INTERVAL_S)
        # Second writers by cause: (when last warned, overwrites then, overwrites now).
        self._overwrites_warned: dict[str, tuple[float, int, int]] = {}
        self._standing_by: str | None = None  # the responder whose report this one leaves
        self._contested: dict[str, int] = {}  # outranked responders that wrote anyway
        self._read_back = True

    # -- life cycle ---------------------------------------------------------------

    async def __aenter__(self) -> Responder:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def start(self) -> None:
        """Serve in a background task of the running loop until `stop()`."""
        if self._running is None or self._running.done():
            self._stop.clear()
            self._running = asyncio.create_task(self.run(self._stop),
                                                name=f"nautilus_wire responder {self.engine}")

    async def stop(self) -> None:
        """Stop reading, finish what is in hand (at most STOP_GRACE_S), write the last
        replies, leave the consumer group, and return."""
        self._stop.set()
        if self._running is not None:
            await self._running
            self._running = None

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set, then finish what is in hand and return. Nothing
        but `stop` ends it: an unexpected failure is counted and reading starts again."""
        self._closing = False
        writer = asyncio.create_task(self._write_loop())
        reporter = asyncio.create_task(self._report_loop(stop)) if self.report else None
        backoff = 0.1
        try:
            while not stop.is_set():
                try:
                    if self._transport == "streams":
                        await self._read_streams(stop)
                    else:
                        await self._read_pubsub(stop)
                except Exception as exc:
                    self.stats.loop_restarts += 1
                    log.error("%s: request loop failed; restarting in %.1fs", self.engine,
                              backoff, exc_info=exc if self.stats.loop_restarts == 1 else None)
                    try:
                        await asyncio.wait_for(stop.wait(), backoff)
                    except TimeoutError:
                        pass
                    backoff = min(backoff * 2, MAX_BACKOFF_S)
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=STOP_GRACE_S)
                for task in list(self._tasks):
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)
        finally:
            self._closing = True
            self._out_ready.set()
            await writer
            if reporter is not None:
                await reporter
            if self._transport == "streams":
                await self._leave_group()

    async def _mine(self) -> list[tuple[str, dict[str, Any]]]:
        """This consumer's XINFO CONSUMERS record on each stream where it exists."""
        out = []
        for stream in self._streams:
            for c in await self._redis.xinfo_consumers(stream, protocol.RESPONDER_GROUP):
                if c.get("name") == self.consumer:
                    out.append((stream, c))
        return out

    async def _leave_group(self) -> None:
        """A clean stop removes this consumer, so the group lists only live ones. Not
        if it still holds requests (a reply or ack could not be written): another
        consumer, or this one's restart, takes them over."""
        try:
            for stream, mine in await self._mine():
                if not mine.get("pending"):
                    await self._redis.xgroup_delconsumer(stream, protocol.RESPONDER_GROUP,
                                                         self.consumer)
        except BUS_ERRORS as exc:
            log.warning("%s: could not leave the consumer group: %r", self.engine, exc)

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

    async def _take_back_own(self, rank: dict[str, int]) -> None:
        """Requests this consumer name read and never acknowledged (the process was
        killed mid-handler, then restarted): served now, or acknowledged if expired.
        Not when the name was in use moments ago: that may be another live process
        with the same name, whose requests are in hand (they are taken over after
        CLAIM_IDLE_MS if that process is in fact dead)."""
        idle = [int(mine.get("idle") or 0) for _, mine in await self._mine()]
        if idle and min(idle) < CLAIM_IDLE_MS:
            log.warning("%s: consumer name %r was in use %.1f s ago; if another process uses "
                        "it, give each its own (%s)", self.engine, self.consumer,
                        min(idle) / 1000, CONSUMER_ENV)
            return
        streams: dict[Any, Any] = {s: "0" for s in self._streams}
        resp = await self._redis.xreadgroup(protocol.RESPONDER_GROUP, self.consumer, streams,
                                            count=READ_BATCH)
        entries = [(s, e) for s, e in resp or () if e]
        if entries:
            self.stats.claimed += sum(len(e) for _, e in entries)
            await self._handle_entries(entries, rank)

    async def _read_streams(self, stop: asyncio.Event) -> None:
        need_groups = True
        streams: dict[Any, Any] = {s: ">" for s in self._streams}
        rank = {s: i for i, s in enumerate(self._streams)}
        housekeeping_at = 0.0
        while not stop.is_set():
            try:
                if need_groups:
                    await self._ensure_groups()
                    await self._take_back_own(rank)
                    need_groups = False
                if time.monotonic() >= housekeeping_at:
                    housekeeping_at = time.monotonic() + HOUSEKEEPING_S
                    await self._housekeeping(rank)
                resp = await self._redis.xreadgroup(protocol.RESPONDER_GROUP, self.consumer,
                                                    streams, count=READ_BATCH,
                                                    block=READ_BLOCK_MS)
            except BUS_ERRORS as exc:
                # Redis restarted or unreachable: groups may be gone; retry.
                self.warn.failed("reading requests", describe(exc))
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
                    stream, protocol.RESPONDER_GROUP, self.consumer, CLAIM_IDLE_MS,
                    start_id="0-0", count=READ_BATCH)
            except ResponseError:
                continue  # no group yet
            entries = claimed[1] if claimed else []
            if entries:
                self.stats.claimed += len(entries)
                await self._handle_entries([(stream, entries)], rank)
            for consumer in await self._redis.xinfo_consumers(stream, protocol.RESPONDER_GROUP):
                if consumer.get("name") != self.consumer and consumer.get("pending") == 0 \
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
                    self.warn.failed("reading requests", describe(exc))
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
            await cast(Any, pubsub).aclose()

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
        try:
            verdict, measured_us = await self.handlers.call(req)
        finally:
            self._slots.release()
        service_us = measured_us if verdict.service_us is None else max(int(verdict.service_us), 0)
        if not self.handlers.answers(req.op):
            self.stats.unknown_ops += 1
        reply = Reply.answering(req, error=verdict.error, service_us=service_us)
        self._queue(_Outgoing(reply, req.reply_to, max(verdict.copies, 0), ack))

    # -- writing ---------------------------------------------------------------

    def _queue(self, out: _Outgoing) -> None:
        self._out.append(out)
        self._out_ready.set()

    def _ack_only(self, ack: tuple[str, str] | None) -> None:
        """An expired or malformed request: acknowledged, never answered."""
        if ack is not None:
            self._queue(_Outgoing(None, "", 0, ack))

    async def _write_loop(self) -> None:
        while True:
            await self._out_ready.wait()
            self._out_ready.clear()
            batch, self._out = self._out, []
            if batch:
                await self._write(batch)
            if self._closing and not self._out:
                return

    def _count(self, batch: list[_Outgoing]) -> list[tuple[str, Reply]]:
        """The replies to send, in order, counted."""
        sends: list[tuple[str, Reply]] = []
        s = self.stats
        for out in batch:
            reply = out.reply
            if reply is None:
                continue
            if out.copies == 0:
                s.dropped += 1
                continue
            s.replies += 1
            s.duplicates += out.copies - 1
            s.service_us_total += reply.service_us
            s.by_op[reply.op] = s.by_op.get(reply.op, 0) + 1
            if reply.status == protocol.STATUS_ERROR:
                s.errors += 1
            else:
                s.ok_service_us += reply.service_us
                s.ok_by_op[reply.op] = s.ok_by_op.get(reply.op, 0) + 1
            sends.extend((out.reply_to, reply) for _ in range(out.copies))
        return sends

    async def _write(self, batch: list[_Outgoing]) -> None:
        sends = self._count(batch)
        pipe = self._redis.pipeline(transaction=False)
        for reply_to, reply in sends:
            if self._transport == "streams":
                pipe.xadd(reply_to, cast(Any, reply.fields()), maxlen=self._reply_maxlen,
                          approximate=True)
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
            self.warn.failed("writing replies", describe(exc), len(sends))
            await reset_after(self._redis, exc)

    # -- self-report -------------------------------------------------------------

    async def _report_loop(self, stop: asyncio.Event) -> None:
        """`metrics:<engine>` 1 s after start (no false "down" after a restart while
        the old key lives), then every interval; each with an expiry, so a dead
        engine's report vanishes. Removed on a clean stop. Each write reads back what
        it replaced: anything but this responder's previous report is a second writer."""
        assert self.report is not None
        spec, key = self.report, protocol.report_key(self.engine)
        last = reporting.Snapshot.take(self.stats)
        wait = min(1.0, spec.interval)
        # Our last report, while we hold the key and Redis holds it as far as we know.
        written: str | None = None
        deferring = False  # stood down for a responder that outranks this one
        holding = False  # our report is the one in Redis
        self._read_back = True  # off when Redis refuses reading it (an ACL without read)
        while True:
            try:
                await asyncio.wait_for(stop.wait(), wait)
            except TimeoutError:
                pass
            if stop.is_set():
                break
            wait = spec.interval
            now = reporting.Snapshot.take(self.stats)
            supplied = await self._engine_figures(spec, now.at - last.at)
            try:
                report = reporting.build_report(last, now, supplied, {
                    **self.report_extra, reporting.WRITER_FIELD: self.consumer})
                text = reporting.encode(report)
            except Exception as exc:
                self.warn.failed("self-report", describe(exc))
                continue
            last = now
            try:
                if written is None and await self._stand_by(key, deferring, spec.ttl):
                    self.stats.report_standbys += 1
                    holding = False
                    continue
                previous = None
                if self._read_back:
                    try:
                        previous = await self._redis.set(key, text, ex=spec.ttl, get=True)
                    except ResponseError as exc:
                        if not isinstance(exc, NoPermissionError) and "syntax" not in str(exc):
                            raise
                        self._no_read_back(key, exc)
                if not self._read_back:
                    await self._redis.set(key, text, ex=spec.ttl)
                if isinstance(previous, bytes):  # a client without decode_responses
                    previous = previous.decode("utf-8", "replace")
                replaced = written  # what this write should have found: our last report
                written = text if self._read_back else None
                holding, deferring = True, False
                self.warn.recovered("self-report")
                if replaced is not None and previous is not None and previous != replaced:
                    yields = self._yields_to(previous)
                    if yields:
                        written, holding, deferring = None, False, True
                        self.stats.report_standbys += 1
                    elif yields is False:
                        self._overwritten(key, previous)
                elif replaced is not None:
                    self._contested.clear()
            except BUS_ERRORS as exc:
                written = None  # unknown whether it was written
                self.warn.failed("self-report", describe(exc))
        if holding:
            await self._withdraw(key, written)

    async def _withdraw(self, key: str, written: str | None) -> None:
        """A clean stop deletes our report (not another responder's that replaced it:
        a responder standing by takes over at its next interval)."""
        try:
            if written is not None and await self._redis.get(key) != written:
                return
            await self._redis.delete(key)
        except BUS_ERRORS:
            pass

    def _no_read_back(self, key: str, exc: Exception) -> None:
        if self._read_back:
            self._read_back = False
            log.warning("%s: cannot read %s back (%s): a second writer of it will not be "
                        "detected, and the responders of several processes cannot agree "
                        "which one writes it; allow this user to read it (%%RW~metrics:*)",
                        self.engine, key, exc)

    async def _stand_by(self, key: str, deferring: bool, ttl: float) -> bool:
        """Not holding the report: True when another live responder of this engine
        does (its report is there: it expires if that one dies), so this one does
        not write; False when the key is free, ours (a restart), written by
        something other than nautilus_wire (which the write then detects), or a
        report older than our expiry (left without one: its writer is not live)."""
        if not self._read_back:
            return False
        try:
            current = await self._redis.get(key)
        except NoPermissionError as exc:
            self._no_read_back(key, exc)
            return False
        if isinstance(current, bytes):
            current = current.decode("utf-8", "replace")
        holder = reporting.writer_of(current) if current is not None else None
        if holder is None or (reporting.age_of(current or "") or 0.0) > ttl:
            return False
        if holder != self.consumer:
            if holder != self._standing_by:
                self._standing_by = holder
                log.info("%s: %s is written by the responder %r of another process; this one "
                         "stands by and takes over when that report expires", self.engine,
                         key, holder)
            return True
        # Our own report: left by our previous run (write), or by this run just before
        # it stood down for a responder that outranks it (which replaces it, or dies
        # and lets it expire).
        return deferring

    def _yields_to(self, previous: str) -> bool | None:
        """Our report replaced another responder's of this engine, which wrote while
        this one held the key (both started at once, or one was cut off from Redis
        past the report's expiry): the greater consumer name stands down, so the two
        agree without a word (None: this one keeps it). False: a second writer to warn
        about: not nautilus_wire, our own consumer name, or a responder that writes
        three times in a row although it is outranked (it cannot read the key back)."""
        other = reporting.writer_of(previous)
        if other is None or other == self.consumer:
            return False
        if self.consumer > other:
            self._standing_by = other
            log.info("%s: the responder %r of another process writes the self-report too; "
                     "this one stands by", self.engine, other)
            return True
        self._contested[other] = self._contested.get(other, 0) + 1
        # Twice is the normal way to agree: its last write, then the one with which
        # it stood down. A third time in a row, it does not stand down.
        return None if self._contested[other] < 3 else False

    async def _engine_figures(self, spec: reporting.SelfReport, interval: float) -> dict[str, Any]:
        """The engine's figures for this report; {} (the responder's own figures) when
        there are none or they failed (logged: the traceback of a new kind at once,
        then one line a minute)."""
        if spec.figures is None:
            return {}
        try:
            # Bounded: a stop waits for the report being made.
            return await reporting.engine_figures(spec.figures, interval,
                                                  min(spec.interval, STOP_GRACE_S))
        except Exception as exc:
            self.stats.figures_failures += 1
            self._figures_log.failed("self-report figures", exc,
                                     redact(repr(exc))[:MAX_ERROR_CHARS])
            return {}

    def _overwritten(self, key: str, previous: str) -> None:
        """Someone else wrote `key` since our last report: say who and what to do, at
        once for each writer (a new one is a new cause), then at most every
        OVERWRITE_WARN_S per writer with a count."""
        self.stats.report_overwrites += 1
        writer = reporting.writer_of(previous)
        cause = writer if writer is not None else ""
        now = time.monotonic()
        warned_at, warned_n, n = self._overwrites_warned.get(cause, (None, 0, 0))
        n += 1
        if warned_at is not None and now - warned_at < OVERWRITE_WARN_S:
            self._overwrites_warned[cause] = (warned_at, warned_n, n)
            return
        self._overwrites_warned[cause] = (now, n, n)
        since = n - warned_n
        if writer == self.consumer:
            who = f"another process with this one's consumer name ({writer!r})"
            fix = f"give each process its own consumer name ({CONSUMER_ENV})"
        elif writer is not None:
            who = f"the responder of another process (consumer {writer!r})"
            fix = ("let each responder read the key back (%RW~metrics:*), so that one of "
                   "them stands by, or keep the self-report on in one process of the engine "
                   "only (self_report=None in the others)")
        else:
            who = "something other than nautilus_wire (the engine's own code?)"
            fix = ("remove that writer and return its figures from SelfReport(figures=...), "
                   "or keep it and pass self_report=None to the Responder")
        times = "its last report" if since == 1 else f"its reports {since} times"
        if since != n:
            times += f" since the last warning ({n} in all)"
        log.warning("%s: %s has a second writer: %s overwrote %s, so each one's figures "
                    "replace the other's. To fix: %s (docs/engines.md, Self-report)",
                    self.engine, key, who, times, fix)
