"""`nautilus-probe review`: the validate verdicts, computed with PromQL over a window
of what the exporter recorded. The query pack is QUERIES (docs/review.md)."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from typing import Any

from nautilus_wire.protocol import BASELINE_ENGINE

NB = f'engine!="{BASELINE_ENGINE}"'
MONO = f'engine="{BASELINE_ENGINE}"'
P = "nautilus_probe"

# $W is the review window (end - start, in seconds); every query is evaluated at `end`.
QUERIES: dict[str, str] = {
    "system_throughput": f"sum(max by (engine) (avg_over_time({P}_engine_reported_operations_per_second{{{NB}}}[$W])))",
    "system_latency_seconds": f"sum(increase({P}_trading_request_latency_seconds_sum[$W])) / "
                              f"sum(increase({P}_trading_request_latency_seconds_count[$W]))",
    "system_latency_p95_seconds": f"histogram_quantile(0.95, sum by (le) (increase({P}_trading_request_latency_seconds_bucket[$W])))",
    "system_error_ratio": f"sum(increase({P}_failures_total{{{NB}}}[$W])) / sum(increase({P}_requests_total{{{NB}}}[$W]))",
    "system_requests": f"sum(increase({P}_requests_total{{{NB}}}[$W]))",
    "baseline_latency_seconds": f"sum(increase({P}_latency_seconds_sum{{{MONO}}}[$W])) / "
                                f"sum(increase({P}_latency_seconds_count{{{MONO}}}[$W]))",
    "baseline_latency_p95_seconds": f"histogram_quantile(0.95, sum by (le) (increase({P}_latency_seconds_bucket{{{MONO}}}[$W])))",
    "engine_throughput": f"max by (engine) (avg_over_time({P}_engine_reported_operations_per_second{{{NB}}}[$W]))",
    "engine_latency_seconds": f"sum by (engine) (increase({P}_latency_seconds_sum{{{NB}}}[$W])) / "
                              f"sum by (engine) (increase({P}_latency_seconds_count{{{NB}}}[$W]))",
    "engine_error_ratio": f"sum by (engine) (increase({P}_failures_total{{{NB}}}[$W])) / "
                          f"sum by (engine) (increase({P}_requests_total{{{NB}}}[$W]))",
}


def parse_time(text: str) -> float:
    """Unix seconds, or ISO 8601 (UTC if no zone)."""
    try:
        return float(text)
    except ValueError:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.timestamp()


def query(prometheus: str, expr: str, at: float) -> list[dict[str, Any]]:
    url = f"{prometheus.rstrip('/')}/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": at})
    with urllib.request.urlopen(url, timeout=30) as resp:
        body = json.load(resp)
    if body.get("status") != "success":
        raise ValueError(f"Prometheus refused {expr!r}: {body.get('error')}")
    return body["data"]["result"]


def _scalar(result: list[dict[str, Any]]) -> float | None:
    if not result:
        return None
    value = float(result[0]["value"][1])
    return None if value != value else value  # NaN: no data in the window


def _by_engine(result: list[dict[str, Any]]) -> dict[str, float | None]:
    out = {}
    for r in result:
        v = float(r["value"][1])
        out[r["metric"].get("engine", "")] = None if v != v else v
    return out


def collect(prometheus: str, start: float, end: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """Results in the shapes `validate` reads: (baseline, containerized)."""
    window = f"{max(int(end - start), 1)}s"
    got = {name: query(prometheus, expr.replace("$W", window), end) for name, expr in QUERIES.items()}
    base_lat = _scalar(got["baseline_latency_seconds"])
    sys_lat = _scalar(got["system_latency_seconds"])
    thr = _scalar(got["system_throughput"]) or 0.0
    errors = _scalar(got["system_error_ratio"])
    requests = _scalar(got["system_requests"]) or 0.0
    failed = int(round((errors or 0) * requests))
    engines_thr = _by_engine(got["engine_throughput"])
    engines_lat = _by_engine(got["engine_latency_seconds"])
    engines_err = _by_engine(got["engine_error_ratio"])
    baseline = {"throughput": None, "avg_latency": base_lat * 1e3 if base_lat is not None else None,
                "p95_latency": (_scalar(got["baseline_latency_p95_seconds"]) or 0) * 1e3,
                "source": "prometheus", "window": [start, end]}
    containerized = {
        "latency_benchmark": {"avg_latency": sys_lat * 1e3 if sys_lat is not None else None,
                              "p95_latency": (_scalar(got["system_latency_p95_seconds"]) or 0) * 1e3,
                              "sample_count": int(requests) - failed, "errors": failed},
        # What the platform did, not a closed-loop maximum: its self-reported ops/s.
        "throughput_benchmark": {"max_throughput": thr, "total_requests": 0,
                                 "test_duration": end - start, "concurrent_workers": 0, "errors": 0},
        "scalability_benchmark": {
            e: {"throughput": engines_thr.get(e),
                "latency": engines_lat[e] * 1e3 if engines_lat.get(e) is not None else None,
                "error_rate": engines_err.get(e)}
            for e in sorted(set(engines_thr) | set(engines_lat) | set(engines_err))},
        "source": "prometheus", "window": [start, end]}
    return baseline, containerized
