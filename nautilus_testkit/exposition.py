"""Reading numbers back out of an exposition, the way Prometheus would."""

from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


class MissingSeries(AssertionError):
    """No sample of that name and labels is exported: a renamed or never-created
    metric must fail the test, not read as 0."""


def value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`; MissingSeries if
    there is none (polling helpers keep waiting on it)."""
    total, found = 0.0, False
    for (n, lbls), v in samples(text).items():
        if n == name and all((k, val) in lbls for k, val in labels.items()):
            total += v
            found = True
    if not found:
        raise MissingSeries(f"no series {name}{labels or ''} in the exposition")
    return total


def buckets(text: str, name: str, **labels: str) -> list[tuple[float, float]]:
    """Cumulative (upper bound, count) pairs of a histogram, summed over other labels."""
    acc: dict[float, float] = {}
    for (n, lbls), v in samples(text).items():
        if n != f"{name}_bucket" or not all((k, val) in lbls for k, val in labels.items()):
            continue
        le = float(dict(lbls)["le"])
        acc[le] = acc.get(le, 0.0) + v
    return sorted(acc.items())


def bucket_delta(before: str, after: str, name: str, **labels: str) -> list[tuple[float, float]]:
    """What a histogram gained between two scrapes, as cumulative (le, count) pairs."""
    b0 = dict(buckets(before, name, **labels))
    return [(le, c - b0.get(le, 0.0)) for le, c in buckets(after, name, **labels)]


def histogram_quantile(q: float, cumulative: list[tuple[float, float]]) -> float:
    """PromQL's histogram_quantile: linear interpolation inside the bucket."""
    total = cumulative[-1][1]
    if total == 0:
        return math.nan
    rank = q * total
    prev_le, prev_count = 0.0, 0.0
    for le, count in cumulative:
        if count >= rank:
            if math.isinf(le):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_count) / max(count - prev_count, 1e-12)
        prev_le, prev_count = le, count
    return math.nan
