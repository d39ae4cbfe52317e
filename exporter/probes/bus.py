"""The MessageBus connection every bus kind shares (probes/messagebus.py's engine × op
probes, probes/trading_request.py's legs), and the open-loop plan runner that sends
their probes: requests out in one batch per tick, replies in, each one accounted for
by `replies.ReplyTracker`. Its own module, not a kind's: the kinds and the probe
context (base.Context) import it, it imports no kind."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

import redis.asyncio as aioredis

from nautilus_wire.failure_log import FailureLog
from nautilus_wire.protocol import Request
from nautilus_wire.redis_client import BUS_ERRORS, describe, ready, reset_after
from nautilus_wire.replies import Malformed
from nautilus_wire.requester import ProberTransport
from nautilus_wire import protocol
from nautilus_config.checks import at_most, duration, Node, non_negative_int, one_of, positive

from ..metrics import BusOperation, Metrics
from ..schedule import EARLY_S, MAX_TIMEOUT_S, Schedule, clock, sleep_for
from ..supervise import Supervisor
from .replies import Pending, ReplyTracker, Series

log = logging.getLogger(__name__)

Batch = list[tuple[Request, Pending]]
# One send's requests hold at most about this many bytes (payloads and fields, packed
# once more by the client): a backlog of due probes is skipped and counted, never
# packed into one giant pipeline, whose memory would grow with the backlog and whose
# write would time out and read as send_failed (docs/performance.md, "Bounds").
MAX_BATCH_BYTES = 8 << 20
# A request's bytes beside its payload (ids, names, the XADD itself), rounded up.
REQUEST_OVERHEAD_BYTES = 400
# Pause between reads while the bus is unreachable: short, so replies resume
# promptly when Redis is back (each failure is counted, the log stays quiet).
RETRY_S = 0.2
# After a failed send, sends wait this long (doubling, jittered) before dialling
# again, so a peer that accepts and resets every connection is not dialled at the
# send rate (docs/performance.md, "Bounds"). The cap keeps recovery within a second
# of Redis returning.
SEND_BACKOFF_MIN_S = 0.05
SEND_BACKOFF_MAX_S = 0.5



# Bounds on what one probe stream sends (docs/configuration.md): one process sustains
# about 10,000 probes/s on 2 cores; beyond that, shard (--workers, --shard).
MAX_RATE = 50_000.0  # probes/s of one engine × op, or trading requests/s
MAX_PAYLOAD = 65_536  # bytes of a probe's payload
# The `defaults:` section: what an engine × op (and the trading request) is sent with
# when it does not say.
DEFAULTS: dict[str, Any] = {"rate": 10.0, "timeout": 2.0, "priority": "normal", "payload_size": 64}


def probe_settings(node: Node, base: dict[str, Any]) -> dict[str, Any]:
    """rate, timeout, priority and payload_size from `node`, else from `base`."""
    out = {
        "rate": node.get("rate", base["rate"], at_most(MAX_RATE, positive)),
        "timeout": node.get("timeout", base["timeout"], at_most(MAX_TIMEOUT_S, duration)),
        "priority": node.get("priority", base["priority"], one_of(*protocol.PRIORITIES)),
        "payload_size": node.get("payload_size", base["payload_size"],
                                 at_most(MAX_PAYLOAD, non_negative_int)),
    }
    node.done()
    return out


def defaults(root: Node) -> dict[str, Any]:
    """The file's `defaults:` section over DEFAULTS (each bus kind reads it)."""
    return probe_settings(root.node("defaults"), DEFAULTS)


class MessageBus:
    """One MessageBus connection: requests out, replies in, every one accounted for."""

    def __init__(self, client: aioredis.Redis, transport: ProberTransport, metrics: Metrics,
                 prober_id: str, max_in_flight: int = 100_000,
                 supervisor: Supervisor | None = None) -> None:
        self.client = client
        self.transport = transport
        self.metrics = metrics
        self.max_in_flight = max_in_flight
        self.supervisor = supervisor or Supervisor(metrics)
        self.warn = FailureLog(log, "MessageBus")
        self.tracker = ReplyTracker(metrics, prober_id, transport.reply_key)
        self._backoff = 0.0
        self._retry_at = 0.0
        self._last_error = ""  # the last send failure, described

    async def start(self) -> None:
        # Subscribing can fail while Redis is down; the receiver retries later.
        try:
            await ready(self.client)
            await self.transport.start()
        except BUS_ERRORS as exc:
            log.warning("subscribing to replies failed: %s", exc)

    def room(self, batch: Batch) -> int:
        """How many more probes may be sent without exceeding max_in_flight."""
        return self.max_in_flight - len(self.tracker.pending) - len(batch)

    async def send(self, batch: Batch) -> None:
        for req, p in batch:
            self.tracker.sent(req, p)
        if clock() < self._retry_at:
            # The bus failed moments ago: these fail without dialling it again (and
            # are in the log's count, which counts probes failed, not attempts).
            for req, _ in batch:
                self.tracker.send_failed(req)
            self.warn.failed("send", self._last_error, len(batch))
            return
        try:
            await self.transport.send([req for req, _ in batch])
            self.metrics.bus_up.set(1)
            self.warn.recovered("send")
            self._backoff = 0.0
        except BUS_ERRORS as exc:
            self._last_error = describe(exc)
            self.warn.failed("send", self._last_error, len(batch))
            self.metrics.bus_up.set(0)
            self.metrics.bus_error[BusOperation.SEND].inc()
            for req, _ in batch:
                self.tracker.send_failed(req)
            await reset_after(self.client, exc)
            self._backoff = min(max(self._backoff * 2, SEND_BACKOFF_MIN_S), SEND_BACKOFF_MAX_S)
            self._retry_at = clock() + self._backoff * random.uniform(0.5, 1.0)

    async def run_receiver(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                replies = await self.transport.receive()
            except BUS_ERRORS as exc:
                self.warn.failed("receive", describe(exc))
                self.metrics.bus_up.set(0)
                self.metrics.bus_error[BusOperation.RECEIVE].inc()
                await reset_after(self.client, exc)
                await asyncio.sleep(RETRY_S)
                continue
            self.warn.recovered("receive")
            now = clock()
            for reply in replies:
                if isinstance(reply, Malformed):
                    self.tracker.on_malformed(reply, now)
                else:
                    self.tracker.on_reply(reply, now)

    async def drain(self, max_wait: float) -> None:
        """Keep accounting until every probe sent is settled (the test harness; a
        shutdown does not wait: unsettled probes are simply not counted)."""
        end = clock() + max_wait
        while not self.tracker.settled() and clock() < end:
            self.tracker.expire(clock())
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        await self.transport.close()
        await self.client.aclose()


@dataclass(slots=True)
class Plan:
    """One open-loop schedule: fire(due, batch) appends the requests due at `due`."""

    schedule: Schedule
    timeout: float
    fire: Callable[[float, Batch], None]
    series: list[Series]  # where skipped probes are counted
    bytes_per_fire: int = REQUEST_OVERHEAD_BYTES  # what one fire adds to a batch


async def run_plans(bus: MessageBus, plans: Callable[[], list[Plan]], stop: asyncio.Event) -> None:
    """Send every plan's probes when due, in one batch per tick, until `stop`.
    `plans` is read at every tick, so a reload takes effect within 10 ms."""
    while not stop.is_set():
        now = clock()
        current = plans()
        batch: Batch = []
        batch_bytes = 0
        for plan in current:
            # A trading request sends one probe per leg.
            room = min(bus.room(batch) // max(len(plan.series), 1),
                       (MAX_BATCH_BYTES - batch_bytes) // plan.bytes_per_fire)
            send, skipped = plan.schedule.take_sendable(now + EARLY_S, plan.timeout, room)
            batch_bytes += len(send) * plan.bytes_per_fire
            if skipped:
                for s in plan.series:
                    s.m.skipped.inc(skipped)
            for due in send:
                bus.metrics.schedule_lag.observe(max(now - due, 0.0))
                # Late: measured from the scheduled time (no coordinated
                # omission). Early by under a tick: from the real send time.
                plan.fire(min(due, now), batch)
        if batch:
            await bus.send(batch)
        bus.tracker.expire(clock())
        next_due = min((p.schedule.next_due() for p in current), default=now + 1) - EARLY_S
        await asyncio.sleep(sleep_for(next_due, clock()))


