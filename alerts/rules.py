"""Recording and alerting rules, generated from the thresholds file.

Every alert is a function of the thresholds; `python -m alerts` writes
alerts/generated/{recording,alerts,tests}.yml. tests/test_alerts.py fails when
the committed files differ from a fresh generation.
"""

from __future__ import annotations

from prometheus_client.utils import floatToGoString

from exporter.metrics import NAMESPACE as P
from nautilus_wire.protocol import BASELINE_ENGINE

from .thresholds import SEVERITIES, Thresholds

# Every series of the containerized system; the monolith is the baseline.
NOT_BASELINE = f'engine!="{BASELINE_ENGINE}"'
BASELINE = f'engine="{BASELINE_ENGINE}"'
JOB = "nautilus-probe"  # the Prometheus job scraping the exporter(s)


def window(seconds: float) -> str:
    """Prometheus duration text: 300 -> 5m, 30 -> 30s."""
    s = int(round(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s % size == 0 and s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


def backlog_expr(selector: str = "{" + NOT_BASELINE + "}") -> str:
    """Requests waiting in each engine's streams (every exporter reads the same ones,
    hence max)."""
    return (f"max by (engine) ({P}_messagebus_pending_messages{selector}) + "
            f"max by (engine) ({P}_messagebus_lag_messages{selector})")


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
        f"{P}:engine_backlog_messages:max": backlog_expr(),
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


def sli_exprs(t: Thresholds) -> dict[str, str]:
    """Each engine's error ratios against its objectives, over every burn-rate window.

    Availability: probes that failed, of those that reached the MessageBus (a
    send_failed is the prober's failure, MessageBusUnreachable's to report).
    Latency: answered probes slower than the engine's latency target, which is an
    exact bucket boundary of latency_seconds (tests/test_metrics.py)."""
    lat = f"{P}_latency_seconds"
    le = floatToGoString(t.engine["latency_average_seconds"].max)
    out = {}
    for seconds in t.alerting.windows():
        w = window(seconds)
        requests = f"sum by (engine) (rate({P}_requests_total{{{NOT_BASELINE}}}[{w}]))"
        # (or 0: a prober that never failed to send need not expose that series)
        sent = (f"({requests} - (sum by (engine) (rate({P}_failures_total{{{NOT_BASELINE},"
                f"reason=\"send_failed\"}}[{w}])) or {requests} * 0))")
        out[f"{P}:engine_availability_errors:ratio_rate{w}"] = (
            f"sum by (engine) (rate({P}_failures_total{{{NOT_BASELINE},reason!=\"send_failed\"}}[{w}]))"
            f" / {sent}")
        out[f"{P}:engine_latency_errors:ratio_rate{w}"] = (
            f"1 - sum by (engine) (rate({lat}_bucket{{{NOT_BASELINE},le=\"{le}\"}}[{w}])) / "
            f"sum by (engine) (rate({lat}_count{{{NOT_BASELINE}}}[{w}]))")
    return out


def recording_rules(t: Thresholds) -> list[dict]:
    exprs = {**recording_exprs(window(t.alerting.rate_window)), **improvement_exprs(t),
             **sli_exprs(t)}
    return [{"record": name, "expr": expr} for name, expr in exprs.items()]


def runbook_url(t: Thresholds, name: str) -> str:
    return f"{t.alerting.runbook_url}#{name.lower()}"


def _rule(t: Thresholds, name: str, expr: str, severity: str, for_: float, summary: str,
          description: str) -> dict:
    return {"alert": name, "expr": expr, "for": window(for_), "labels": {"severity": severity},
            "annotations": {"summary": summary, "description": description,
                            "runbook_url": runbook_url(t, name)}}


# What each objective's error ratio counts, for the alerts' text.
SLOS = {
    "availability": ("EngineAvailabilityBudgetBurn", "of probes failed",
                     "answered ok"),
    "latency": ("EngineLatencyBudgetBurn", "of answered probes were slower than {target}",
                "answered within {target}"),
}


def burn_rate_alerts(t: Thresholds) -> list[dict]:
    """Multiwindow, multi-burn-rate alerts per engine and objective: page on a fast
    burn, ticket on a slow one."""
    a = t.alerting
    target = f"{t.engine['latency_average_seconds'].max * 1e3:g} ms"
    out = []
    for slo, (name, what, good) in SLOS.items():
        objective = getattr(t.objectives, slo)
        budget = 1 - objective
        for severity in SEVERITIES:
            rates = a.burn_rates[severity]
            expr = " or ".join(
                f"({P}:engine_{slo}_errors:ratio_rate{window(b.long)} > {b.factor * budget:.6g} and "
                f"{P}:engine_{slo}_errors:ratio_rate{window(b.short)} > {b.factor * budget:.6g})"
                for b in rates)
            speeds = ", or ".join(f"{b.factor:g}× too fast over {window(b.long)} and "
                                  f"{window(b.short)}" for b in rates)
            # `for:` too: just after a (re)start every window holds a few samples, and
            # one early error would read as a burn.
            out.append(_rule(
                t, name, expr, severity, a.for_page if severity == "page" else a.for_ticket,
                f"{{{{ $labels.engine }}}} is burning its {slo} error budget "
                f"{'fast' if severity == 'page' else 'slowly'}.",
                f"{{{{ $labels.engine }}}}: {{{{ $value | humanizePercentage }}}} "
                f"{what.format(target=target)} over the long window. Objective: "
                f"{objective * 100:g}% {good.format(target=target)} (error budget "
                f"{budget * 100:.3g}%); this fires when the budget burns {speeds}."))
    return out


def saturation_alerts(t: Thresholds) -> list[dict]:
    """Capacity turned into signals that mean users wait: demand above capacity."""
    a = t.alerting
    w = window(a.rate_window)
    backlog = f"{P}:engine_backlog_messages:max"
    thr = t.engine["throughput_ops_per_second"].min
    return [
        # The value from the raw gauges (evaluated with the alert), the trend from the
        # recorded series: the alert never depends on which group ran first.
        _rule(t, "EngineBacklogGrowing",
              f"({backlog_expr()}) > {a.backlog_messages:g} and deriv({backlog}[{w}]) > 0",
              "page",
              a.for_page, "{{ $labels.engine }} cannot keep up with its requests.",
              "{{ $labels.engine }} has {{ $value | printf \"%.0f\" }} requests waiting in its "
              f"MessageBus streams (more than {a.backlog_messages:g}) and the backlog is still "
              f"growing: demand exceeds its capacity (capacity target: {thr:g} ops/s)."),
        _rule(t, "EngineNoResponders",
              f"max by (engine) ({P}_messagebus_consumers_active{{{NOT_BASELINE}}}) == 0",
              "page", a.for_no_responders, "Nothing reads {{ $labels.engine }}'s requests.",
              "No responder of {{ $labels.engine }} has taken a request for "
              f"{a.for_no_responders:g} s or more (at least 1 needed; a crashed one may still "
              "be listed in the consumer group): every request to it waits until it times out."),
        _rule(t, "WebSocketConnectionsBelowConfigured",
              f"sum by (endpoint) ({P}_ws_connections_desired) - "
              f"sum by (endpoint) ({P}_ws_connections_open) > 0", "page", a.for_page,
              "The prober holds fewer WebSocket connections than configured.",
              "{{ $labels.endpoint }} holds {{ $value | printf \"%.0f\" }} connections fewer "
              "than the prober is configured to hold (the target: all of them): the front "
              "end refuses or drops them."),
        _rule(t, "WebSocketConnectFailing",
              f"sum by (endpoint) (rate({P}_ws_connect_failures_total[{w}])) > 0", "page",
              a.for_page, "WebSocket connections to an endpoint keep failing.",
              "{{ $labels.endpoint }} refuses or fails {{ $value | printf \"%.3g\" }} new "
              f"connections per second over {w} (the target: none)."),
    ]


def prober_alerts(t: Thresholds) -> list[dict]:
    """Alerts on the measurement itself: no numbers must never read as good numbers."""
    a = t.alerting
    w = window(a.rate_window)
    return [
        _rule(t, "ExporterDown", f'up{{job="{JOB}"}} == 0', "page", a.for_page,
              "The nautilus-probe exporter is down.",
              "Prometheus cannot scrape {{ $labels.instance }}: nothing is being measured."),
        _rule(t, "MessageBusUnreachable", f"{P}_messagebus_up == 0", "page", a.for_page,
              "The exporter cannot reach the MessageBus.",
              "{{ $labels.instance }} fails to talk to Redis: probes fail with send_failed, "
              "and the engines' alerts are inhibited until it recovers."),
        _rule(t, "ProberSaturated",
              f"sum by (instance) (rate({P}_probes_skipped_total[{w}])) > 0 or histogram_quantile"
              f"(0.99, sum by (instance, le) (rate({P}_schedule_lag_seconds_bucket[{w}]))) > 0.05",
              "ticket", a.for_ticket, "The prober cannot keep its schedule.",
              "{{ $labels.instance }} skips probes, or sends them late (p99 schedule lag "
              "above 50 ms): its latency figures include its own delay. Lower the probe rates "
              "or add exporter instances."),
        _rule(t, "EngineSelfReportStale",
              f"{P}_engine_report_age_seconds > {a.stale_after:g} or {P}_engine_report_up == 0",
              "ticket", a.for_ticket, "An engine's self-report is stale or missing.",
              "metrics:{{ $labels.engine }} in Redis is missing, invalid or older than "
              f"{a.stale_after:g} s."),
        _rule(t, "ProbeLoopRestarting", f"increase({P}_loop_restarts_total[{w}]) > 2", "ticket", 0,
              "A probe loop keeps failing and restarting.",
              "The {{ $labels.loop }} loop of {{ $labels.instance }} restarted more than twice "
              f"in {w}: its figures have gaps, and /-/healthy answers 500. The traceback is in "
              "the exporter's log."),
    ]


def alerting_rules(t: Thresholds) -> list[dict]:
    return [*burn_rate_alerts(t), *saturation_alerts(t), *prober_alerts(t)]
