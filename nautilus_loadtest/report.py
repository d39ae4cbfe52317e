"""Raw results into reports: merging workers' results exactly (counts add,
histograms merge), the typed results (results.py) with full percentiles, the text
table `loadtest` prints, and what it shares with validate's report: which sustained
steps count, and how other clients' requests are said."""

from __future__ import annotations

from typing import Any

from alerts.thresholds import Thresholds
from nautilus_wire.protocol import TRADING_REQUEST_LEGS

from . import evidence, failovers
from .histogram import LatencyHistogram
from .results import (Baseline, BusPublish, ConnectionTest, Containerized, Contamination,
                      EngineFigures, Latency, LatencyBenchmark, MessageThroughput, Result,
                      Sustained, SustainedStep, ThroughputBenchmark, WebSocketRun)


def merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge workers' raw results exactly: histograms and counts add."""
    merged: dict[str, Any] = {"kind": results[0]["kind"]}
    if all("requests_sent" in r for r in results):
        merged["requests_sent"] = sum(r["requests_sent"] for r in results)

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
            elif key not in ("kind", "requests_sent"):
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
    engines: dict[str, EngineFigures] = {}
    operations: dict[str, EngineFigures] = {}
    for key, part in raw.items():
        if key.startswith(("engine:", "operation:")):
            h, d = stats(part)
            total = h.count + part["errors"]
            figures = EngineFigures(
                throughput=h.count / d, latency=h.mean * 1e3 if h.count else None,
                error_rate=part["errors"] / total if total else None, samples=h.count,
                errors=part["errors"], test_duration=part["duration"])
            kind, name = key.split(":", 1)
            (engines if kind == "engine" else operations)[name] = figures
    return Containerized(
        LatencyBenchmark(**lat.summary_ms(), errors=raw["latency"]["errors"],
                         test_duration=raw["latency"]["duration"]),
        ThroughputBenchmark(max_throughput=thr.count / thr_dur,
                            # each trading request is one operation per leg
                            max_ops_per_second=thr.count / thr_dur * len(TRADING_REQUEST_LEGS),
                            legs=len(TRADING_REQUEST_LEGS), total_requests=thr.count,
                            test_duration=thr_dur, concurrent_workers=concurrency * workers,
                            errors=raw["throughput"]["errors"]),
        engines, operations or None, _bus_report(raw), sustained_report(raw), workers=workers,
        raw=raw, failovers=raw.get("failovers", []))


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
                                   p99 * 1e3 if p99 is not None else None, step.get("duration")))
        if target is not None and within(step["errors"], h.count, p99, limits):
            ok.append(step["rate"])
    return Sustained(max(ok, default=0.0), target * 1e3 if target else None, error_target, steps)


def _bus_report(raw: dict[str, Any]) -> BusPublish | None:
    bus = raw.get("messagebus")
    if bus is None:
        return None
    return BusPublish(bus["acknowledged"] / max(bus["duration"], 1e-9), bus["acknowledged"],
                      bus["duration"], bus["failed_flushes"])


def step_problem(st: SustainedStep) -> str | None:
    """What a sustained-rate step lacks to establish its rate and its p99 (evidence.py)."""
    return evidence.sustained_step(st.duration, st.count)


def step_within(st: SustainedStep, sb: Sustained) -> bool:
    """A step within both targets: `within`, the run's own rule, on the result's figures."""
    if sb.p99_target is None or st.p99_latency is None:
        return False
    return within(st.errors, st.count, st.p99_latency / 1e3,
                  {"p99_target": sb.p99_target / 1e3, "error_ratio_target": sb.error_ratio_target})


def sustained_rate(sb: Sustained) -> float | None:
    """The highest rate within both targets, from established steps only: None when no
    established step was within both."""
    return max((st.rate for st in sb.steps if step_problem(st) is None and step_within(st, sb)),
               default=None)


def no_sustained_rate(sb: Sustained) -> str:
    """Why a run established no sustained rate (sustained_rate is None)."""
    if any(step_within(st, sb) for st in sb.steps):
        return "no step within both targets was long enough and sampled enough"
    if sb.steps:
        return (f"no step was within both targets, not even the first, at "
                f"{sb.steps[0].rate:,.4g} trading requests/s")
    return "no step was run"


def others(c: Contamination | None, service: str, prefix: str) -> str | None:
    """Other clients' requests during a run, in a sentence, when there were any."""
    if c is None or not c.foreign_requests:
        return None
    own = ""
    if c.own_requests is not None:
        share = c.foreign_requests / (c.foreign_requests + c.own_requests)
        own = f", beside its own {c.own_requests:,} ({share * 100:.1f} % of all)"
    return (f"{c.foreign_requests:,} requests from other clients reached the {service} on "
            f"prefix {prefix} during the run{own}: an exporter probing that prefix, or another "
            "load test. Its figures include the load they added")


def others_cell(c: Contamination | None) -> str:
    """A run's other clients, as a console row or a report cell says it."""
    if c is None:
        return "not counted"
    if not c.checked:
        return "not counted (the pubsub transport keeps no count)"
    if not c.foreign_requests:
        return "none"
    own = "" if c.own_requests is None else f" beside the run's {c.own_requests:,}"
    return f"{c.foreign_requests:,} requests{own}"


def _fig(value: float | None, problem: str | None = None, spec: str = ".2f") -> str:
    """A figure as the console shows it, marked as the report marks it."""
    if value is None:
        return "not measured"
    return evidence.marked(format(value, spec), problem)


def summary_table(r: Result, t: Thresholds) -> str:
    """The console's table of a run: each figure marked "not established" as the
    report marks it when its evidence cannot establish it (evidence.py)."""
    rows: list[tuple[str, Any]]
    if isinstance(r, WebSocketRun):
        c, m = r.connection_test, r.message_throughput
        acked = m.messages_received
        rows = [("connections opened",
                 evidence.marked(f"{c.successful_connections} / {c.total_connections}",
                                 evidence.rate(m.duration))),
                ("time to open (s)", _fig(c.open_seconds)),
                ("connect avg / max (ms)",
                 f"{_fig(c.avg_connect_time, evidence.average(c.successful_connections))} / "
                 f"{_fig(c.max_connect_time)}"),
                ("heartbeats sent / acked", f"{m.messages_sent} / {acked}"),
                ("error replies, timeouts", f"{m.error_replies}, {m.timeouts}"),
                ("acked per second", _fig(m.messages_per_second, evidence.rate(m.duration))),
                ("p50 heartbeat (ms)",
                 _fig(m.latency.p50_latency, evidence.quantile(0.5, acked))),
                ("p99 heartbeat (ms)",
                 _fig(m.latency.p99_latency, evidence.quantile(0.99, acked)))]
    elif isinstance(r, Baseline):
        n, rate = r.total_requests, evidence.rate(r.test_duration)
        rows = [("throughput (trading requests/s)", _fig(r.throughput, rate)),
                ("per worker (trading requests/s)", _fig(r.throughput_per_worker, rate)),
                ("avg latency (ms)", _fig(r.avg_latency, evidence.average(n))),
                ("p95 latency (ms)", _fig(r.p95_latency, evidence.quantile(0.95, n))),
                ("p99 latency (ms)", _fig(r.latency.p99_latency, evidence.quantile(0.99, n))),
                ("requests", n), ("errors", r.errors), ("duration (s)", _fig(r.test_duration)),
                ("requests from other clients", others_cell(r.contamination))]
    else:
        lb, tb = r.latency_benchmark, r.throughput_benchmark
        n, rate = lb.sample_count, evidence.rate(tb.test_duration)
        rows = [("e2e avg latency (ms)", _fig(lb.avg_latency, evidence.average(n))),
                ("e2e p95 latency (ms)", _fig(lb.p95_latency, evidence.quantile(0.95, n))),
                ("e2e p99 latency (ms)", _fig(lb.p99_latency, evidence.quantile(0.99, n))),
                ("max throughput (trading requests/s)", _fig(tb.max_throughput, rate)),
                ("  = engine operations/s", _fig(tb.max_ops_per_second, rate)),
                ("in flight", tb.concurrent_workers)]
        if r.sustained_benchmark:
            best = sustained_rate(r.sustained_benchmark)
            rows.append(("sustained rate, p99 <= target (trading requests/s)",
                         f"not established ({no_sustained_rate(r.sustained_benchmark)})"
                         if best is None
                         else _fig(best)))
        if r.messagebus_benchmark:
            bus = r.messagebus_benchmark
            rows.append(("MessageBus publish (msgs/s)",
                         _fig(bus.message_throughput, evidence.rate(bus.test_duration))))
        limit = t.engine["error_ratio"].max
        for engine, e in r.scalability_benchmark.items():
            requests = None if e.samples is None else e.samples + (e.errors or 0)
            rows.append((f"{engine} (ops/s, ms, err)",
                         f"{_fig(e.throughput, evidence.rate(e.test_duration), '.0f')}, "
                         f"{_fig(e.latency, evidence.average(e.samples))}, "
                         f"{_fig(e.error_rate, evidence.ratio(limit, requests), '.4f')}"))
        rows.append(("requests from other clients", others_cell(r.contamination)))
    rows += failovers.lines(getattr(r, "failovers", []))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
