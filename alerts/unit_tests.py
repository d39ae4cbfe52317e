"""promtool unit tests generated with the rules: each threshold alert just before
and after its `for:`, with a healthy second series that must stay quiet; and the
recording rules. The burn-rate alerts, and CapacityValidationFailed's texts (each
queried from the pushed figures), are tested by hand-written cases instead
(alerts/tests/), whose numbers do not come from this code."""

from __future__ import annotations

from typing import Any
import re

from exporter.metrics import NAMESPACE as P
from nautilus_wire.protocol import BASELINE_ENGINE

from .rules import alerting_rules, window
from .thresholds import Thresholds

INSTANCE = "exporter:9478"


def humanize_duration(seconds: float) -> str:
    """Prometheus's humanizeDuration, for whole seconds of a minute or more."""
    s = int(seconds)
    d, h, m, sec = s // 86400, s // 3600 % 24, s // 60 % 60, s % 60
    if d:
        return f"{d}d {h}h {m}m {sec}s"
    if h:
        return f"{h}h {m}m {sec}s"
    return f"{m}m {sec}s"


def render(text: str, labels: dict[str, str], value: float) -> str:
    """An annotation as Prometheus expands it, for the templates the rules use."""
    text = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), ""), text)
    text = text.replace("{{ $value | humanizeDuration }}", humanize_duration(value))
    return re.sub(r'\{\{ \$value \| printf "(%[^"]+)" \}\}', lambda m: m.group(1) % value, text)


def threshold_tests(t: Thresholds) -> list[dict[str, Any]]:
    rules = {r["alert"]: r for r in alerting_rules(t)}
    a = t.alerting
    inst = {"instance": INSTANCE, "job": t.jobs.exporter}
    lab = ",".join(f'{k}="{v}"' for k, v in inst.items())
    cap = t.jobs.capacity_selector
    after_page = window(a.for_page + 120)
    after_ticket = window(a.for_ticket + 120)

    def case(alert: str, series: list[tuple[str, str]], before: str, after: str,
             labels: dict[str, str], value: float) -> dict[str, Any]:
        rule = rules[alert]
        ann = {k: render(v, labels, value) for k, v in rule["annotations"].items()}
        return {"interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series],
                "alert_rule_test": [
                    {"eval_time": before, "alertname": alert, "exp_alerts": []},
                    {"eval_time": after, "alertname": alert, "exp_alerts": [
                        {"exp_labels": {**rule["labels"], **labels}, "exp_annotations": ann}]}]}

    backlog = a.backlog_messages
    step = backlog / 5  # past the limit after six minutes, still growing
    return [
        # risk's backlog grows past the limit; ml's is larger but steady: quiet.
        case("EngineBacklogGrowing", [
            (f'{P}_messagebus_pending_messages{{engine="risk",{lab}}}', f"0+{step:g}x30"),
            (f'{P}_messagebus_lag_messages{{engine="risk",{lab}}}', "0x30"),
            (f'{P}_messagebus_pending_messages{{engine="ml",{lab}}}', f"{backlog * 5:g}x30"),
            (f'{P}_messagebus_lag_messages{{engine="ml",{lab}}}', "0x30")],
            "5m", window(6 * 60 + a.for_page + 120), {"engine": "risk"},
            step * (6 + (a.for_page + 120) / 60)),
        # risk's only responder is killed at 5m (still in the group: consumers 1);
        # the exporter sees it inactive by 5m30s at the latest (15 s + a poll + a
        # scrape); the page fires `for:` later: within 2 minutes of the kill.
        {**case("EngineNoResponders", [
            (f'{P}_messagebus_consumers_active{{engine="risk",{lab}}}', "1x20 0x20"),
            (f'{P}_messagebus_consumers{{engine="risk",{lab}}}', "1x40"),
            (f'{P}_messagebus_consumers_active{{engine="ml",{lab}}}', "1x40")],
            window(330 + a.for_no_responders - 30), window(330 + a.for_no_responders),
            {"engine": "risk"}, 0), "interval": "15s"},
        case("WebSocketConnectionsBelowConfigured", [
            (f'{P}_ws_connections_open{{endpoint="ws://a/ws",{lab}}}', "90x10"),
            (f'{P}_ws_connections_desired{{endpoint="ws://a/ws",{lab}}}', "100x10"),
            (f'{P}_ws_connections_open{{endpoint="ws://b/ws",{lab}}}', "100x10"),
            (f'{P}_ws_connections_desired{{endpoint="ws://b/ws",{lab}}}', "100x10")],
            "1m", after_page, {"endpoint": "ws://a/ws"}, 10),
        case("WebSocketConnectFailing", [
            (f'{P}_ws_connect_failures_total{{endpoint="ws://a/ws",reason="refused",{lab}}}',
             "0+60x20"),
            (f'{P}_ws_connect_failures_total{{endpoint="ws://b/ws",reason="refused",{lab}}}',
             "0x20")],
            "1m", window(a.rate_window + a.for_page + 120), {"endpoint": "ws://a/ws"}, 1),
        case("ExporterDown", [(f"up{{{lab}}}", "1 0x40")], "1m", after_page, inst, 0),
        case("MessageBusUnreachable", [(f"{P}_messagebus_up{{{lab}}}", "0x40")], "30s",
             after_page, inst, 0),
        case("EngineSelfReportStale", [(f'{P}_engine_report_age_seconds{{engine="risk",{lab}}}',
                                        f"{a.stale_after * 2:g}x40")], "1m", after_ticket,
             {"engine": "risk", **inst}, 0),
        # Three restarts a minute (exporter/supervise.py's trouble); ml's one: quiet.
        case("ProbeLoopRestarting", [(f'{P}_loop_restarts_total{{loop="messagebus_send",{lab}}}',
                                      "0+3x20"),
                                     (f'{P}_loop_restarts_total{{loop="backlog",{lab}}}',
                                      "0+1x20")], "0m", "2m",
             {"loop": "messagebus_send", **inst}, 0),
        case("ProberSaturated", [(f'{P}_probes_skipped_total{{engine="risk",op="alert",{lab}}}',
                                  "0+60x40")], "4m", after_ticket, {"instance": "exporter:9478"}, 0),
        # Measured validation_max_age - 5m before the test began, never again: stale
        # from 5m on.
        case("CapacityValidationStale", [
            (f'{P}_capacity_run_timestamp_seconds{{{cap},scope="system",'
             'target="throughput_ops_per_second"}',
             f"{300 - a.validation_max_age:g}x12")], "5m", "6m",
            {"scope": "system", "target": "throughput_ops_per_second"},
            a.validation_max_age + 60),
    ]


def recording_tests(t: Thresholds) -> list[dict[str, Any]]:
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
            {"series": f'{P}_engine_reported_operations_per_second{{engine="{BASELINE_ENGINE}"}}',
             "values": "5x30"},
            # ml answers nothing: no latency figure at all, never NaN.
            {"series": f'{P}_requests_total{{engine="ml",op="process"}}', "values": "0+100x30"},
            {"series": f'{P}_failures_total{{engine="ml",op="process",reason="error"}}',
             "values": "0+100x30"},
            {"series": f'{P}_latency_seconds_count{{engine="ml",op="process"}}', "values": "0x30"},
            {"series": f'{P}_latency_seconds_sum{{engine="ml",op="process"}}', "values": "0x30"},
            {"series": f'{P}_latency_seconds_bucket{{engine="ml",op="process",le="+Inf"}}',
             "values": "0x30"},
        ],
        "promql_expr_test": [
            _about(f"{P}:engine_error_ratio:rate", 'engine="risk"', 0.02, end),
            _about(f"{P}:engine_latency_seconds:mean", 'engine="risk"', 0.04, end),
            _about(f"{P}:engine_probe_throughput:rate", 'engine="risk"', 98 / 60, end),
            _about(f"{P}:engine_latency_seconds:p99", 'engine="risk"', 0.0495, end),
            _about(f"{P}:system_error_ratio:rate", "", 0.51, end),
            {"expr": f'{P}:engine_latency_seconds:mean{{engine="ml"}}', "eval_time": end,
             "exp_samples": []},
            {"expr": f'{P}:engine_latency_seconds:p99{{engine="ml"}}', "eval_time": end,
             "exp_samples": []},
            # The monolith is the baseline, not part of the system.
            _about(f"{P}:system_throughput:reported", "", 1500, end),
        ]}]


def _about(expr: str, labels: str, value: float, at: str) -> dict[str, Any]:
    """`expr` is within 0.1 % of `value` (rates carry float noise)."""
    sel = f"{expr}{{{labels}}}" if labels else expr
    return {"expr": f"({sel} > bool {value * 0.999!r}) * ({sel} < bool {value * 1.001!r})",
            "eval_time": at, "exp_samples": [{"labels": f"{{{labels}}}", "value": 1}]}


def unit_tests(t: Thresholds) -> list[dict[str, Any]]:
    return [*threshold_tests(t), *recording_tests(t)]
