"""Recording and alerting rules, generated from the thresholds file.

Every alert is a function of the thresholds; `python -m alerts` writes
alerts/generated/{recording,alerts,tests}.yml. tests/test_alerts.py fails when
the committed files differ from a fresh generation.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from exporter.metrics import NAMESPACE as P
from nautilus_wire.protocol import BASELINE_ENGINE

from .thresholds import Limit, Thresholds

# Every series of the containerized system; the monolith is the baseline.
NOT_BASELINE = f'engine!="{BASELINE_ENGINE}"'
BASELINE = f'engine="{BASELINE_ENGINE}"'
JOB = "nautilus-probe"  # the Prometheus job scraping the exporter(s)


def window(seconds: float) -> str:
    """Prometheus duration text: 300 -> 5m, 30 -> 30s."""
    s = int(round(seconds))
    for unit, size in (("h", 3600), ("m", 60)):
        if s % size == 0 and s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


def recording_exprs(w: str) -> dict[str, str]:
    """Every recorded series and its expression, with rates over window `w`. The
    review evaluates the same expressions over its whole window."""

    def rate(metric: str, by: str = "engine", sel: str = "") -> str:
        inner = f"rate({metric}{{{sel}}}[{w}])" if sel else f"rate({metric}[{w}])"
        return f"sum by ({by}) ({inner})" if by else f"sum({inner})"

    lat = f"{P}_latency_seconds"
    trade = f"{P}_trading_request_latency_seconds"
    return {
        # Per engine, from the probes.
        f"{P}:engine_probe_throughput:rate": rate(f"{lat}_count"),
        f"{P}:engine_latency_seconds:mean": f"{rate(f'{lat}_sum')} / {rate(f'{lat}_count')}",
        f"{P}:engine_latency_seconds:p95": f"histogram_quantile(0.95, {rate(f'{lat}_bucket', 'engine, le')})",
        f"{P}:engine_latency_seconds:p99": f"histogram_quantile(0.99, {rate(f'{lat}_bucket', 'engine, le')})",
        f"{P}:engine_error_ratio:rate": f"{rate(f'{P}_failures_total')} / {rate(f'{P}_requests_total')}",
        f"{P}:engine_op_latency_seconds:mean":
            f"{rate(f'{lat}_sum', 'engine, op')} / {rate(f'{lat}_count', 'engine, op')}",
        # Per engine, from the engines' self-reports (max: several exporters read the same key).
        f"{P}:engine_throughput:reported": f"max by (engine) ({P}_engine_reported_operations_per_second)",
        f"{P}:engine_operation_throughput:reported":
            f"max by (engine, op) ({P}_engine_reported_operation_operations_per_second)",
        f"{P}:engine_cpu_ratio:reported": f"max by (engine) ({P}_engine_reported_cpu_ratio)",
        f"{P}:engine_memory_bytes:reported": f"max by (engine) ({P}_engine_reported_memory_bytes)",
        # The whole system (the containerized engines; the monolith is the baseline).
        f"{P}:system_throughput:reported":
            f"sum(max by (engine) ({P}_engine_reported_operations_per_second{{{NOT_BASELINE}}}))",
        f"{P}:system_latency_seconds:mean": f"{rate(f'{trade}_sum', '')} / {rate(f'{trade}_count', '')}",
        f"{P}:system_latency_seconds:p95": f"histogram_quantile(0.95, {rate(f'{trade}_bucket', 'le')})",
        f"{P}:system_latency_seconds:p99": f"histogram_quantile(0.99, {rate(f'{trade}_bucket', 'le')})",
        f"{P}:system_request_rate:rate": rate(f"{P}_requests_total", "", NOT_BASELINE),
        f"{P}:system_error_ratio:rate":
            f"{rate(f'{P}_failures_total', '', NOT_BASELINE)} / {rate(f'{P}_requests_total', '', NOT_BASELINE)}",
        # The monolith, probed continuously: the latency baseline.
        f"{P}:baseline_latency_seconds:mean":
            f"{rate(f'{lat}_sum', '', BASELINE)} / {rate(f'{lat}_count', '', BASELINE)}",
        f"{P}:system_cpu_ratio:reported": f"avg({P}:engine_cpu_ratio:reported{{{NOT_BASELINE}}})",
        f"{P}:ws_connections_open:sum": f"sum({P}_ws_connections_open)",
        f"{P}:ws_heartbeat_latency_seconds:p99":
            f"histogram_quantile(0.99, {rate(f'{P}_ws_heartbeat_latency_seconds_bucket', 'le')})",
    }


def improvement_exprs(t: Thresholds) -> dict[str, str]:
    """The migration's improvement factors (targets: Thresholds.throughput_factor and
    latency_factor): reported throughput over the baseline capacity in thresholds.yml,
    and the measured monolith's latency over the trading request's."""
    return {
        f"{P}:system_throughput_improvement:ratio":
            f"{P}:system_throughput:reported / {t.baseline_throughput:g}",
        f"{P}:system_latency_improvement:ratio":
            f"{P}:baseline_latency_seconds:mean / {P}:system_latency_seconds:mean",
    }


def recording_rules(t: Thresholds) -> list[dict]:
    exprs = {**recording_exprs(window(t.alerting.rate_window)), **improvement_exprs(t)}
    return [{"record": name, "expr": expr} for name, expr in exprs.items()]


@dataclass
class Alert:
    """One alert name, at one or two severities, and what its unit tests feed it."""

    name: str
    summary: str
    description: str  # may use {{ $value }} and {{ $labels.engine }}
    metric: str  # recording rule (or metric) the condition is on
    selector: str = ""
    limit: Limit = field(default_factory=Limit)
    levels: tuple[str, ...] = ("warning", "critical")
    labels: dict[str, str] = field(default_factory=dict)  # series labels in the tests
    pinned: bool = False  # one rule per engine/op: its labels go on the rule too
    fmt: str = '{{ $value | printf "%.3g" }}'

    def thresholds(self, fraction: float) -> dict[str, tuple[str, float]]:
        """severity -> (comparison, value); a range (min and max) is one warning."""
        out = {}
        lo, hi = self.limit.min, self.limit.max
        if lo is not None and hi is not None:
            return {"warning": ("outside", 0.0)}
        for level in self.levels:
            if hi is not None and lo is None:
                out[level] = (">", hi * (fraction if level == "warning" else 1.0))
            elif lo is not None and hi is None:
                out[level] = ("<", lo / (fraction if level == "warning" else 1.0))
        return out


def alerts(t: Thresholds) -> list[Alert]:
    s, e = t.system, t.engine
    out = [
        Alert("SystemThroughputBelowTarget", "System throughput is below its target.",
              "The containerized engines report {v} ops/s in total; the target is at least "
              f"{s['throughput_ops_per_second'].min:g}.",
              f"{P}:system_throughput:reported", limit=s["throughput_ops_per_second"]),
        Alert("SystemLatencyAboveTarget", "End-to-end latency is above its target.",
              "The trading request averages {v} s; the target is under "
              f"{s['latency_average_seconds'].max:g} s.",
              f"{P}:system_latency_seconds:mean", limit=s["latency_average_seconds"]),
        Alert("SystemErrorRatioAboveTarget", "System error ratio is above its target.",
              "{v} of probes to the containerized engines fail; the target is under "
              f"{s['error_ratio'].max:g}.",
              f"{P}:system_error_ratio:rate", limit=s["error_ratio"]),
        Alert("WebSocketConnectionsBelowTarget", "Fewer WebSocket connections are held than the target.",
              "{v} connections are open; the target is at least "
              f"{s['websocket_connections'].min:g}.",
              f"{P}:ws_connections_open:sum", limit=s["websocket_connections"], levels=("critical",)),
        Alert("EngineThroughputBelowTarget", "An engine's throughput is below its target.",
              "{{ $labels.engine }} reports {v} ops/s; the target is at least "
              f"{e['throughput_ops_per_second'].min:g}.",
              f"{P}:engine_throughput:reported", NOT_BASELINE, e["throughput_ops_per_second"],
              labels={"engine": "risk"}),
        Alert("EngineLatencyAboveTarget", "An engine's average latency is above its target.",
              "{{ $labels.engine }} averages {v} s per probe; the target is at most "
              f"{e['latency_average_seconds'].max:g} s.",
              f"{P}:engine_latency_seconds:mean", NOT_BASELINE, e["latency_average_seconds"],
              labels={"engine": "risk"}),
        Alert("EngineErrorRatioAboveTarget", "An engine's error ratio is above its target.",
              "{v} of probes to {{ $labels.engine }} fail; the target is at most "
              f"{e['error_ratio'].max:g}.",
              f"{P}:engine_error_ratio:rate", NOT_BASELINE, e["error_ratio"],
              labels={"engine": "risk"}),
    ]
    out.append(Alert(
        "CpuBusyOutsideTarget", "Engines' CPU use is outside the efficiency target.",
        "The containerized engines average {v} of a core busy; the target is "
        f"{s['cpu_busy_ratio'].min:g} to {s['cpu_busy_ratio'].max:g}.",
        f"{P}:system_cpu_ratio:reported", limit=s["cpu_busy_ratio"]))
    hb = t.websocket["heartbeat_p99_seconds"]
    out.append(Alert(
        "WebSocketHeartbeatLatencyAboveTarget", "WebSocket heartbeat p99 is above its target.",
        f"Heartbeat round trips have a p99 of {{v}} s; the target is at most {hb.max:g} s.",
        f"{P}:ws_heartbeat_latency_seconds:p99", limit=hb))
    for engine, ops in sorted(t.operations.items()):
        for op, minimum in ops.items():
            out.append(Alert(
                "OperationThroughputBelowTarget", "An operation's throughput is below its target.",
                "{{ $labels.engine }} {{ $labels.op }} reports {v} ops/s; the target is at least "
                f"{minimum:g}.", f"{P}:engine_operation_throughput:reported",
                f'engine="{engine}",op="{op}"', Limit(min=minimum),
                labels={"engine": engine, "op": op}, pinned=True))
    for engine, limit in sorted(t.full_cycle.items()):
        out.append(Alert(
            "FullCycleAboveTarget", "A full factor cycle takes longer than its target.",
            "{{ $labels.engine }} full_cycle averages {v} s; the target is at most "
            f"{limit.max:g} s.", f"{P}:engine_op_latency_seconds:mean",
            f'engine="{engine}",op="full_cycle"', limit,
            labels={"engine": engine, "op": "full_cycle"}, pinned=True))
    return out


def _expr(alert: Alert, op: str, value: float) -> str:
    series = f"{alert.metric}{{{alert.selector}}}" if alert.selector else alert.metric
    if op == "outside":
        return f"{series} < {alert.limit.min:g} or {series} > {alert.limit.max:g}"
    return f"{series} {op} {value:g}"


def runbook_url(t: Thresholds, name: str) -> str:
    return f"{t.alerting.runbook}#{name.lower()}"


def alerting_rules(t: Thresholds) -> list[dict]:
    a = t.alerting
    fors = {"warning": window(a.for_warning), "critical": window(a.for_critical)}
    rules = []
    for alert in alerts(t):
        for level, (op, value) in alert.thresholds(a.warning_fraction).items():
            rules.append({
                "alert": alert.name, "expr": _expr(alert, op, value), "for": fors[level],
                "labels": {"severity": level, **(alert.labels if alert.pinned else {})},
                "annotations": {"summary": alert.summary,
                                "description": alert.description.replace("{v}", alert.fmt),
                                "runbook_url": runbook_url(t, alert.name)}})
    rules.extend(_measurement_alerts(t))
    return rules


def _measurement_alerts(t: Thresholds) -> list[dict]:
    """Alerts on the measurement itself: no numbers must never read as good numbers."""
    def rule(name: str, expr: str, for_: str, summary: str, description: str,
             severity: str = "critical") -> dict:
        return {"alert": name, "expr": expr, "for": for_, "labels": {"severity": severity},
                "annotations": {"summary": summary, "description": description,
                                "runbook_url": runbook_url(t, name)}}
    w = window(t.alerting.rate_window)
    return [
        rule("ExporterDown", f'up{{job="{JOB}"}} == 0', "1m", "The nautilus-probe exporter is down.",
             "Prometheus cannot scrape {{ $labels.instance }}: nothing is being measured."),
        rule("ProberSaturated", f"sum by (instance) (rate({P}_probes_skipped_total[{w}])) > 0 "
             f"or histogram_quantile(0.99, sum by (instance, le) (rate({P}_schedule_lag_seconds_bucket[{w}]))) > 0.05",
             "5m", "The prober cannot keep its schedule.",
             "{{ $labels.instance }} skips probes or sends them late: its latency figures "
             "include its own delay. Lower the probe rates or add exporter instances.",
             severity="warning"),
        rule("EngineSelfReportStale", f"{P}_engine_report_age_seconds > {t.alerting.stale_after:g} "
             f"or {P}_engine_report_up == 0", "2m", "An engine's self-report is stale or missing.",
             "metrics:{{ $labels.engine }} in Redis is missing, invalid or older than "
             f"{t.alerting.stale_after:g} s.", severity="warning"),
        rule("MessageBusUnreachable", f"{P}_messagebus_up == 0", "1m",
             "The exporter cannot reach the MessageBus.",
             "{{ $labels.instance }} fails to talk to Redis: probes fail with send_failed."),
        rule("ProbeLoopRestarting", f"increase({P}_loop_restarts_total[{w}]) > 2", "0m",
             "A probe loop keeps failing and restarting.",
             "The {{ $labels.loop }} loop of {{ $labels.instance }} restarted more than twice "
             f"in {w}: its figures have gaps, and /-/healthy answers 500. The traceback is in "
             "the exporter's log."),
    ]
