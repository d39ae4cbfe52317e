"""The capacity targets as the load tests push them (scope, target key) and the
overview and the capacity ticket read them: the kind of quantity each key is —
which decides the unit it is shown in — and the keys no command measures yet."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass


def piped(pipeline: str) -> Callable[[str], str]:
    """A figure as an alert's template writes it: the template variable through
    `pipeline` (Prometheus's template functions)."""
    return lambda var: f"{{{{ {var} | {pipeline} }}}}"


# A comma each: every figure under a trillion grouped whole.
_GROUPING_PASSES = 3


def grouped(var: str) -> str:
    """The template variable `var`, a figure held against a minimum (operations/s,
    connections), as validate's report writes a number (nautilus_loadtest/validate.py):
    15,000 and 950 and 12.5 -- from 1,000 on whole, in groups of three digits, below it
    to one decimal, never an exponent. Cut, not rounded: 19,999.6 ops/s must not read
    "20,000" beside a required 20,000, nor 999.96 "1,000". Go's printf cannot group
    digits or cut, and `humanize` would write 19,999 as 20k: so regular expressions
    cut the decimals and group the whole number's digits, the last three, then any
    three before a comma (RE2 has no lookahead)."""
    cut = rf'{var} | printf "%.6f" | reReplaceAll `(\.\d)\d*$` `$1`'
    whole = rf"{cut} | reReplaceAll `\.\d$` `` | reReplaceAll `(\d)(\d{{3}})$` `$1,$2`"
    whole += r" | reReplaceAll `(\d)(\d{3}),` `$1,$2,`" * (_GROUPING_PASSES - 1)
    return (f"{{{{ if ge {var} 1000.0 }}}}{{{{ {whole} }}}}"
            f"{{{{ else }}}}{{{{ {cut} | reReplaceAll `\\.0$` `` }}}}{{{{ end }}}}")


@dataclass(frozen=True)
class Kind:
    name: str
    keys: str  # a regular expression over target keys, anchored as PromQL's =~ is
    # How an alert's template writes a figure of this kind, given the template
    # variable holding it (push.py pushes base units: seconds, ratios, operations per
    # second).
    figure: Callable[[str], str] = piped('printf "%.6g"')


# Every key of thresholds.yml (and the two improvement factors) is of exactly one kind
# (tests/test_dashboards.py checks every verdict validate gives).
THROUGHPUT = Kind("throughput", ".+_ops_per_second", lambda var: f"{grouped(var)} ops/s")
# An average, a quantile or a duration, in seconds
TIME = Kind("time", ".+_seconds", piped("humanizeDuration"))
RATIO = Kind("ratio", "error_ratio|cpu_busy_ratio", piped("humanizePercentage"))  # 0 to 1
# The containerized run over the monolith
FACTOR = Kind("factor", ".+_improvement_ratio", piped('printf "%.3g×"'))
COUNT = Kind("count", "websocket_connections", grouped)
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
