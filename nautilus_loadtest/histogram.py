"""A mergeable latency histogram for benchmark results.

Log-spaced buckets 1 % wide from 1 µs, stored sparsely: percentiles are within
1 % of the exact sample percentile, and histograms from several worker
processes merge exactly by adding counts (never by averaging percentiles).
"""

from __future__ import annotations

import math
from typing import Any

GROWTH = 1.01
FLOOR_S = 1e-6
_LOG_G = math.log(GROWTH)


class LatencyHistogram:
    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = 0.0

    @staticmethod
    def _bucket(seconds: float) -> int:
        """Bucket k holds (FLOOR * g**(k-1), FLOOR * g**k]."""
        if seconds <= FLOOR_S:
            return 0
        return math.ceil(math.log(seconds / FLOOR_S) / _LOG_G - 1e-9)

    def record(self, seconds: float) -> None:
        k = self._bucket(seconds)
        self.counts[k] = self.counts.get(k, 0) + 1
        self.count += 1
        self.sum += seconds
        self.min = min(self.min, seconds)
        self.max = max(self.max, seconds)

    def merge(self, other: LatencyHistogram) -> LatencyHistogram:
        for k, n in other.counts.items():
            self.counts[k] = self.counts.get(k, 0) + n
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        return self

    def quantile(self, q: float) -> float:
        """The q-quantile (0..1): the geometric middle of the bucket holding it,
        clamped to the observed min and max."""
        if self.count == 0:
            return math.nan
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for k in sorted(self.counts):
            seen += self.counts[k]
            if seen >= rank:
                mid = FLOOR_S * GROWTH ** (k - 0.5) if k > 0 else FLOOR_S
                return min(max(mid, self.min), self.max)
        return self.max

    @property
    def mean(self) -> float:
        return self.sum / self.count if self.count else math.nan

    def summary_ms(self) -> dict[str, Any]:
        """The migration plan's latency keys, in milliseconds, plus the full percentiles."""
        if not self.count:
            return {"sample_count": 0}
        ms = 1e3
        return {"avg_latency": self.mean * ms, "min_latency": self.min * ms,
                "max_latency": self.max * ms, "p50_latency": self.quantile(0.5) * ms,
                "p90_latency": self.quantile(0.9) * ms, "p95_latency": self.quantile(0.95) * ms,
                "p99_latency": self.quantile(0.99) * ms, "p999_latency": self.quantile(0.999) * ms,
                "sample_count": self.count}

    def to_json(self) -> dict[str, Any]:
        return {"growth": GROWTH, "floor_s": FLOOR_S, "count": self.count, "sum": self.sum,
                "min": self.min if self.count else None, "max": self.max,
                "buckets": {str(k): n for k, n in sorted(self.counts.items())}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LatencyHistogram:
        if data.get("growth") != GROWTH or data.get("floor_s") != FLOOR_S:
            raise ValueError("histogram has another bucket layout")
        h = cls()
        h.counts = {int(k): int(n) for k, n in data["buckets"].items()}
        h.count, h.sum, h.max = int(data["count"]), float(data["sum"]), float(data["max"])
        h.min = math.inf if data["min"] is None else float(data["min"])
        return h
