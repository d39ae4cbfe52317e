"""Raw results into reports: merging workers' results exactly (counts add,
histograms merge), the typed results (results.py) with full percentiles, and the
text table `loadtest` prints."""

from __future__ import annotations

from typing import Any

from nautilus_wire.protocol import TRADING_REQUEST_LEGS

from . import failovers
from .histogram import LatencyHistogram
from .results import (Baseline, BusPublish, ConnectionTest, Containerized, EngineFigures, Latency,
                      LatencyBenchmark, MessageThroughput, Result, Sustained, SustainedStep,
                      ThroughputBenchmark, WebSocketRun)


def merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge workers' raw results exactly: histograms and counts add."""
    merged: dict[str, Any] = {"kind": results[0]["kind"]}

    def phase(parts: list[dict[str, Any]]) -> dict[str, Any]:
        hist = LatencyHistogram()
        for p in parts:
            hist.merge(LatencyHistogram.from_json(p["histogram"]))
        return {"duration": max(p["duration"] for p in parts),
                "errors": sum(p["errors"] for p in parts), "histogram": hist.to_json()}

    if merged["kind"] == "baseline":
        merged.update(phase(results))
        merged["failovers"] = failovers.merged(results)
    elif merged["kind"] == "websocket":
        merged.update(phase(results))
        connects = LatencyHistogram()
        for r in results:
            connects.merge(LatencyHistogram.from_json(r["connect_histogram"]))
        merged["connect_histogram"] = connects.to_json()
        for key in ("connections", "connect_failures", "messages_sent", "error_replies", "timeouts"):
            merged[key] = sum(r[key] for r in results)
        merged["open_seconds"] = max(r["open_seconds"] for r in results)
    else:
        for key in results[0]:
            if key in ("p99_target", "error_ratio_target"):
                merged[key] = results[0][key]
            elif key == "sustained":
                depth = min(len(r[key]) for r in results)
                merged[key] = [{**phase([r[key][i] for r in results]),
                                "rate": sum(r[key][i]["rate"] for r in results)}
                               for i in range(depth)]
            elif key == "failovers":
                merged[key] = failovers.merged(results)
            elif key == "messagebus":
                parts = [r[key] for r in results if key in r]
                merged[key] = {"acknowledged": sum(p["acknowledged"] for p in parts),
                               "failed_flushes": sum(p["failed_flushes"] for p in parts),
                               "duration": max(p["duration"] for p in parts)}
            elif key != "kind":
                merged[key] = phase([r[key] for r in results if key in r])
    return merged


def latency(hist: LatencyHistogram) -> Latency:
    """The plan's latency keys, in milliseconds, plus the full percentiles."""
    return Latency(**hist.summary_ms())


def report(raw: dict[str, Any], workers: int, concurrency: int) -> Result:
    """The migration plan's results (latencies in ms; trading requests/s for the
    monolith and the composite, ops/s per engine), plus percentiles."""
    def stats(p: dict[str, Any]) -> tuple[LatencyHistogram, float]:
        return LatencyHistogram.from_json(p["histogram"]), max(p["duration"], 1e-9)

    if raw["kind"] == "baseline":
        hist, dur = stats(raw)
        return Baseline(throughput=hist.count / dur, throughput_per_worker=hist.count / dur / workers,
                        avg_latency=hist.mean * 1e3, p95_latency=hist.quantile(0.95) * 1e3,
                        total_requests=hist.count, errors=raw["errors"], test_duration=dur,
                        workers=workers, latency=latency(hist), raw=raw,
                        failovers=raw.get("failovers", []))
    if raw["kind"] == "websocket":
        hist, dur = stats(raw)
        connects = LatencyHistogram.from_json(raw["connect_histogram"])
        sent, asked = raw["messages_sent"], raw["connections"]
        return WebSocketRun(
            ConnectionTest(
                total_connections=asked, successful_connections=connects.count,
                success_rate=connects.count / asked if asked else None,
                avg_connect_time=connects.mean * 1e3 if connects.count else None,
                max_connect_time=connects.max * 1e3 if connects.count else None,
                connect_failures=raw["connect_failures"], open_seconds=raw["open_seconds"]),
            MessageThroughput(
                connections=asked, duration=dur, messages_sent=sent, messages_received=hist.count,
                error_replies=raw["error_replies"], timeouts=raw["timeouts"],
                success_rate=hist.count / sent if sent else None,
                messages_per_second=hist.count / dur, latency=latency(hist)),
            workers=workers, raw=raw)
    lat, _ = stats(raw["latency"])
    thr, thr_dur = stats(raw["throughput"])
    engines = {}
    for key, part in raw.items():
        if key.startswith("engine:"):
            h, d = stats(part)
            total = h.count + part["errors"]
            engines[key.split(":", 1)[1]] = EngineFigures(
                throughput=h.count / d, latency=h.mean * 1e3 if h.count else None,
                error_rate=part["errors"] / total if total else None)
    return Containerized(
        LatencyBenchmark(**lat.summary_ms(), errors=raw["latency"]["errors"]),
        ThroughputBenchmark(max_throughput=thr.count / thr_dur,
                            # each trading request is one operation per leg
                            max_ops_per_second=thr.count / thr_dur * len(TRADING_REQUEST_LEGS),
                            legs=len(TRADING_REQUEST_LEGS), total_requests=thr.count,
                            test_duration=thr_dur, concurrent_workers=concurrency * workers,
                            errors=raw["throughput"]["errors"]),
        engines, _bus_report(raw), sustained_report(raw), workers=workers, raw=raw,
        failovers=raw.get("failovers", []))


def within(errors: int, ok: int, p99_s: float | None, opts: dict[str, Any]) -> bool:
    """A sustained-rate step passes: answers came, p99 and the error ratio within target."""
    if not ok or p99_s is None or p99_s > opts["p99_target"]:
        return False
    return bool(errors / (errors + ok) <= opts.get("error_ratio_target", 0.0))


def sustained_report(raw: dict[str, Any]) -> Sustained:
    steps = []
    target = raw.get("p99_target")
    error_target = raw.get("error_ratio_target", 0.0)
    limits = {"p99_target": target, "error_ratio_target": error_target}
    ok = []
    for step in raw.get("sustained", []):
        h = LatencyHistogram.from_json(step["histogram"])
        p99 = h.quantile(0.99) if h.count else None
        steps.append(SustainedStep(step["rate"], step["errors"], h.count,
                                   p99 * 1e3 if p99 is not None else None))
        if target is not None and within(step["errors"], h.count, p99, limits):
            ok.append(step["rate"])
    return Sustained(max(ok, default=0.0), target * 1e3 if target else None, error_target, steps)


def _bus_report(raw: dict[str, Any]) -> BusPublish | None:
    bus = raw.get("messagebus")
    if bus is None:
        return None
    return BusPublish(bus["acknowledged"] / max(bus["duration"], 1e-9), bus["acknowledged"],
                      bus["duration"], bus["failed_flushes"])


def summary_table(r: Result) -> str:
    if isinstance(r, WebSocketRun):
        c, m = r.connection_test, r.message_throughput
        rows = [("connections opened", f"{c.successful_connections} / {c.total_connections}"),
                ("time to open (s)", c.open_seconds),
                ("connect avg / max (ms)",
                 f"{c.avg_connect_time or 0:.2f} / {c.max_connect_time or 0:.2f}"),
                ("heartbeats sent / acked", f"{m.messages_sent} / {m.messages_received}"),
                ("error replies, timeouts", f"{m.error_replies}, {m.timeouts}"),
                ("acked per second", m.messages_per_second),
                ("p50 / p99 (ms)", f"{m.latency.p50_latency or 0:.2f} / {m.latency.p99_latency or 0:.2f}")]
    elif isinstance(r, Baseline):
        rows = [("throughput (trading requests/s)", r.throughput),
                ("per worker (trading requests/s)", r.throughput_per_worker),
                ("avg latency (ms)", r.avg_latency), ("p95 latency (ms)", r.p95_latency),
                ("p99 latency (ms)", _or_nan(r.latency.p99_latency)),
                ("requests", r.total_requests), ("errors", r.errors),
                ("duration (s)", r.test_duration)]
    else:
        lb, tb = r.latency_benchmark, r.throughput_benchmark
        rows = [("e2e avg latency (ms)", _or_nan(lb.avg_latency)),
                ("e2e p95 / p99 (ms)", f"{lb.p95_latency or 0:.2f} / {lb.p99_latency or 0:.2f}"),
                ("max throughput (trading requests/s)", tb.max_throughput),
                ("  = engine operations/s", tb.max_ops_per_second),
                ("in flight", tb.concurrent_workers)]
        if r.sustained_benchmark:
            rows.append(("sustained rate, p99 <= target (trading requests/s)",
                         r.sustained_benchmark.max_rate))
        if r.messagebus_benchmark:
            rows.append(("MessageBus publish (msgs/s)", r.messagebus_benchmark.message_throughput))
        for engine, e in r.scalability_benchmark.items():
            rows.append((f"{engine} (ops/s, ms, err)",
                         f"{e.throughput or 0:.0f}, {e.latency or 0:.2f}, {e.error_rate or 0:.4f}"))
    rows += failovers.lines(getattr(r, "failovers", []))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v:.2f}" if isinstance(v, float) else f"{k:<{width}}  {v}"
                     for k, v in rows)


def _or_nan(v: float | None) -> float:
    return float("nan") if v is None else v
