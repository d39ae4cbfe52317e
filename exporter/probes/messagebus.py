"""MessageBus request/reply probing, open loop, with full reply accounting.

Every probe carries a correlation id and a per (engine, op) sequence number.
Its latency runs from its *scheduled* send time to the reply, so a stalled
engine fills the tail of the histogram instead of slowing the prober. Each
reply is classified exactly once: answered, error, invalid, late, duplicate,
out of order, or unmatched; a probe with no reply at all is timed out and,
after a grace window as long as its timeout, lost.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import os
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Protocol

from redis.exceptions import RedisError

from nautilus_wire import protocol
from nautilus_wire.protocol import Reply, Request
from nautilus_wire.requester import Malformed, ProberTransport

from ..config import ProbeSpec
from ..metrics import Metrics
from ..schedule import EARLY_S, Schedule, clock, sleep_for

log = logging.getLogger(__name__)


class Parent(Protocol):
    """A composite probe that owns some requests (see trading_request.py)."""

    def leg_done(self, failure: str | None, latency: float) -> None: ...


@dataclass(slots=True)
class Stream:
    """State of one engine × op: its sequence and its metric children."""

    engine: str
    op: str
    seq: int = 0
    max_seq_seen: int = -1
    children: dict[str, object] = field(default_factory=dict)

    def bind(self, m: Metrics) -> None:
        self.children = m.init_probe(self.engine, self.op)

    def inc(self, name: str, value: float = 1) -> None:
        self.children[name].inc(value)  # type: ignore[attr-defined]


@dataclass(slots=True)
class Pending:
    stream: Stream
    seq: int
    due: float  # scheduled send time (scheduler.clock)
    parent: Parent | None


# A planned probe stream: fire(due, batch) appends the requests due at `due`.
Fire = Callable[[float, list[tuple[Request, Pending]]], None]


@dataclass(slots=True)
class Plan:
    schedule: Schedule
    timeout: float
    fire: Fire
    streams: list[Stream]  # where skipped probes are counted


class MessageBusProber:
    def __init__(self, transport: ProberTransport, metrics: Metrics, prober_id: str,
                 max_in_flight: int = 100_000) -> None:
        self.transport = transport
        self.metrics = metrics
        self.prober_id = prober_id
        self.max_in_flight = max_in_flight
        self.pending: dict[str, Pending] = {}
        self._streams: dict[tuple[str, str], Stream] = {}
        self._plans: list[Plan] = []
        self._deadlines: list[tuple[float, str]] = []  # heap: (timeout at, id)
        self._timed_out: dict[str, Stream] = {}
        self._lost_at: list[tuple[float, str]] = []  # heap: (counted lost at, id)
        self._answered: dict[str, Stream] = {}
        self._forget: deque[tuple[float, str]] = deque()
        self._token = os.urandom(4).hex()
        self._next_id = 0

    # -- plans -----------------------------------------------------------------

    def stream(self, engine: str, op: str) -> Stream:
        key = (engine, op)
        if key not in self._streams:
            self._streams[key] = st = Stream(engine, op)
            st.bind(self.metrics)
        return self._streams[key]

    def set_plans(self, plans: list[Plan]) -> None:
        """Replace what is probed; probes in flight are still accounted for."""
        self._plans = plans

    def plan_probe(self, spec: ProbeSpec) -> Plan:
        st = self.stream(spec.engine, spec.op)
        payload = "x" * spec.payload_size

        def fire(due: float, batch: list[tuple[Request, Pending]]) -> None:
            batch.append(self.new_request(st, due, spec.timeout, spec.priority, payload, None))

        return Plan(Schedule(spec.rate, clock()), spec.timeout, fire, [st])

    def new_request(self, st: Stream, due: float, timeout: float, priority: str, payload: str,
                    parent: Parent | None) -> tuple[Request, Pending]:
        self._next_id += 1
        st.seq += 1
        req_id = f"{self._token}{self._next_id:x}"
        deadline = time.time() + (due + timeout - clock())
        req = Request(req_id, self.prober_id, st.engine, st.op, st.seq, priority,
                      self.transport.reply_key, int(deadline * 1000), payload)
        heapq.heappush(self._deadlines, (due + timeout, req_id))
        return req, Pending(st, st.seq, due, parent)

    # -- sending ---------------------------------------------------------------

    async def run_scheduler(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            now = clock()
            batch: list[tuple[Request, Pending]] = []
            for plan in self._plans:
                for due in plan.schedule.take_due(now + EARLY_S):
                    # Too late to be answered in time, or too much in flight:
                    # skipped and counted, never sent as a burst.
                    if now - due > plan.timeout or len(self.pending) >= self.max_in_flight:
                        for st in plan.streams:
                            st.inc("skipped")
                        continue
                    self.metrics.schedule_lag.observe(max(now - due, 0.0))
                    # Late: measured from the scheduled time (no coordinated
                    # omission). Early by under a tick: from the real send time.
                    plan.fire(min(due, now), batch)
            if batch:
                await self._send(batch)
            self._expire(clock())
            next_due = min((p.schedule.next_due() for p in self._plans), default=now + 1) - EARLY_S
            # A plain sleep: new plans are picked up at the next tick (<= 10 ms).
            await asyncio.sleep(sleep_for(next_due, clock()))

    async def _send(self, batch: list[tuple[Request, Pending]]) -> None:
        for req, p in batch:
            self.pending[req.id] = p
            p.stream.inc("requests")
            p.stream.inc("in_flight")
        try:
            await self.transport.send([req for req, _ in batch])
            self.metrics.bus_up.set(1)
        except (RedisError, OSError) as exc:
            log.warning("sending %d probes failed: %s", len(batch), exc)
            self.metrics.bus_up.set(0)
            self.metrics.bus_errors.labels("send").inc()
            for req, _ in batch:
                p = self.pending.pop(req.id, None)
                if p is not None:
                    self._finish(p, "send_failed", 0.0)

    # -- receiving -------------------------------------------------------------

    async def run_receiver(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                replies = await self.transport.receive()
            except (RedisError, OSError) as exc:
                log.warning("reading replies failed: %s", exc)
                self.metrics.bus_up.set(0)
                self.metrics.bus_errors.labels("receive").inc()
                await asyncio.sleep(0.5)
                continue
            now = clock()
            for reply in replies:
                if isinstance(reply, Malformed):
                    self._on_malformed(reply, now)
                else:
                    self._on_reply(reply, now)

    def _on_reply(self, reply: Reply, now: float) -> None:
        p = self.pending.pop(reply.id, None)
        if p is None:
            self._on_stray(reply.id)
            return
        st = p.stream
        self._remember_answered(reply.id, st, now)
        if (reply.engine, reply.op, reply.seq) != (st.engine, st.op, p.seq):
            self._finish(p, "invalid", 0.0)
            return
        if reply.seq < st.max_seq_seen:
            st.inc("out_of_order")
        else:
            st.max_seq_seen = reply.seq
        st.children["service"].observe(reply.service_us / 1e6)  # type: ignore[attr-defined]
        if reply.status == protocol.STATUS_OK:
            latency = now - p.due
            st.children["latency"].observe(latency)  # type: ignore[attr-defined]
            self._finish(p, None, latency)
        else:
            self._finish(p, "error", now - p.due)

    def _on_malformed(self, bad: Malformed, now: float) -> None:
        p = self.pending.pop(bad.id, None) if bad.id else None
        if p is None:
            self.metrics.malformed.inc()
            return
        self._remember_answered(bad.id or "", p.stream, now)
        self._finish(p, "invalid", 0.0)

    def _on_stray(self, reply_id: str) -> None:
        st = self._timed_out.pop(reply_id, None)
        if st is not None:
            st.inc("late")
            self._answered[reply_id] = st  # a second late copy is a duplicate
        elif (st := self._answered.get(reply_id)) is not None:
            st.inc("duplicate")
        else:
            self.metrics.unmatched.inc()

    def _finish(self, p: Pending, failure: str | None, latency: float) -> None:
        p.stream.inc("in_flight", -1)
        if failure is not None:
            p.stream.inc(f"fail_{failure}")
        if p.parent is not None:
            p.parent.leg_done(failure, latency)

    def _remember_answered(self, reply_id: str, st: Stream, now: float) -> None:
        self._answered[reply_id] = st
        self._forget.append((now + self._memory_s(), reply_id))

    def _memory_s(self) -> float:
        """How long ids are kept to tell late and duplicate replies from strays."""
        return 2 * max((p.timeout for p in self._plans), default=2.0)

    # -- timeouts --------------------------------------------------------------

    def _expire(self, now: float) -> None:
        while self._deadlines and self._deadlines[0][0] <= now:
            at, req_id = heapq.heappop(self._deadlines)
            p = self.pending.pop(req_id, None)
            if p is None:
                continue  # answered in time
            self._finish(p, "timeout", 0.0)
            self._timed_out[req_id] = p.stream
            # Still unanswered after a grace window as long as the timeout: lost.
            heapq.heappush(self._lost_at, (at + (at - p.due), req_id))
        while self._lost_at and self._lost_at[0][0] <= now:
            _, req_id = heapq.heappop(self._lost_at)
            st = self._timed_out.pop(req_id, None)
            if st is not None:
                st.inc("lost")
        while self._forget and self._forget[0][0] <= now:
            self._answered.pop(self._forget.popleft()[1], None)

    def settled(self) -> bool:
        """Nothing in flight and nothing waiting to be counted lost."""
        return not self.pending and not self._timed_out

    async def drain(self, max_wait: float) -> None:
        """Keep accounting until every probe sent is settled (tests, shutdown)."""
        end = clock() + max_wait
        while not self.settled() and clock() < end:
            self._expire(clock())
            await asyncio.sleep(0.01)
