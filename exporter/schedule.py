"""Open-loop schedules: probe k is due at start + k/rate, whatever earlier probes did."""

from __future__ import annotations

import math
import time

# time.monotonic, not loop.time(): uvloop's loop clock has millisecond steps,
# too coarse for sub-millisecond latency buckets.
clock = time.monotonic

# uvloop busy-spins on sub-millisecond sleeps: tick at least this long and send
# every probe that is due. 2 ms rather than 1 halves the Redis
# commands per probe at 1,000/s (each costs ~100 us of CPU here).
MIN_TICK_S = 0.002
MAX_TICK_S = 0.01  # also how often timeouts are checked
# Probes due within the next tick are sent now rather than up to a tick late
# (timers wake late, never early); their latency then runs from the real send.
EARLY_S = MIN_TICK_S
# The longest timeout any probe may be given (seconds): bounds memory and shutdown.
MAX_TIMEOUT_S = 60.0


class Schedule:
    def __init__(self, rate: float, start: float) -> None:
        self.rate = rate
        self.start = start
        self.k = 0

    def continued(self, rate: float) -> Schedule:
        """This schedule at a new rate, from its next due probe on: a reload neither
        drops nor repeats a probe (one due during the reload is sent late or skipped)."""
        if rate == self.rate:
            return self
        return Schedule(rate, self.next_due())

    def next_due(self) -> float:
        return self.start + self.k / self.rate

    def take_due(self, now: float) -> list[float]:
        """Scheduled times of every probe due by `now`, oldest first."""
        # The epsilon: (start + k/rate - start) * rate can round to just under k,
        # which would hand probe k out a tick after its own due time.
        last = math.floor((now - self.start) * self.rate + 1e-9)
        if last < self.k:
            return []
        due = [self.start + k / self.rate for k in range(self.k, last + 1)]
        self.k = last + 1
        return due

    def take_sendable(self, now: float, timeout: float, room: int) -> tuple[list[float], int]:
        """The skip rule, applied to the probes due by `now`: those to send now and how
        many to skip. A probe already older than its timeout could not be answered in
        time, and no more than `room` are sent (what max_in_flight leaves): the rest
        are skipped and counted, never sent later as a burst. The same as
        `sendable(self.take_due(now), now, timeout, room)` without listing the probes
        that are skipped (after a long stall at a high rate that list alone held
        millions of floats): memory is bounded by `room`, whatever the rate and stall."""
        last = math.floor((now - self.start) * self.rate + 1e-9)
        first = self.k
        if last < first:
            return [], 0
        # The first probe due no earlier than now - timeout (sendable's `<=`), exactly.
        fresh = min(max(first, math.ceil((now - timeout - self.start) * self.rate - 1e-9)),
                    last + 1)
        while fresh > first and now - (self.start + (fresh - 1) / self.rate) <= timeout:
            fresh -= 1
        while fresh <= last and now - (self.start + fresh / self.rate) > timeout:
            fresh += 1
        take = min(last + 1 - fresh, max(room, 0))
        send = [self.start + j / self.rate for j in range(fresh, fresh + take)]
        self.k = last + 1
        return send, (last + 1 - first) - take


def sleep_for(next_due: float, now: float) -> float:
    return min(max(next_due - now, MIN_TICK_S), MAX_TICK_S)


def sendable(due: list[float], now: float, timeout: float, room: int) -> tuple[list[float], int]:
    """The skip rule over a list of due times, written plainly: the reference
    `Schedule.take_sendable` (what the probes use) is tested against."""
    send = [d for d in due if now - d <= timeout][:max(room, 0)]
    return send, len(due) - len(send)
