"""The four dashboards: system overview, engine, WebSocket, prober health.

Targets and colours come from thresholds.yml; `python -m dashboards` writes
dashboards/generated/*.json (sorted keys, stable uids).
"""

from __future__ import annotations

from grafanalib.core import Dashboard, Template, Templating, Time

from alerts.rules import NOT_BASELINE, P
from alerts.thresholds import Thresholds
from nautilus_wire.protocol import BASELINE_ENGINE

from .panels import DATASOURCE, RATE, heatmap, stat, target, targets, timeseries

PASS_FAIL = [{"type": "value", "options": {"0": {"text": "FAIL", "color": "red"},
                                            "1": {"text": "PASS", "color": "green"}}}]


def _dashboard(uid: str, title: str, panels: list, templating: list | None = None) -> Dashboard:
    return Dashboard(uid=uid, title=title, panels=panels, tags=["nautilus-probe"],
                     time=Time("now-30m", "now"), refresh="10s", timezone="utc",
                     templating=Templating(templating or [])).auto_panel_ids()


def overview(t: Thresholds) -> Dashboard:
    s = t.system
    thr, lat, err = (s["throughput_ops_per_second"], s["latency_average_seconds"],
                     s["error_ratio"])
    ws, cpu = s["websocket_connections"], s["cpu_busy_ratio"]
    trade = f"{P}_trading_request_latency_seconds"
    verdicts = [
        (f"{P}:system_throughput:reported >= bool {thr.min:g}", "throughput"),
        (f"{P}:system_latency_seconds:mean < bool {lat.max:g}", "latency"),
        (f"{P}:system_error_ratio:rate < bool {err.max:g}", "errors"),
        (f"{P}:ws_connections_open:sum >= bool {ws.min:g}", "websocket"),
        (f"({P}:system_cpu_ratio:reported >= bool {cpu.min:g}) * "
         f"({P}:system_cpu_ratio:reported <= bool {cpu.max:g})", "cpu efficiency"),
    ]
    return _dashboard("nautilus-overview", "Nautilus: system overview", [
        stat("Throughput (reported)", [target(f"{P}:system_throughput:reported")], (0, 0, 6, 4),
             "ops", (thr.min, None), f"Target: at least {thr.min:g} ops/s."),
        stat("End-to-end latency (avg)", [target(f"{P}:system_latency_seconds:mean")],
             (6, 0, 6, 4), "s", (None, lat.max), f"Trading request; target under {lat.max:g} s."),
        stat("Error ratio", [target(f"{P}:system_error_ratio:rate")], (12, 0, 6, 4),
             "percentunit", (None, err.max)),
        stat("WebSocket connections", [target(f"{P}:ws_connections_open:sum")], (18, 0, 6, 4),
             "short", (ws.min, None)),
        stat("Targets", targets(*verdicts), (0, 4, 24, 4), mappings=PASS_FAIL,
             description="1 = target met (PASS), 0 = missed (FAIL), from thresholds.yml."),
        timeseries("Throughput vs target", targets(
            (f"{P}:system_throughput:reported", "reported, all engines"),
            (f"sum(rate({P}_latency_seconds_count{{{NOT_BASELINE}}}[{RATE}]))", "probes answered")),
            (0, 8, 12, 8), "ops", (thr.min, None)),
        timeseries("End-to-end latency vs target", targets(
            (f"sum(rate({trade}_sum[{RATE}])) / sum(rate({trade}_count[{RATE}]))", "avg"),
            (f"histogram_quantile(0.95, sum by (le) (rate({trade}_bucket[{RATE}])))", "p95"),
            (f"histogram_quantile(0.99, sum by (le) (rate({trade}_bucket[{RATE}])))", "p99"),
            (f"sum(rate({P}_latency_seconds_sum{{engine=\"{BASELINE_ENGINE}\"}}[{RATE}])) / "
             f"sum(rate({P}_latency_seconds_count{{engine=\"{BASELINE_ENGINE}\"}}[{RATE}]))",
             "monolith baseline avg")),
            (12, 8, 12, 8), "s", (None, lat.max)),
        timeseries("Error ratio", targets(
            (f"sum(rate({P}_failures_total{{{NOT_BASELINE}}}[{RATE}])) / "
             f"sum(rate({P}_requests_total{{{NOT_BASELINE}}}[{RATE}]))", "all engines")),
            (0, 16, 12, 8), "percentunit", (None, err.max)),
        timeseries("WebSocket connections", targets(
            (f"sum({P}_ws_connections_open)", "open")), (12, 16, 12, 8), "short", (ws.min, None)),
    ])


def engine(t: Thresholds) -> Dashboard:
    e = t.engine
    sel = 'engine="$engine"'
    lat = f"{P}_latency_seconds"
    var = Template(name="engine", label="Engine", dataSource=DATASOURCE,
                   query=f"label_values({P}_requests_total, engine)", default="risk", refresh=2)
    return _dashboard("nautilus-engine", "Nautilus: engine", [
        stat("Throughput (reported)", [target(f"{P}:engine_throughput:reported{{{sel}}}")],
             (0, 0, 8, 4), "ops", (e["throughput_ops_per_second"].min, None)),
        stat("Average latency (probes)", [target(
            f"sum(rate({lat}_sum{{{sel}}}[{RATE}])) / sum(rate({lat}_count{{{sel}}}[{RATE}]))")],
            (8, 0, 8, 4), "s", (None, e["latency_average_seconds"].max)),
        stat("Error ratio", [target(f"sum(rate({P}_failures_total{{{sel}}}[{RATE}])) / "
                                    f"sum(rate({P}_requests_total{{{sel}}}[{RATE}]))")],
             (16, 0, 8, 4), "percentunit", (None, e["error_ratio"].max)),
        timeseries("Answered probes per operation", targets(
            (f"sum by (op) (rate({lat}_count{{{sel}}}[{RATE}]))", "{{op}}")), (0, 4, 12, 8), "ops"),
        heatmap("Latency heatmap", f"sum by (le) (rate({lat}_bucket{{{sel}}}[{RATE}]))",
                (12, 4, 12, 8)),
        timeseries("Latency quantiles per operation", targets(
            (f"histogram_quantile(0.5, sum by (op, le) (rate({lat}_bucket{{{sel}}}[{RATE}])))", "p50 {{op}}"),
            (f"histogram_quantile(0.95, sum by (op, le) (rate({lat}_bucket{{{sel}}}[{RATE}])))", "p95 {{op}}"),
            (f"histogram_quantile(0.99, sum by (op, le) (rate({lat}_bucket{{{sel}}}[{RATE}])))", "p99 {{op}}")),
            (0, 12, 12, 8), "s", (None, e["latency_average_seconds"].max)),
        timeseries("Failures by reason", targets(
            (f"sum by (reason) (rate({P}_failures_total{{{sel}}}[{RATE}]))", "{{reason}}")),
            (12, 12, 12, 8), "ops"),
        timeseries("Integrity: lost, late, duplicate, out of order", targets(
            (f"sum(rate({P}_replies_lost_total{{{sel}}}[{RATE}]))", "lost"),
            (f"sum(rate({P}_replies_late_total{{{sel}}}[{RATE}]))", "late"),
            (f"sum(rate({P}_replies_duplicate_total{{{sel}}}[{RATE}]))", "duplicate"),
            (f"sum(rate({P}_replies_out_of_order_total{{{sel}}}[{RATE}]))", "out of order")),
            (0, 20, 12, 8), "ops"),
        timeseries("Self-reported CPU and memory", targets(
            (f"{P}:engine_cpu_ratio:reported{{{sel}}}", "CPU (share of a core)"),
            (f"{P}:engine_memory_bytes:reported{{{sel}}} / 1e9", "memory (GB)")),
            (12, 20, 12, 8), "short"),
    ], templating=[var])


def websocket(t: Thresholds) -> Dashboard:
    hb = t.websocket["heartbeat_p99_seconds"]
    return _dashboard("nautilus-websocket", "Nautilus: WebSocket", [
        timeseries("Open connections per endpoint", targets(
            (f"sum by (endpoint) ({P}_ws_connections_open)", "{{endpoint}}")), (0, 0, 12, 8),
            "short"),
        timeseries("Heartbeat p99 per endpoint", targets(
            (f"histogram_quantile(0.99, sum by (endpoint, le) "
             f"(rate({P}_ws_heartbeat_latency_seconds_bucket[{RATE}])))", "{{endpoint}}")),
            (12, 0, 12, 8), "s", (None, hb.max)),
        timeseries("Connect time p99", targets(
            (f"histogram_quantile(0.99, sum by (endpoint, le) "
             f"(rate({P}_ws_connect_duration_seconds_bucket[{RATE}])))", "{{endpoint}}")),
            (0, 8, 12, 8), "s"),
        timeseries("Connect failures and disconnects", targets(
            (f"sum by (reason) (rate({P}_ws_connect_failures_total[{RATE}]))", "connect: {{reason}}"),
            (f"sum by (reason) (rate({P}_ws_disconnects_total[{RATE}]))", "disconnect: {{reason}}")),
            (12, 8, 12, 8), "ops"),
        timeseries("Messages", targets(
            (f"sum(rate({P}_ws_messages_sent_total[{RATE}]))", "sent"),
            (f"sum(rate({P}_ws_messages_received_total[{RATE}]))", "received"),
            (f"sum(rate({P}_ws_error_replies_total[{RATE}]))", "error replies"),
            (f"sum(rate({P}_ws_timeouts_total[{RATE}]))", "timeouts")), (0, 16, 12, 8), "ops"),
        timeseries("Broadcast frames and gaps", targets(
            (f"sum(rate({P}_ws_broadcast_frames_total[{RATE}]))", "frames"),
            (f"sum(rate({P}_ws_broadcast_gaps_total[{RATE}]))", "gaps")), (12, 16, 12, 8), "ops"),
    ])


def prober(t: Thresholds) -> Dashboard:
    return _dashboard("nautilus-prober", "Nautilus: prober health", [
        timeseries("Schedule lag p99", targets(
            (f"histogram_quantile(0.99, sum by (instance, le) "
             f"(rate({P}_schedule_lag_seconds_bucket[{RATE}])))", "{{instance}}")),
            (0, 0, 12, 8), "s", (None, 0.05)),
        timeseries("Event-loop lag p99", targets(
            (f"histogram_quantile(0.99, sum by (instance, le) "
             f"(rate({P}_event_loop_lag_seconds_bucket[{RATE}])))", "{{instance}}")),
            (12, 0, 12, 8), "s"),
        timeseries("Skipped probes", targets(
            (f"sum by (instance) (rate({P}_probes_skipped_total[{RATE}]))", "{{instance}}")),
            (0, 8, 12, 8), "ops"),
        timeseries("Probes in flight", targets(
            (f"sum by (instance) ({P}_in_flight)", "{{instance}}")), (12, 8, 12, 8), "short"),
        timeseries("Unattributable replies", targets(
            (f"sum(rate({P}_replies_malformed_total[{RATE}]))", "malformed"),
            (f"sum(rate({P}_replies_unmatched_total[{RATE}]))", "unmatched")), (0, 16, 12, 8), "ops"),
        stat("MessageBus up", [target(f"min({P}_messagebus_up)")], (12, 16, 6, 4), "short",
             (1, None)),
        stat("Last config reload", [target(f"min({P}_config_last_reload_successful)")],
             (18, 16, 6, 4), "short", (1, None)),
    ])


DASHBOARDS = {"overview": overview, "engine": engine, "websocket": websocket, "prober": prober}
