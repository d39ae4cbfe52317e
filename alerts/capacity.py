"""The capacity targets as the load tests push them (scope, target key) and the
overview and the capacity ticket read them: the kind of quantity each key is —
which decides the unit it is shown in — and the keys no command measures yet."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    name: str
    keys: str  # a regular expression over target keys, anchored as PromQL's =~ is
    # How an alert's template writes a figure of this kind (push.py pushes base units:
    # seconds, ratios, operations per second).
    template: str = 'printf "%.6g"'


# Every key of thresholds.yml (and the two improvement factors) is of exactly one kind
# (tests/test_dashboards.py checks every verdict validate gives).
THROUGHPUT = Kind("throughput", ".+_ops_per_second", 'printf "%.6g ops/s"')  # operations/s
# An average, a quantile or a duration, in seconds
TIME = Kind("time", ".+_seconds", "humanizeDuration")
RATIO = Kind("ratio", "error_ratio|cpu_busy_ratio", "humanizePercentage")  # a share, 0 to 1
# The containerized run over the monolith
FACTOR = Kind("factor", ".+_improvement_ratio", 'printf "%.3g×"')
COUNT = Kind("count", "websocket_connections")
KINDS = (THROUGHPUT, TIME, RATIO, FACTOR, COUNT)

# Targets no nautilus-probe command measures yet: validate reports them "not measured"
# saying so, and the overview says so instead of "no load test yet".
NO_COMMAND = frozenset({"cpu_busy_ratio", "full_cycle_seconds"})


def kind(key: str) -> Kind:
    """The kind of the target `key`; ValueError for a key of none."""
    found = [k for k in KINDS if re.fullmatch(k.keys, key)]
    if len(found) != 1:
        raise ValueError(f"capacity target {key!r} is of {len(found)} kinds, not one")
    return found[0]
