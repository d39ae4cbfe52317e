"""WebSocket heartbeat bookkeeping without I/O: given what was sent, what came back
and when, it says what each frame was — answered (with its latency), late,
unknown — which heartbeats timed out, how many broadcast sequence numbers were
missed, and why a connection was lost. The WebSocket probe and the WebSocket
load test drive it; tests/test_heartbeats.py drives it with made-up times.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from enum import Enum
from typing import Generic, TypeVar

from nautilus_wire.ws_protocol import UNAUTHORIZED

T = TypeVar("T")  # who sent a heartbeat (a connection)

# Timed-out ids remembered so that their ack still counts as late; past this many
# the set is cleared (bounded memory; a few late acks then count as unknown).
MAX_LATE = 100_000


class Disconnect(str, Enum):
    """How an open connection was lost: the `reason` of ws_disconnects_total."""

    DROPPED = "dropped"  # reset, or EOF without a close frame (1006)
    CLOSED = "closed"  # by the server
    UNAUTHORIZED = "unauthorized"  # close code 4001
    PROTOCOL_ERROR = "protocol_error"  # a frame broke the protocol or was too large


class AckKind(Enum):
    ANSWERED = "answered"  # in time: it has a latency
    LATE = "late"  # after its heartbeat timed out
    UNKNOWN = "unknown"  # not ours, answered twice, or forgotten


@dataclass(frozen=True, slots=True)
class Ack(Generic[T]):
    kind: AckKind
    owner: T | None = None
    latency: float = 0.0  # seconds from the heartbeat's start, when ANSWERED


class HeartbeatTracker(Generic[T]):
    """Heartbeats in flight, by id, with their deadlines."""

    def __init__(self, timeout: float, max_late: int = MAX_LATE) -> None:
        self.timeout = timeout
        self.max_late = max_late
        self.pending: dict[str, tuple[T, float]] = {}  # id -> (owner, start)
        self._deadlines: list[tuple[float, str]] = []
        self._late: set[str] = set()
        self._next = 0

    def __len__(self) -> int:
        return len(self.pending)

    def new_id(self) -> str:
        self._next += 1
        return f"{self._next:x}"

    def track(self, hb_id: str, owner: T, start: float, due: float) -> None:
        """`hb_id` was sent by `owner`; its latency runs from `start`, and it times
        out `timeout` after `due` (its scheduled time)."""
        self.pending[hb_id] = (owner, start)
        heapq.heappush(self._deadlines, (due + self.timeout, hb_id))

    def ack(self, hb_id: str, now: float) -> Ack[T]:
        entry = self.pending.pop(hb_id, None)
        if entry is not None:
            return Ack(AckKind.ANSWERED, entry[0], now - entry[1])
        if hb_id in self._late:
            self._late.discard(hb_id)
            return Ack(AckKind.LATE)
        return Ack(AckKind.UNKNOWN)

    def error(self, hb_id: str) -> None:
        """An error frame answered it: a failure, never a reply (and never a timeout)."""
        self.pending.pop(hb_id, None)

    def expire(self, now: float) -> list[T]:
        """The owners of the heartbeats whose deadline has passed, oldest first."""
        out = []
        while self._deadlines and self._deadlines[0][0] <= now:
            _, hb_id = heapq.heappop(self._deadlines)
            entry = self.pending.pop(hb_id, None)
            if entry is not None:
                out.append(entry[0])
                self._late.add(hb_id)
        if len(self._late) > self.max_late:
            self._late.clear()
        return out


def broadcast_gap(last: int, seq: int) -> tuple[int, int]:
    """(sequence numbers missed, the new last) when broadcast `seq` arrives after
    `last` (0: the first frame, which misses nothing; a repeat or older one neither)."""
    missed = seq - last - 1 if last and seq > last + 1 else 0
    return missed, max(last, seq)


@dataclass(frozen=True, slots=True)
class Loss:
    """How an open connection ended, as the probe saw it."""

    close_code: int | None  # the close frame received, if any
    bad_frames: bool  # a frame broke the protocol or was too large (we closed it)


def loss_reason(loss: Loss) -> Disconnect:
    if loss.bad_frames:  # we closed it (1002/1009) after a bad frame, or it broke off
        return Disconnect.PROTOCOL_ERROR
    if loss.close_code == UNAUTHORIZED:
        return Disconnect.UNAUTHORIZED
    if loss.close_code is not None:
        return Disconnect.CLOSED
    return Disconnect.DROPPED
