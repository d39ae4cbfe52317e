"""How much a figure can be trusted: the rules that decide whether a load test's
figure establishes anything before it is judged against its target.

A figure from too little evidence is reported as "not established" (with what it
lacked), never as met or missed: a p99 from 409 samples is one of its four
slowest requests, and a rate from a 1.4 s step is mostly its start-up. Each rule
returns None when the figure is established, else the reason in words.
"""

from __future__ import annotations

# A rate (ops/s, a sustained step, held connections) must be measured over at least
# this long: shorter, and the ramp-up and the last in-flight requests dominate it.
MIN_RATE_SECONDS = 10.0
# A quantile q needs this many samples beyond it: p99 from >= 1,000, p95 from >= 200.
TAIL_SAMPLES = 10
# An average needs this many samples: one slow request must not decide it.
MIN_AVERAGE_SAMPLES = 100
# A ratio's limit r needs 10 / r requests (1 % from >= 1,000): ten failures would cross it.
RATIO_EVENTS = 10


def _n(v: float) -> str:
    return f"{v:,.0f}"


def rate(duration: float | None) -> str | None:
    """A rate measured over `duration` seconds."""
    if duration is None:
        return "the result does not say how long it was measured"
    if duration < MIN_RATE_SECONDS:
        return f"measured over {duration:.1f} s (needs {MIN_RATE_SECONDS:g} s)"
    return None


def quantile_samples(q: float) -> int:
    return int(round(TAIL_SAMPLES / (1 - q)))


def quantile(q: float, samples: int | None) -> str | None:
    """The q quantile (0.99) of `samples` values."""
    need = quantile_samples(q)
    if samples is None:
        return "the result does not say how many samples it had"
    if samples < need:
        return f"p{q * 100:g} from {_n(samples)} samples (needs {_n(need)})"
    return None


def average(samples: int | None) -> str | None:
    if samples is None:
        return "the result does not say how many samples it had"
    if samples < MIN_AVERAGE_SAMPLES:
        return f"an average of {_n(samples)} samples (needs {_n(MIN_AVERAGE_SAMPLES)})"
    return None


def ratio(limit: float | None, requests: int | None) -> str | None:
    """A ratio judged against `limit` (0.01) from `requests` requests."""
    if requests is None:
        return "the result does not say how many requests it had"
    if not limit:
        return None if requests else "no requests"
    need = int(round(RATIO_EVENTS / limit))
    if requests < need:
        return f"{_n(requests)} requests (a limit of {limit:g} needs {_n(need)})"
    return None


def sustained_step(duration: float | None, samples: int | None) -> str | None:
    """A sustained-rate step: its rate over `duration` and its p99 of `samples`."""
    return first(rate(duration), quantile(0.99, samples))


def marked(figure: str, problem: str | None) -> str:
    """A figure as the report and the console show it: followed by what it lacked
    when its evidence does not establish it."""
    return figure if problem is None else f"{figure} (not established: {problem})"


def first(*problems: str | None) -> str | None:
    """The first problem of several figures a verdict rests on."""
    return next((p for p in problems if p), None)
