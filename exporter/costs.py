"""What the exporter's memory is made of: costs measured on CPython 3.11 (tracemalloc
and RSS, docs/performance.md) and rounded up, and `Cost`, what one probe kind's part
of a configuration may make it hold (each kind's memory rule, ProbeKind.memory).
memory.py adds them up. A leaf: the kinds import it, it imports nothing of theirs."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1 << 20
DEFAULT_MAX_MEMORY = 1024 * MIB

BASE = 96 * MIB  # interpreter, libraries, two threads, Redis buffers, a render
PER_SERIES = 160 << 10  # a target's series (an engine × op's, or an endpoint's): its metric
#                         children and /metrics lines (×3: render, gzip)
PER_IN_FLIGHT = 1 << 10  # a pending probe: 316 B of objects, heap entries, dict slots
PER_REMEMBERED = 512  # an answered or timed-out id kept to classify a later reply (227 B)
PER_CONNECTION = 16 << 10  # a held WebSocket connection (6 KB measured)
PER_CONNECTION_DEFLATE = 64 << 10  # with permessage-deflate (~48 KB)
SENDING = 3  # one send's requests exist as objects, as packed commands and in the socket


@dataclass(frozen=True)
class Cost:
    """What one kind's spec may make the exporter hold."""

    series: int = 0  # series of PER_SERIES each
    # (rate per second, timeout in seconds) of each flow of probes it sends through
    # the MessageBus: what is in flight and remembered grows with them.
    flows: tuple[tuple[float, float], ...] = ()
    held: int = 0  # bytes of its own beyond those (held connections)


NOTHING = Cost()
