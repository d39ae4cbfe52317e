"""promtool unit tests for every alert: just below and just above each threshold,
just before and just after each `for:` window; and for the recording rules."""

from __future__ import annotations

from nautilus_wire.protocol import BASELINE_ENGINE

from .thresholds import Thresholds

from .rules import JOB, P, Alert, alerts, runbook_url, window

HEALTHY_ENGINE = "ml"  # a second engine in each test, which must stay quiet


def _series(alert: Alert, labels: dict[str, str]) -> str:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{alert.metric}{{{inner}}}" if inner else alert.metric


def _expected(t: Thresholds, alert: Alert, level: str, value: float) -> dict:
    return {"exp_labels": {"severity": level, **alert.labels},
            "exp_annotations": {
                "summary": alert.summary,
                "description": alert.description.replace("{v}", f"{value:.3g}")
                .replace("{{ $labels.engine }}", alert.labels.get("engine", ""))
                .replace("{{ $labels.op }}", alert.labels.get("op", "")),
                "runbook_url": runbook_url(t, alert.name)}}


def _case(t: Thresholds, alert: Alert, value: float, healthy: float, evals: list[tuple[float, list[str]]]) -> dict:
    series = [{"series": _series(alert, alert.labels), "values": f"{value:g}x60"}]
    if "engine" in alert.labels and "op" not in alert.labels:
        series.append({"series": _series(alert, {**alert.labels, "engine": HEALTHY_ENGINE}),
                       "values": f"{healthy:g}x60"})
    return {"interval": "1m", "input_series": series, "alert_rule_test": [
        {"eval_time": window(at), "alertname": alert.name,
         "exp_alerts": [_expected(t, alert, level, value) for level in levels]}
        for at, levels in evals]}


def alert_tests(t: Thresholds) -> list[dict]:
    a = t.alerting
    fors = {"warning": a.for_warning, "critical": a.for_critical}
    tests = []
    for alert in alerts(t):
        levels = alert.thresholds(a.warning_fraction)
        if "outside" in {op for op, _ in levels.values()}:
            lo, hi = alert.limit.min, alert.limit.max
            inside = (lo + hi) / 2
            for bad in (lo * 0.95, hi * 1.05):
                tests.append(_case(t, alert, bad, inside, [
                    (fors["warning"] - 60, []), (fors["warning"] + 60, ["warning"])]))
            tests.append(_case(t, alert, inside, inside, [(fors["warning"] + 600, [])]))
            continue
        op = next(iter(levels.values()))[0]
        worse = (lambda v: v * 1.05) if op == ">" else (lambda v: v * 0.95)
        better = (lambda v: v * 0.95) if op == ">" else (lambda v: v * 1.05)
        crit = levels["critical"][1]
        healthy = better(levels.get("warning", levels["critical"])[1])
        # Just past the critical limit: nothing before its `for`, then critical,
        # then warning too once the warning's `for` has passed.
        steps = [(fors["critical"] - 60, []), (fors["critical"] + 60, ["critical"])]
        if "warning" in levels:
            steps.append((fors["warning"] + 60, ["warning", "critical"]))
        tests.append(_case(t, alert, worse(crit), healthy, steps))
        # Just short of the critical limit: never critical.
        if "warning" in levels:
            warn = levels["warning"][1]
            tests.append(_case(t, alert, better(crit), healthy, [
                (fors["warning"] - 60, []), (fors["warning"] + 60, ["warning"])]))
            # Just short of the warning: nothing at all.
            tests.append(_case(t, alert, better(warn), healthy, [(fors["warning"] + 600, [])]))
        else:
            tests.append(_case(t, alert, better(crit), healthy, [(fors["critical"] + 600, [])]))
    return tests


def measurement_tests(t: Thresholds) -> list[dict]:
    inst = {"instance": "exporter:9478", "job": JOB}
    lab = 'instance="exporter:9478",job="nautilus-probe"'
    stale = t.alerting.stale_after

    def case(series: list[dict], alert: str, before: str, after: str, labels: dict) -> dict:
        return {"interval": "1m", "input_series": series, "alert_rule_test": [
            {"eval_time": before, "alertname": alert, "exp_alerts": []},
            {"eval_time": after, "alertname": alert, "exp_alerts": [{"exp_labels": labels}]}]}

    def strip(test: dict) -> dict:  # their annotations are static: check labels only
        for step in test["alert_rule_test"]:
            for exp in step["exp_alerts"]:
                exp["exp_annotations"] = _static_annotations(t, step["alertname"], exp["exp_labels"])
        return test

    return [strip(x) for x in (
        case([{"series": f"up{{{lab}}}", "values": "1 0x10"}], "ExporterDown", "1m", "3m",
             {"severity": "critical", **inst}),
        case([{"series": f"{P}_messagebus_up{{{lab}}}", "values": "0x10"}], "MessageBusUnreachable",
             "30s", "2m", {"severity": "critical", **inst}),
        case([{"series": f'{P}_engine_report_age_seconds{{engine="risk",{lab}}}',
               "values": f"{stale * 2:g}x10"}], "EngineSelfReportStale", "1m", "3m",
             {"severity": "warning", "engine": "risk", **inst}),
        case([{"series": f'{P}_loop_restarts_total{{loop="messagebus_send",{lab}}}',
               "values": "0+1x20"}], "ProbeLoopRestarting", "1m", "6m",
             {"severity": "critical", "loop": "messagebus_send", **inst}),
        case([{"series": f"{P}_probes_skipped_total{{engine=\"risk\",op=\"alert\",{lab}}}",
               "values": "0+60x20"}], "ProberSaturated", "4m", "7m",
             {"severity": "warning", "instance": "exporter:9478"}),
    )]


def _static_annotations(t: Thresholds, alert: str, labels: dict) -> dict:
    from .rules import _measurement_alerts

    rule = next(r for r in _measurement_alerts(t) if r["alert"] == alert)
    ann = dict(rule["annotations"])
    for key, value in labels.items():
        ann["description"] = ann["description"].replace(f"{{{{ $labels.{key} }}}}", value)
    return ann


def recording_tests(t: Thresholds) -> list[dict]:
    """Raw exporter series in, recorded values out: the recording rules compute
    what the dashboards and alerts assume."""
    w = t.alerting.rate_window
    end = window(w + 120)
    r = 'engine="risk",op="limit_check"'
    return [{
        "interval": "1m",
        "input_series": [
            # 100 probes/min, 2 failures/min; successful ones average 40 ms.
            {"series": f"{P}_requests_total{{{r}}}", "values": "0+100x30"},
            {"series": f"{P}_failures_total{{{r},reason=\"timeout\"}}", "values": "0+2x30"},
            {"series": f"{P}_latency_seconds_count{{{r}}}", "values": "0+98x30"},
            {"series": f"{P}_latency_seconds_sum{{{r}}}", "values": "0+3.92x30"},
            {"series": f'{P}_latency_seconds_bucket{{{r},le="0.05"}}', "values": "0+98x30"},
            {"series": f'{P}_latency_seconds_bucket{{{r},le="+Inf"}}', "values": "0+98x30"},
            {"series": f'{P}_engine_reported_operations_per_second{{engine="risk"}}', "values": "1500x30"},
            {"series": f'{P}_engine_reported_operations_per_second{{engine="{BASELINE_ENGINE}"}}', "values": "5x30"},
        ],
        "promql_expr_test": [
            _about(f"{P}:engine_error_ratio:rate", 'engine="risk"', 0.02, end),
            _about(f"{P}:engine_latency_seconds:mean", 'engine="risk"', 0.04, end),
            _about(f"{P}:engine_probe_throughput:rate", 'engine="risk"', 98 / 60, end),
            _about(f"{P}:engine_latency_seconds:p99", 'engine="risk"', 0.0495, end),
            _about(f"{P}:system_error_ratio:rate", "", 0.02, end),
            # The monolith is the baseline, not part of the system.
            _about(f"{P}:system_throughput:reported", "", 1500, end),
        ]}]


def _about(expr: str, labels: str, value: float, at: str) -> dict:
    """`expr` is within 0.1 % of `value` (rates carry float noise)."""
    sel = f"{expr}{{{labels}}}" if labels else expr
    return {"expr": f"({sel} > bool {value * 0.999!r}) * ({sel} < bool {value * 1.001!r})",
            "eval_time": at, "exp_samples": [{"labels": f"{{{labels}}}", "value": 1}]}


def unit_tests(t: Thresholds) -> list[dict]:
    return [*alert_tests(t), *measurement_tests(t), *recording_tests(t)]
