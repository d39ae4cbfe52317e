"""The exporter's memory, bounded by its configuration (docs/configuration.md).

Every part of the exporter that grows with load has a limit the configuration
sets: probes in flight (`max_in_flight`, and no more than the rates times the
timeouts), ids remembered after an answer or a timeout (replies.MAX_REMEMBERED
each), one send's requests (bus.MAX_BATCH_BYTES), metric series, and what each
probe kind holds of its own (held WebSocket connections). Each kind's memory rule
(ProbeKind.memory) says what its part of the plan costs; `bound()` adds them up
with the costs of costs.py; `--config.check` prints it and a configuration whose
bound passes `max_memory` is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .costs import (BASE, MIB, PER_IN_FLIGHT, PER_REMEMBERED, PER_SERIES, SENDING, Cost)
from .probes.bus import MAX_BATCH_BYTES
from .probes.replies import MAX_REMEMBERED


@dataclass(frozen=True)
class Bound:
    """Each part's upper bound in bytes, and their sum."""

    base: int
    series: int
    in_flight: int
    remembered: int
    sending: int
    kinds: tuple[tuple[str, int], ...] = ()  # what each probe kind holds of its own

    @property
    def total(self) -> int:
        return (self.base + self.series + self.in_flight + self.remembered + self.sending
                + sum(b for _, b in self.kinds))

    def describe(self) -> str:
        parts = {"base": self.base, "series": self.series, "in flight": self.in_flight,
                 "remembered ids": self.remembered, "sending": self.sending, **dict(self.kinds)}
        # Rounded up: a bound, and a part of 0.4 MiB must not read "0".
        return ", ".join(f"{k} {-(-v // MIB):,}" for k, v in parts.items() if v)


def bound(costs: Iterable[tuple[str, Cost]], max_in_flight: int) -> Bound:
    """The bound of a plan whose kinds' rules gave `costs` (kind name, its cost)."""
    costs = list(costs)
    flows = [flow for _, c in costs for flow in c.flows]
    # Probes a second, and how many can be unanswered at once (rate × timeout).
    in_flight = min(max_in_flight, int(sum(r * t for r, t in flows)) + 1_000)
    # Answered ids live two timeouts, timed-out ones until counted lost (a timeout).
    answered = min(MAX_REMEMBERED, int(sum(r * 2 * t for r, t in flows)) + 1_000)
    timed_out = min(MAX_REMEMBERED, int(sum(r * t for r, t in flows)) + 1_000)
    return Bound(
        base=BASE,
        series=sum(c.series for _, c in costs) * PER_SERIES,
        in_flight=in_flight * PER_IN_FLIGHT,
        remembered=(answered + timed_out) * PER_REMEMBERED,
        sending=SENDING * MAX_BATCH_BYTES,
        kinds=tuple((name, c.held) for name, c in costs if c.held))
