"""Reply accounting for MessageBus probes: every probe is settled exactly once.

I/O-free: the MessageBus probe feeds it what it sent and what it read, with the
`now` of each event. A reply is answered, error, invalid, late, duplicate, out
of order, or unmatched; a probe with no reply is timed out and, after a grace
window as long as its timeout, lost.
"""

from __future__ import annotations

import heapq
import os
import time
from collections import deque
from dataclasses import dataclass, field
from collections.abc import Callable

from nautilus_wire import protocol
from nautilus_wire.protocol import Reply, Request
from nautilus_wire.replies import Malformed

from ..metrics import Failure, Metrics, ProbeSeries
from ..schedule import clock

# Bounded memory whatever the config: at most this many answered ids (kept to tell
# duplicates from strays) and timed-out ids (waiting to be counted lost). Beyond
# it the oldest are let go early: a timed-out probe is then counted lost at once,
# an answered id's later duplicate counts as unmatched.
MAX_REMEMBERED = 200_000

# Out of order means "not first come, first served": the engine began a request after
# it had begun a later one of the same series. Its start is estimated as the reply's
# arrival minus its service time; replies of a concurrent engine that overtake
# slower ones start in order and are not counted. The arrival is when the reply
# entered Redis (its stream entry id), so a prober slow to read replies does not
# blame the engine; over pub/sub, when it is read. This much slack covers the reply
# path's jitter between two replies (write batching, several responder processes);
# docs/performance.md ("Accuracy") has the runs that chose it.
REORDER_TOLERANCE_S = 0.02
# Replies remembered per series for that comparison (a reply overtaken by more
# than this many later ones is judged against these only).
RECENT_STARTS = 64

# Called once per probe when it is settled: (failure or None, latency seconds).
OnDone = Callable[["Failure | None", float], None]


@dataclass(slots=True)
class Series:
    """One engine × op: its sequence numbers and its metric children."""

    engine: str
    op: str
    m: ProbeSeries
    seq: int = 0
    max_seq_seen: int = -1
    # (seq, estimated start) of the latest replies, to judge overtaken ones.
    starts: deque[tuple[int, float]] = field(default_factory=lambda: deque(maxlen=RECENT_STARTS))


@dataclass(slots=True)
class Pending:
    series: Series
    seq: int
    due: float  # scheduled send time (schedule.clock)
    timeout: float
    on_done: OnDone | None  # a composite probe's leg


class ReplyTracker:
    def __init__(self, metrics: Metrics, prober_id: str, reply_to: str) -> None:
        self.metrics = metrics
        self.prober_id = prober_id
        self.reply_to = reply_to
        self.pending: dict[str, Pending] = {}
        self._series: dict[tuple[str, str], Series] = {}
        self._deadlines: list[tuple[float, str]] = []  # heap: (timeout at, id)
        self._timed_out: dict[str, Series] = {}
        self._lost_at: list[tuple[float, str]] = []  # heap: (counted lost at, id)
        self._answered: dict[str, Series] = {}
        self._forget: list[tuple[float, str]] = []  # heap: (forget at, id)
        self._token = os.urandom(4).hex()
        self._next_id = 0

    def series(self, engine: str, op: str) -> Series:
        """The series of an engine × op, its metric children created on first use."""
        key = (engine, op)
        if key not in self._series:
            self._series[key] = Series(engine, op, self.metrics.init_probe(engine, op))
        return self._series[key]

    # -- sending -----------------------------------------------------------------

    def request(self, s: Series, due: float, timeout: float, priority: str, payload: str,
                on_done: OnDone | None = None) -> tuple[Request, Pending]:
        """A new request of series `s`, due at `due`; not yet counted as sent."""
        self._next_id += 1
        s.seq += 1
        req_id = f"{self._token}{self._next_id:x}"
        deadline = time.time() + (due + timeout - clock())
        req = Request(req_id, self.prober_id, s.engine, s.op, s.seq, priority, self.reply_to,
                      int(deadline * 1000), payload)
        heapq.heappush(self._deadlines, (due + timeout, req_id))
        return req, Pending(s, s.seq, due, timeout, on_done)

    def sent(self, req: Request, p: Pending) -> None:
        self.pending[req.id] = p
        p.series.m.requests.inc()
        p.series.m.in_flight.inc()

    def send_failed(self, req: Request) -> None:
        p = self.pending.pop(req.id, None)
        if p is not None:
            self._finish(p, Failure.SEND_FAILED, 0.0)

    # -- receiving ---------------------------------------------------------------

    def on_reply(self, reply: Reply, now: float) -> None:
        p = self.pending.pop(reply.id, None)
        if p is None:
            self._on_stray(reply.id)
            return
        s = p.series
        self._remember_answered(reply.id, p, now)
        if (reply.engine, reply.op, reply.seq) != (s.engine, s.op, p.seq):
            self._finish(p, Failure.INVALID, 0.0)
            return
        service = reply.service_us / 1e6
        started = (now if reply.bus_ms is None else reply.bus_ms / 1000) - service
        if reply.seq < s.max_seq_seen:
            if any(seq > reply.seq and other < started - REORDER_TOLERANCE_S
                   for seq, other in s.starts):
                s.m.out_of_order.inc()
        else:
            s.max_seq_seen = reply.seq
        s.starts.append((reply.seq, started))
        s.m.service.observe(service)
        if reply.status == protocol.STATUS_OK:
            latency = now - p.due
            s.m.latency.observe(latency)
            self._finish(p, None, latency)
        else:
            self._finish(p, Failure.ERROR, now - p.due)

    def on_malformed(self, bad: Malformed, now: float) -> None:
        p = self.pending.pop(bad.id, None) if bad.id else None
        if p is None:
            self.metrics.malformed.inc()
            return
        self._remember_answered(bad.id or "", p, now)
        self._finish(p, Failure.INVALID, 0.0)

    def _on_stray(self, reply_id: str) -> None:
        s = self._timed_out.pop(reply_id, None)
        if s is not None:
            s.m.late.inc()
            self._answered[reply_id] = s  # a second late copy is a duplicate
        elif (s := self._answered.get(reply_id)) is not None:
            s.m.duplicate.inc()
        else:
            self.metrics.unmatched.inc()

    def _finish(self, p: Pending, failure: Failure | None, latency: float) -> None:
        p.series.m.in_flight.dec()
        if failure is not None:
            p.series.m.failures[failure].inc()
        if p.on_done is not None:
            p.on_done(failure, latency)

    def _remember_answered(self, reply_id: str, p: Pending, now: float) -> None:
        """Answered ids are kept twice their timeout, to tell late and duplicate
        replies from strays."""
        self._answered[reply_id] = p.series
        heapq.heappush(self._forget, (now + 2 * p.timeout, reply_id))
        while len(self._forget) > MAX_REMEMBERED:
            self._answered.pop(heapq.heappop(self._forget)[1], None)

    # -- timeouts ----------------------------------------------------------------

    def expire(self, now: float) -> None:
        """Count what timed out, what is now lost, and forget old answered ids."""
        while self._deadlines and self._deadlines[0][0] <= now:
            at, req_id = heapq.heappop(self._deadlines)
            p = self.pending.pop(req_id, None)
            if p is None:
                continue  # answered in time
            self._finish(p, Failure.TIMEOUT, 0.0)
            self._timed_out[req_id] = p.series
            # Still unanswered after a grace window as long as the timeout: lost.
            heapq.heappush(self._lost_at, (at + (at - p.due), req_id))
        while self._lost_at and (self._lost_at[0][0] <= now
                                 or len(self._lost_at) > MAX_REMEMBERED):
            _, req_id = heapq.heappop(self._lost_at)
            s = self._timed_out.pop(req_id, None)
            if s is not None:
                s.m.lost.inc()
        while self._forget and self._forget[0][0] <= now:
            self._answered.pop(heapq.heappop(self._forget)[1], None)

    def settled(self) -> bool:
        """Nothing in flight and nothing waiting to be counted lost."""
        return not self.pending and not self._timed_out
