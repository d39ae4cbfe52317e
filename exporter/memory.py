"""The exporter's memory, bounded by its configuration (docs/configuration.md).

Every part of the exporter that grows with load has a limit the configuration
sets: probes in flight (`max_in_flight`, and no more than the rates times the
timeouts), ids remembered after an answer or a timeout (replies.MAX_REMEMBERED
each), one send's requests (bus.MAX_BATCH_BYTES), metric series, and what
each probe kind's own rule adds (ProbeKind.memory: held WebSocket connections).
`bound()` adds them up with costs measured on CPython 3.11 (docs/performance.md)
and rounded up; `--config.check` prints it and a
configuration whose bound passes `max_memory` is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import Config

MIB = 1 << 20
DEFAULT_MAX_MEMORY = 1024 * MIB

# Measured (tracemalloc and RSS, docs/performance.md) and rounded up:
BASE = 96 * MIB  # interpreter, libraries, two threads, Redis buffers, a render
PER_SERIES = 160 << 10  # an engine × op: its metric children and /metrics lines (×3: render, gzip)
PER_IN_FLIGHT = 1 << 10  # a pending probe: 316 B of objects, heap entries, dict slots
PER_REMEMBERED = 512  # an answered or timed-out id kept to classify a later reply (227 B)
PER_CONNECTION = 16 << 10  # a held WebSocket connection (6 KB measured)
PER_CONNECTION_DEFLATE = 64 << 10  # with permessage-deflate (~48 KB)
SENDING = 3  # one send's requests exist as objects, as packed commands and in the socket


@dataclass(frozen=True)
class Bound:
    """Each part's upper bound in bytes, and their sum."""

    base: int
    series: int
    in_flight: int
    remembered: int
    sending: int
    kinds: tuple[tuple[str, int], ...] = ()  # what each probe kind's own memory rule adds

    @property
    def total(self) -> int:
        return (self.base + self.series + self.in_flight + self.remembered + self.sending
                + sum(b for _, b in self.kinds))

    def describe(self) -> str:
        parts = {"base": self.base, "series": self.series, "in flight": self.in_flight,
                 "remembered ids": self.remembered, "sending": self.sending, **dict(self.kinds)}
        # Rounded up: a bound, and a part of 0.4 MiB must not read "0".
        return ", ".join(f"{k} {-(-v // MIB):,}" for k, v in parts.items() if v)


def bound(cfg: Config) -> Bound:
    from .probes.bus import MAX_BATCH_BYTES
    from .probes.registry import KINDS
    from .probes.replies import MAX_REMEMBERED

    # Probes a second, and how many can be unanswered at once (rate × timeout).
    flows = [(p.rate, p.timeout) for p in cfg.probes]
    series = len(cfg.probes)
    if cfg.trading_request is not None:
        t = cfg.trading_request
        flows += [(t.rate, t.timeout)] * len(t.legs)
        series += len(t.legs) + 1
    in_flight = min(cfg.max_in_flight, int(sum(r * t for r, t in flows)) + 1_000)
    # Answered ids live two timeouts, timed-out ones until counted lost (a timeout).
    answered = min(MAX_REMEMBERED, int(sum(r * 2 * t for r, t in flows)) + 1_000)
    timed_out = min(MAX_REMEMBERED, int(sum(r * t for r, t in flows)) + 1_000)
    kinds = tuple((kind.name, held) for kind in KINDS
                  if (spec := cfg.spec(kind)) is not None and (held := kind.memory(spec)))
    return Bound(
        base=BASE,
        series=series * PER_SERIES,
        in_flight=in_flight * PER_IN_FLIGHT,
        remembered=(answered + timed_out) * PER_REMEMBERED,
        sending=SENDING * MAX_BATCH_BYTES,
        kinds=kinds)
