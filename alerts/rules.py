"""Recording and alerting rules, generated from the thresholds file.

Every alert is a function of the thresholds; `python -m alerts` writes
alerts/generated/{recording,alerts,tests}.yml. tests/test_alerts.py fails when
the committed files differ from a fresh generation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client.utils import floatToGoString

from exporter.metrics import NAMESPACE as P
from exporter.supervise import TROUBLE_RESTARTS, TROUBLE_WINDOW_S
from nautilus_wire.protocol import BASELINE_ENGINE

from . import capacity
from .promql import alert_label_matcher
from .thresholds import SEVERITIES, Thresholds

# How Prometheus writes a number (a bucket's `le`), typed: the library leaves it unannotated.
go_float: Callable[[float], str] = floatToGoString

# Every series of the containerized system; the monolith is the baseline.
NOT_BASELINE = f'engine!="{BASELINE_ENGINE}"'
BASELINE = f'engine="{BASELINE_ENGINE}"'


def capacity_age_expr(t: Thresholds, keys: str = "") -> str:
    """Seconds since each target's last verdict was measured (the end of its run's
    window): a verdict `validate` pushes an hour after the load test is an hour old.
    `keys`: only the targets this regular expression matches (the overview's tables)."""
    only = f',target=~"{keys}"' if keys else ""
    return (f"time() - max by (scope, target) "
            f"({P}_capacity_run_timestamp_seconds{{{t.jobs.capacity_selector}{only}}})")


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

    def mean(metric: str, by: str = "engine", sel: str = "") -> str:
        # Over answered requests only: none answered is no series, never NaN
        # (a dashboard says "no successful requests", an alert cannot misread it).
        return f"{rate(f'{metric}_sum', by, sel)} / ({rate(f'{metric}_count', by, sel)} > 0)"

    def quantile(q: float, metric: str, by: str) -> str:
        # NaN (no answered request in the window) fails every comparison: dropped.
        return f"histogram_quantile({q}, {rate(f'{metric}_bucket', by)}) >= 0"

    return {
        # Per engine, from the probes.
        f"{P}:engine_probe_throughput:rate": rate(f"{lat}_count"),
        f"{P}:engine_latency_seconds:mean": mean(lat),
        f"{P}:engine_latency_seconds:p95": quantile(0.95, lat, "engine, le"),
        f"{P}:engine_latency_seconds:p99": quantile(0.99, lat, "engine, le"),
        f"{P}:engine_error_ratio:rate": f"{rate(f'{P}_failures_total')} / {rate(f'{P}_requests_total')}",
        f"{P}:engine_op_latency_seconds:mean": mean(lat, "engine, op"),
        # Per engine, from the engines' self-reports (max: several exporters read the same key).
        f"{P}:engine_throughput:reported": f"max by (engine) ({P}_engine_reported_operations_per_second)",
        f"{P}:engine_operation_throughput:reported":
            f"max by (engine, op) ({P}_engine_reported_operation_operations_per_second)",
        f"{P}:engine_cpu_ratio:reported": f"max by (engine) ({P}_engine_reported_cpu_ratio)",
        f"{P}:engine_memory_bytes:reported": f"max by (engine) ({P}_engine_reported_memory_bytes)",
        # The whole system (the containerized engines; the monolith is the baseline).
        f"{P}:system_throughput:reported":
            f"sum(max by (engine) ({P}_engine_reported_operations_per_second{{{NOT_BASELINE}}}))",
        f"{P}:system_latency_seconds:mean": mean(trade, ""),
        f"{P}:system_latency_seconds:p95": quantile(0.95, trade, "le"),
        f"{P}:system_latency_seconds:p99": quantile(0.99, trade, "le"),
        f"{P}:system_request_rate:rate": rate(f"{P}_requests_total", "", NOT_BASELINE),
        f"{P}:system_error_ratio:rate":
            f"{rate(f'{P}_failures_total', '', NOT_BASELINE)} / "
            f"{rate(f'{P}_requests_total', '', NOT_BASELINE)}",
        # The monolith, probed continuously: the latency baseline.
        f"{P}:baseline_latency_seconds:mean": mean(lat, "", BASELINE),
        f"{P}:system_cpu_ratio:reported": f"avg({P}:engine_cpu_ratio:reported{{{NOT_BASELINE}}})",
        f"{P}:ws_connections_open:sum": f"sum({P}_ws_connections_open)",
        f"{P}:engine_backlog_messages:max": backlog_expr(),
        f"{P}:ws_heartbeat_latency_seconds:p99":
            f"histogram_quantile(0.99, {rate(f'{P}_ws_heartbeat_latency_seconds_bucket', 'le')}) >= 0",
    }


def improvement_exprs(t: Thresholds) -> dict[str, str]:
    """The latency improvement factor (target: Thresholds.latency_factor), both sides
    measured live by the same probes: the monolith's latency over the trading
    request's. No throughput factor: live traffic over the monolith's capacity would
    compare what flows with what could (the load tests measure both capacities)."""
    return {
        # Only while the system meets its error target: the latency of the few
        # requests that still succeed is no improvement.
        f"{P}:system_latency_improvement:ratio":
            f"{P}:baseline_latency_seconds:mean / {P}:system_latency_seconds:mean and on () "
            f"{P}:system_error_ratio:rate <= {t.system['error_ratio'].max:g}",
    }


def sli_exprs(t: Thresholds) -> dict[str, str]:
    """Each engine's error ratios against its objectives, over every burn-rate window.

    Availability: probes that failed, of those that reached the MessageBus (a
    send_failed is the prober's failure, MessageBusUnreachable's to report).
    Latency: answered probes slower than the engine's latency target, which is an
    exact bucket boundary of latency_seconds (tests/test_metrics.py)."""
    lat = f"{P}_latency_seconds"
    le = go_float(t.engine["latency_average_seconds"].ceiling)
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


def recording_rules(t: Thresholds) -> list[dict[str, Any]]:
    exprs = {**recording_exprs(window(t.alerting.rate_window)), **improvement_exprs(t),
             **sli_exprs(t)}
    return [{"record": name, "expr": expr} for name, expr in exprs.items()]


def runbook_url(t: Thresholds, name: str) -> str:
    return f"{t.alerting.runbook_url}#{name.lower()}"


def _rule(t: Thresholds, name: str, expr: str, severity: str, for_: float, summary: str,
          description: str, keep_firing_for: float = 0) -> dict[str, Any]:
    rule = {"alert": name, "expr": expr, "for": window(for_)}
    if keep_firing_for:
        rule["keep_firing_for"] = window(keep_firing_for)
    return {**rule, "labels": {"severity": severity},
            "annotations": {"summary": summary, "description": description,
                            "runbook_url": runbook_url(t, name)}}


# What each objective's error ratio counts, for the alerts' text.
SLOS = {
    "availability": ("EngineAvailabilityBudgetBurn", "of probes failed",
                     "answered ok", f"{P}_requests_total"),
    "latency": ("EngineLatencyBudgetBurn", "of answered probes were slower than {target}",
                "answered within {target}", f"{P}_latency_seconds_count"),
}


# The alert's own engine, in a query its template runs (`%q`: quoted and escaped).
ENGINE = alert_label_matcher("engine")


def _query(expr: str, fmt: str, missing: str = "no data") -> str:
    """An annotation fragment: PromQL `expr` (its ENGINE matcher: the alert's engine),
    queried when the alert is evaluated (its $value is only whichever window pair
    matched), its first value through the template pipeline `fmt`."""
    return (f'{{{{ with printf `{expr}` $labels.engine | query }}}}'
            f'{{{{ . | first | value | {fmt} }}}}{{{{ else }}}}{missing}{{{{ end }}}}')


def _if_any(expr: str, then: str, otherwise: str) -> str:
    """An annotation fragment: `then` when PromQL `expr` (ENGINE: the alert's engine)
    returns anything at evaluation, `otherwise` when it returns nothing."""
    return (f'{{{{ if printf `{expr}` $labels.engine | query }}}}{then}'
            f'{{{{ else }}}}{otherwise}{{{{ end }}}}')


def _now(series: str, then: str = "", fmt: str = "humanizePercentage") -> str:
    """`series` of the alert's engine (then `then`), as an annotation fragment."""
    return _query(f"{series}{{{ENGINE}}}{then}", fmt)


def _over(seconds: float, counter: str) -> str:
    """An annotation fragment naming a window: "the last 1h", or, when the engine's
    probes have less history than that (a young Prometheus or exporter), what there
    is: "all 13m 5s of history (a 1h window)" -- a rate over 13 minutes is not one
    over an hour. `counter`: the series the objective's ratio divides by."""
    w = window(seconds)
    # When the first sample in the window was scraped, at the rule evaluation's
    # resolution: a coarser step would start at a multiple of itself and find
    # nothing in a history younger than one step.
    history = f"time() - min(min_over_time(timestamp({counter}{{{ENGINE}}})[{w}:]))"
    return (f'{{{{ with printf `{history}` $labels.engine | query }}}}'
            f'{{{{ $h := . | first | value }}}}{{{{ if lt $h {seconds * 0.95:.1f} }}}}'
            f'all {{{{ humanizeDuration $h }}}} of history (a {w} window)'
            f'{{{{ else }}}}the last {w}{{{{ end }}}}{{{{ else }}}}the last {w}{{{{ end }}}}')


def _latency_now(w: str) -> str:
    """The engine's latency over the last `w`: p50 and p99 of its answered probes."""
    def q(quantile: float) -> str:
        return (f"histogram_quantile({quantile:g}, sum by (le) (rate({P}_latency_seconds_"
                f"bucket{{{ENGINE}}}[{w}]))) >= 0")
    # NaN (nothing answered) is dropped by the `>= 0`: then there is no quantile to state.
    return (f'{{{{ with printf `{q(0.5)}` $labels.engine | query }}}}p50 '
            f'{{{{ . | first | value | humanizeDuration }}}}'
            f'{{{{ with printf `{q(0.99)}` $labels.engine | query }}}} and p99 '
            f'{{{{ . | first | value | humanizeDuration }}}}{{{{ end }}}}'
            f'{{{{ else }}}}no probe answered{{{{ end }}}}')


# What a page's and a ticket's window pairs catch, as their summaries say it (with the
# long windows): a fast burn over shorter windows, a sustained one over longer ones.
# Not "slowly": a fast burn that lasts fires the ticket too (its description: 20×).
PACE = {"page": "fast", "ticket": "sustained"}


def either(items: list[str]) -> str:
    """Alternatives as a sentence says them: "1h", "1h or 6h", "1h, 6h or 1d"."""
    return " or ".join(filter(None, (", ".join(items[:-1]), items[-1])))


def spoken(seconds: float) -> str:
    """A duration as a page says it: 4m 30s, 2m, 1h 5m (zero parts left out)."""
    s = int(round(seconds))
    parts = [(s // 86400, "d"), (s // 3600 % 24, "h"), (s // 60 % 60, "m"), (s % 60, "s")]
    return " ".join(f"{n}{unit}" for n, unit in parts if n) or "0s"


def burn_rate_alerts(t: Thresholds) -> list[dict[str, Any]]:
    """Multiwindow, multi-burn-rate alerts per engine and objective: page on a fast
    burn (over the page's windows), ticket on a sustained one (over the ticket's longer
    windows); the summary names the long windows. Each condition also needs the burn
    over the recent window: an alert ends soon after its fault does (keep_firing_for
    holds it over short dips, so a continuous burn notifies once).

    The description states the present first (the last `alerting.current`: the
    failing share, for latency also p50 and p99 against the target), then the
    windows' burn figures, each window with its real length when the history is
    shorter. When the present is within the error budget while the alert still fires
    (the fault ended; the recent window has not caught up yet), the summary and the
    description say so: recovered, waiting to resolve, and when it will."""
    a = t.alerting
    target = f"{t.engine['latency_average_seconds'].ceiling * 1e3:g} ms"
    recent, current = window(a.recent), window(a.current)
    out = []
    for slo, (name, what, good, counter) in SLOS.items():
        objective = getattr(t.objectives, slo)
        budget = 1 - objective
        ratio = f"{P}:engine_{slo}_errors:ratio_rate"
        # The present within the error budget: the fault has ended (or paused).
        recovered = f"{ratio}{current}{{{ENGINE}}} <= {budget:.6g}"
        for severity in SEVERITIES:
            rates = a.burn_rates[severity]
            conditions = []
            for b in rates:
                limit = f"{b.factor * budget:.6g}"
                cond = (f"{ratio}{window(b.long)} > {limit} and "
                        f"{ratio}{window(b.short)} > {limit}")
                if b.short != a.recent or b.factor < 1:
                    # Still burning now (faster than the budget allows): the alert
                    # ends soon after the fault does, whatever its short window says
                    # (and the recovered text's promise holds: every condition needs
                    # the recent window above the budget).
                    cond += f" and {ratio}{recent} > {budget:.6g}"
                conditions.append(f"({cond})")
            speeds = ", or ".join(f"{b.factor:g}× too fast over {window(b.long)} and "
                                  f"{window(b.short)}" for b in rates)
            long = window(rates[0].long)
            if slo == "latency":
                present = (f"{_latency_now(current)} over the last {current} (target "
                           f"{target}), {_now(f'{ratio}{current}')} {what.format(target=target)}")
            else:
                present = f"{_now(f'{ratio}{current}')} {what} over the last {current}"
            windows = (f"{_now(f'{ratio}{recent}')} over {_over(a.recent, counter)} and "
                       f"{_now(f'{ratio}{long}')} over {_over(rates[0].long, counter)}")
            keep = a.keep_firing_for(severity)
            burning = (f"{present}; {windows}: the error budget burns "
                       f"{_now(f'{ratio}{recent}', f' / {budget:.6g}', 'printf `%.3g`')}× "
                       f"as fast as the objective allows.")
            waiting = (f"recovered: {present}, within the error budget ({budget * 100:.3g}%). "
                       f"Still {windows}: this {severity} only waits to resolve. Unless the "
                       f"fault returns, it resolves by itself within {spoken(keep)} of the "
                       f"last {recent} being within budget too, about "
                       f"{spoken(a.recent + keep)} after the fault ended.")
            engine = "{{ $labels.engine }}"
            # `for:` too: just after a (re)start every window holds a few samples, and
            # one early error would read as a burn.
            out.append(_rule(
                t, name, " or ".join(conditions), severity,
                a.for_page if severity == "page" else a.for_ticket,
                _if_any(recovered,
                        f"{engine} has recovered: within its {slo} error budget over the last "
                        f"{current}; this {severity} waits to resolve.",
                        f"{engine} is burning its {slo} error budget ({PACE[severity]}: "
                        f"over {either([window(b.long) for b in rates])})."),
                f"{engine}: {_if_any(recovered, waiting, burning)} Objective: "
                f"{objective * 100:g}% {good.format(target=target)} (error budget "
                f"{budget * 100:.3g}%); this fires when the budget burns {speeds}, while it "
                f"still burns over the last {recent}.",
                keep))
    return out


def saturation_alerts(t: Thresholds) -> list[dict[str, Any]]:
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


def prober_alerts(t: Thresholds) -> list[dict[str, Any]]:
    """Alerts on the measurement itself: no numbers must never read as good numbers."""
    a = t.alerting
    w = window(a.rate_window)
    return [
        _rule(t, "ExporterDown", f'up{{job="{t.jobs.exporter}"}} == 0', "page", a.for_page,
              "The nautilus-probe exporter is down.",
              "Prometheus cannot scrape {{ $labels.instance }}: nothing is being measured."),
        _rule(t, "MessageBusUnreachable", f"{P}_messagebus_up == 0", "page", a.for_page,
              "The exporter cannot reach the MessageBus.",
              "{{ $labels.instance }} fails to talk to Redis: probes fail with send_failed, "
              "and the engines' alerts are inhibited until it recovers."),
        _rule(t, "ProberSaturated",
              f"sum by (instance) (rate({P}_probes_skipped_total[{w}])) > 0 or histogram_quantile"
              f"(0.99, sum by (instance, le) (rate({P}_schedule_lag_seconds_bucket[{w}]))) > "
              f"{a.schedule_lag_p99:g}",
              "ticket", a.for_ticket, "The prober cannot keep its schedule.",
              "{{ $labels.instance }} skips probes, or sends them late (p99 schedule lag "
              f"above {a.schedule_lag_p99 * 1e3:g} ms): its latency figures include its own "
              "delay. Lower the probe rates or add exporter instances."),
        _rule(t, "EngineSelfReportStale",
              f"{P}_engine_report_age_seconds > {a.stale_after:g} or {P}_engine_report_up == 0",
              "ticket", a.for_ticket, "An engine's self-report is stale or missing.",
              "metrics:{{ $labels.engine }} in Redis is missing, invalid or older than "
              f"{a.stale_after:g} s."),
        # What makes the exporter unhealthy (exporter/supervise.py), as an alert.
        _rule(t, "ProbeLoopRestarting",
              f"increase({P}_loop_restarts_total[{window(TROUBLE_WINDOW_S)}]) > "
              f"{TROUBLE_RESTARTS - 1}", "ticket", 0,
              "A probe loop keeps failing and restarting.",
              "The {{ $labels.loop }} loop of {{ $labels.instance }} restarted "
              f"{TROUBLE_RESTARTS} times or more within {window(TROUBLE_WINDOW_S)}: its figures "
              "have gaps, and /-/healthy answers 500 while that lasts. The traceback is in "
              "the exporter's log."),
    ]


def _figure(var: str) -> str:
    """An annotation fragment: the template variable `var` in the unit of the alert's
    capacity target, by its kind (capacity.py); a key of no kind as a plain number."""
    out = ""
    for i, kind in enumerate(capacity.KINDS):
        out += (f'{{{{ {"else " if i else ""}if match "^(?:{kind.keys})$" $labels.target }}}}'
                + kind.figure(var))
    return out + f'{{{{ else }}}}{{{{ {var} | printf "%.6g" }}}}{{{{ end }}}}'


def _pushed(t: Thresholds, series: str, then: str, missing: str) -> str:
    """An annotation fragment: the alert's target's pushed `{P}_capacity_<series>`
    (nautilus_loadtest/push.py), queried when the alert is evaluated: `then` with the
    result as `.`, or `missing` when the load test pushed none."""
    same = ",".join(alert_label_matcher(label) for label in ("scope", "target"))
    sel = f"{P}_capacity_{series}{{{t.jobs.capacity_selector},{same}}}"
    return (f"{{{{ with printf `{sel}` $labels.scope $labels.target | query }}}}{then}"
            f"{{{{ else }}}}{missing}{{{{ end }}}}")


def _value(var: str) -> str:
    return f"{{{{ {var} := . | first | value }}}}"


def capacity_alerts(t: Thresholds) -> list[dict[str, Any]]:
    """Capacity is proven by load tests, never judged against live traffic: a ticket
    when the last proof failed or has grown old. A missed target's ticket states the
    measured and the required figure and the run that measured it, in its summary
    too: the tickets of several missed targets arrive as one notification, one line
    each."""
    age = window(t.alerting.validation_max_age)
    at_most = _pushed(t, "required_max", _value("$hi") + "at most " + _figure("$hi"),
                      "not pushed")
    required = _pushed(
        t, "required_min", _value("$lo") + _pushed(
            t, "required_max",
            _value("$hi") + "between " + _figure("$lo") + " and " + _figure("$hi"),
            "at least " + _figure("$lo")), at_most)
    # (An older tool pushed verdicts without figures or run: said, not left blank.)
    figures = _pushed(t, "measured", f'{_value("$m")}measured {_figure("$m")}, required '
                      f"{required}", "no figures pushed")
    run_id = _pushed(t, "run_info", '(run {{ . | first | label "run_id" }})', "(no run pushed)")
    run = _pushed(t, "run_info", '{{ with . | first }}Run {{ .Labels.run_id }} '
                  '({{ .Labels.command }}){{ with .Labels.platform }} on {{ . }}{{ end }}.'
                  '{{ end }}', "Which run measured it was not pushed.")
    target = "{{ $labels.scope }} {{ $labels.target }}"
    return [
        _rule(t, "CapacityValidationFailed",
              f"max by (scope, target) ({P}_capacity_verdict{{{t.jobs.capacity_selector}}}) == 0",
              "ticket", 0,
              f"{target} missed its capacity target: {figures} {run_id}.",
              f"{target}: the last load test that measured it missed its target in "
              f"thresholds.yml: {figures}. {run} Fix (the run's report says where), then "
              "run the load test and validate again."),
        _rule(t, "CapacityValidationStale",
              f"{capacity_age_expr(t)} > {t.alerting.validation_max_age:g}", "ticket", 0,
              "A capacity target has not been proven for a while.",
              "{{ $labels.scope }} {{ $labels.target }} was last proven by a load test "
              "{{ $value | humanizeDuration }} ago (more than " + age + "): run the load "
              "test and validate again, so the capacity figures reflect the platform as "
              "it is deployed now."),
    ]


def alerting_rules(t: Thresholds) -> list[dict[str, Any]]:
    return [*burn_rate_alerts(t), *saturation_alerts(t), *prober_alerts(t), *capacity_alerts(t)]
