"""The mergeable benchmark histogram."""

from __future__ import annotations

import math
import random

import pytest

from nautilus_loadtest.histogram import LatencyHistogram


def samples(n: int, seed: int, median: float = 0.02) -> list[float]:
    rng = random.Random(seed)
    return [rng.lognormvariate(math.log(median), 0.6) for _ in range(n)]


def test_merged_workers_equal_one_histogram_of_all_samples() -> None:
    a, b = samples(20000, 1), samples(13000, 2, median=0.04)  # the second worker is slower
    ha, hb, hall = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for s in a:
        ha.record(s)
    for s in b:
        hb.record(s)
    for s in a + b:
        hall.record(s)
    merged = LatencyHistogram.from_json(ha.to_json()).merge(LatencyHistogram.from_json(hb.to_json()))
    for q in (0.5, 0.9, 0.95, 0.99, 0.999):
        assert merged.quantile(q) == hall.quantile(q)
    assert merged.count == 33000 and merged.counts == hall.counts
    assert merged.mean == pytest.approx(hall.mean, rel=1e-12)
    assert (merged.min, merged.max) == (min(a + b), max(a + b))
    # Averaging the workers' percentiles would have been wrong, by more than 5 %.
    exact = sorted(a + b)[int(0.99 * len(a + b))]
    assert merged.quantile(0.99) == pytest.approx(exact, rel=0.01)
    averaged = (ha.quantile(0.99) + hb.quantile(0.99)) / 2
    assert abs(averaged - exact) / exact > 0.05, (averaged, exact)


def test_percentiles_within_one_percent_of_exact() -> None:
    data = samples(50000, 3)
    h = LatencyHistogram()
    for s in data:
        h.record(s)
    exact = sorted(data)
    for q in (0.5, 0.95, 0.99):
        truth = exact[math.ceil(q * len(exact)) - 1]
        assert h.quantile(q) == pytest.approx(truth, rel=0.01)
    assert h.mean == pytest.approx(sum(data) / len(data))
