"""`nautilus-probe review`: the validate verdicts, computed with PromQL over a window
of what the exporter recorded. The query pack is QUERIES (docs/review.md)."""

from __future__ import annotations

from datetime import datetime, UTC
from typing import Any

from alerts.rules import recording_exprs
from exporter.metrics import NAMESPACE as P
from alerts.query import PrometheusAPI, QueryError
from nautilus_config.errors import UsageError
from nautilus_wire.protocol import BASELINE_ENGINE

from .provenance import iso, provenance
from .results import Baseline, Containerized, EngineFigures, LatencyBenchmark, ThroughputBenchmark

# The recording rules' own expressions, with their rates over the whole review
# window `$W` (end - start, in seconds); every query is evaluated at `end`.
RULES = recording_exprs("$W")


def _rule(name: str) -> str:
    return RULES[f"{P}:{name}"]


def _averaged(name: str) -> str:
    """A reported gauge's rule, averaged over the window."""
    return f"avg_over_time(({_rule(name)})[$W:])"


QUERIES: dict[str, str] = {
    "system_throughput": _averaged("system_throughput:reported"),
    "system_latency_seconds": _rule("system_latency_seconds:mean"),
    "system_latency_p95_seconds": _rule("system_latency_seconds:p95"),
    "system_error_ratio": _rule("system_error_ratio:rate"),
    "system_request_rate": _rule("system_request_rate:rate"),
    # By engine, the monolith included: it is the baseline's row.
    "engine_throughput": _averaged("engine_throughput:reported"),
    "engine_latency_seconds": _rule("engine_latency_seconds:mean"),
    "engine_latency_p95_seconds": _rule("engine_latency_seconds:p95"),
    "engine_error_ratio": _rule("engine_error_ratio:rate"),
}


class NoData(Exception):
    """The window holds no samples of the exporter: nothing to judge."""


def parse_time(text: str) -> float:
    """Unix seconds, or ISO 8601 (UTC if no zone)."""
    try:
        return float(text)
    except ValueError:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp()


def query(prometheus: str, expr: str, at: float) -> list[dict[str, Any]]:
    try:
        return PrometheusAPI(prometheus).instant(expr, at)
    except QueryError as exc:
        raise UsageError(f"Prometheus could not answer {expr!r}: {exc}") from None


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


def collect(prometheus: str, start: float, end: float) -> tuple[Baseline, Containerized]:
    """The results `validate` judges, from the window: (baseline, containerized)."""
    seconds = max(int(end - start), 1)
    got = {name: query(prometheus, expr.replace("$W", f"{seconds}s"), end)
           for name, expr in QUERIES.items()}
    if not _scalar(got["system_request_rate"]) and not any(
            v is not None for v in _by_engine(got["engine_latency_seconds"]).values()):
        raise NoData(f"no data in {prometheus} between {iso(start)} and {iso(end)}: no probe "
                     "was recorded in that window (is it the right Prometheus and window?)")
    sys_lat = _scalar(got["system_latency_seconds"])
    thr = _scalar(got["system_throughput"]) or 0.0
    errors = _scalar(got["system_error_ratio"])
    requests = (_scalar(got["system_request_rate"]) or 0.0) * seconds
    failed = int(round((errors or 0) * requests))
    engines_thr = _by_engine(got["engine_throughput"])
    engines_lat = _by_engine(got["engine_latency_seconds"])
    engines_err = _by_engine(got["engine_error_ratio"])
    base_lat = engines_lat.pop(BASELINE_ENGINE, None)
    base_p95 = _by_engine(got["engine_latency_p95_seconds"]).get(BASELINE_ENGINE)
    engines_thr.pop(BASELINE_ENGINE, None)
    engines_err.pop(BASELINE_ENGINE, None)
    meta = {"kind": "review", "prometheus": prometheus, "window_start": iso(start),
            "window_end": iso(end), "duration_seconds": end - start, **provenance(),
            "probes_in_window": int(round(requests))}
    baseline = Baseline(avg_latency=base_lat * 1e3 if base_lat is not None else None,
                        p95_latency=(base_p95 or 0) * 1e3, source="prometheus",
                        window=[start, end], metadata={**meta, "kind": "review (monolith probes)"})
    containerized = Containerized(
        LatencyBenchmark(avg_latency=sys_lat * 1e3 if sys_lat is not None else None,
                         p95_latency=(_scalar(got["system_latency_p95_seconds"]) or 0) * 1e3,
                         sample_count=int(round(requests)) - failed, errors=failed),
        # What the platform did, not a closed-loop maximum: its self-reported ops/s. No
        # capacity run, so no trading requests/s to hold against the monolith's.
        ThroughputBenchmark(max_ops_per_second=thr, test_duration=end - start),
        {e: EngineFigures(throughput=engines_thr.get(e),
                          latency=lat * 1e3 if (lat := engines_lat.get(e)) is not None else None,
                          error_rate=engines_err.get(e))
         for e in sorted(set(engines_thr) | set(engines_lat) | set(engines_err))},
        source="prometheus", window=[start, end], metadata=meta)
    return baseline, containerized
