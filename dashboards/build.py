"""The four dashboards: system overview, engine, WebSocket, prober health.

Targets and colours come from thresholds.yml; `python -m dashboards` writes
dashboards/generated/*.json (sorted keys, stable uids).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from grafanalib.core import Annotations, Dashboard, DashboardLink, Template, Templating, Time

from alerts import capacity, promql
from alerts.rules import NOT_BASELINE, backlog_expr, capacity_age_expr, window
from exporter.metrics import NAMESPACE as P
from exporter.probes.registry import KINDS
from alerts.thresholds import Limit, Thresholds
from nautilus_wire.protocol import BASELINE_ENGINE

from .panels import (DATASOURCE, FILTER, RATE, alert_list, flow, heatmap, row, sel, stat, table,
                     target, targets, timeseries, variables)

# Grafana 11.1 (the compose file's image) writes this; tests/test_dashboards.py checks
# it against Grafana's published types of the same release.
SCHEMA_VERSION = 39
UIDS = {"overview": "nautilus-overview", "engine": "nautilus-engine",
        "websocket": "nautilus-websocket", "prober": "nautilus-prober"}
# A capacity verdict: -1 is a target no load test has proven yet, -2 one no command
# measures yet (both neutral, not red).
NO_LOAD_TEST, NO_COMMAND_YET = -1, -2
VERDICT = [{"type": "value", "options": {
    "0": {"text": "FAIL", "color": "red", "index": 0},
    "1": {"text": "PASS", "color": "green", "index": 1},
    str(NO_LOAD_TEST): {"text": "no load test yet", "color": "text", "index": 2},
    str(NO_COMMAND_YET): {"text": "no command measures this yet", "color": "text", "index": 3}}}]
TIMES = "suffix:×"  # an improvement factor
VARS = "${datasource:queryparam}&${job:queryparam}&${instance:queryparam}"


def _lim(limit: Limit) -> tuple[float | None, float | None]:
    return limit.min, limit.max


def dashboard_annotations() -> Annotations:
    """Configuration reloads, MessageBus failovers and alerts, drawn on every time series."""
    return Annotations([
        {"builtIn": 1, "datasource": {"type": "grafana", "uid": "-- Grafana --"},
         "enable": True, "hide": True, "iconColor": "rgba(0, 211, 255, 1)",
         "name": "Annotations & Alerts", "type": "dashboard"},
        {"datasource": DATASOURCE, "enable": True, "iconColor": "blue",
         "name": "Configuration reloads", "step": "15s", "titleFormat": "Configuration loaded",
         "textFormat": "{{instance}}", "useValueForTime": False,
         "expr": f"changes({P}_config_last_reload_success_timestamp_seconds{sel()}[1m]) > 0"},
        # A Sentinel or Cluster failover: the gap and the failures beside it are the
        # bus's, not the engines' (docs/runbook.md "MessageBus failover").
        {"datasource": DATASOURCE, "enable": True, "iconColor": "orange",
         "name": "MessageBus failovers", "step": "15s", "titleFormat": "MessageBus master moved",
         "textFormat": "{{instance}}", "useValueForTime": False,
         "expr": f"increase({P}_messagebus_master_changes_total{sel()}[1m]) > 0"},
        {"datasource": DATASOURCE, "enable": True, "iconColor": "red", "name": "Alerts",
         "step": "15s", "titleFormat": "{{alertname}} ({{severity}})",
         "textFormat": "{{engine}} {{instance}}", "tagKeys": "severity,engine",
         "useValueForTime": False, "expr": 'ALERTS{alertstate="firing"}'},
    ])


def _dashboard(t: Thresholds, name: str, title: str, panels: list[Any],
               extra_vars: list[Template] | None = None, description: str = "") -> Dashboard:
    links = [DashboardLink(title="Nautilus dashboards", type="dashboards", tags=["nautilus-probe"],
                           asDropdown=True, includeVars=True, keepTime=True)]
    if name == "engine":
        links.append(DashboardLink(title="Prober health", type="link", icon="dashboard",
                                   uri=f"/d/{UIDS['prober']}?{VARS}", keepTime=True,
                                   tooltip="Is the prober itself healthy? Read this before "
                                           "trusting the engine's figures."))
    return Dashboard(uid=UIDS[name], title=title, description=description,
                     panels=flow(panels), tags=["nautilus-probe"], schemaVersion=SCHEMA_VERSION,
                     time=Time("now-30m", "now"), refresh="10s", timezone="utc", graphTooltip=1,
                     links=links, annotations=dashboard_annotations(),
                     templating=Templating([*variables(t.jobs.exporter), *(extra_vars or [])]))


def _ratio(num: str, den: str, by: str = "", matchers: str = "", rng: str = RATE) -> str:
    agg = f"sum by ({by})" if by else "sum"
    return (f"{agg} (rate({num}{sel(matchers)}[{rng}])) / "
            f"{agg} (rate({den}{sel(matchers)}[{rng}]))")


def _error_ratio(by: str = "", matchers: str = "", rng: str = RATE) -> str:
    """Failed over sent probes."""
    return _ratio(f"{P}_failures_total", f"{P}_requests_total", by, matchers, rng)


def _quantile(q: float, metric: str, by: str = "", matchers: str = "", rng: str = RATE) -> str:
    keys = f"{by}, le" if by else "le"
    # NaN (nothing answered) fails the comparison: no value, "no successful requests".
    return (f"(histogram_quantile({q}, sum by ({keys}) (rate({metric}_bucket{sel(matchers)}"
            f"[{rng}]))) >= 0)")


def _mean(metric: str, by: str = "", matchers: str = "") -> str:
    """Over answered requests; none answered is no value (the panel says so), never NaN."""
    return f"({_ratio(f'{metric}_sum', f'{metric}_count', by, matchers)} > 0)"


LAT = f"{P}_latency_seconds"
SERVICE = f"{P}_service_seconds"
TRADE = f"{P}_trading_request_latency_seconds"
BACKLOG = backlog_expr(sel(NOT_BASELINE))


NO_SUCCESS = "no successful requests"


def capacity_targets(t: Thresholds) -> list[tuple[str, str]]:
    """(scope, target) of every capacity target the overview lists before a load test
    proved it (push.py's labels): the system's headline ones and each full cycle."""
    return [("system", "throughput_ops_per_second"), ("system", "throughput_improvement_ratio"),
            ("system", "websocket_connections"), ("system", "cpu_busy_ratio"),
            *((eng, "full_cycle_seconds") for eng in sorted(t.full_cycle))]


def _never_validated(t: Thresholds, kind: capacity.Kind) -> str:
    """A placeholder for each capacity target of `kind`, labelled like a pushed verdict:
    `or`-ed after the verdicts, it leaves a row for each target no load test proved,
    -2 where no command measures it (alerts/capacity.py), else -1."""
    def placeholder(scope: str, name: str) -> str:
        value = NO_COMMAND_YET if name in capacity.NO_COMMAND else NO_LOAD_TEST
        return (f'label_replace(label_replace(vector({value}), "scope", {promql.string(scope)}, '
                f'"", ""), "target", {promql.string(name)}, "", "")')
    return " or ".join(placeholder(scope, name) for scope, name in capacity_targets(t)
                       if capacity.kind(name) == kind)


def service_now(t: Thresholds) -> list[Any]:
    """The live objectives, each over the same recent window as the alerts' gate: green
    on a healthy platform, whatever traffic flows."""
    s, a, o = t.system, t.alerting, t.objectives
    w = window(a.recent)
    lat, err = s["latency_average_seconds"], s["error_ratio"]
    note = f"Over the last {w} (the recording rules), every instance."
    return [
        row(f"Service now: the live objectives, over the last {w}"),
        stat("Availability (worst engine)", [target(
            f"min((1 - {P}:engine_availability_errors:ratio_rate{w}) >= 0)")], "percentunit",
            (4, 4), (o.availability, None),
            f"The share of probes the least available engine answered ok; objective "
            f"{o.availability * 100:g}%. {note}", no_value="no probes sent"),
        stat("Within latency target (worst engine)", [target(
            f"min((1 - {P}:engine_latency_errors:ratio_rate{w}) >= 0)")], "percentunit",
            (4, 4), (o.latency, None),
            f"The share of answered probes under the engine's latency target "
            f"({t.engine['latency_average_seconds'].ceiling * 1e3:g} ms), least good engine; "
            f"objective {o.latency * 100:g}%. {note}", no_value=NO_SUCCESS),
        stat("End-to-end latency (avg)", [target(f"{P}:system_latency_seconds:mean")], "s",
             (4, 4), (None, lat.max),
             f"The trading request (its legs in parallel), successful ones; target under "
             f"{lat.max:g} s. {note}", no_value=NO_SUCCESS),
        stat("Error ratio", [target(f"{P}:system_error_ratio:rate")], "percentunit", (4, 4),
             (None, err.max), f"Failed probes to the containerized engines; target under "
             f"{err.max:g}. {note}", no_value="no probes sent"),
        stat("Backlog (largest engine)", [target(f"max({P}:engine_backlog_messages:max)")],
             "none", (4, 4), (None, a.backlog_messages),
             f"Requests waiting in the fullest engine's streams; above "
             f"{a.backlog_messages:g} (and growing) an engine cannot keep up.",
             no_value="no backlog read"),
        stat("Latency vs the monolith", [target(f"{P}:system_latency_improvement:ratio")],
             TIMES, (4, 4), (t.latency_factor, None),
             f"The monolith's measured latency over the trading request's; target "
             f"{t.latency_factor:g}×. Shown only while the error ratio meets its target: the "
             f"few requests that still succeed prove no improvement. {note}",
             no_value="not while requests fail"),
    ]


def _with_provenance(t: Thresholds, expr: str) -> str:
    """`expr` (a capacity series) only where its verdict says what it measured and in
    which run (push.py's run_info), labelled with both: a verdict without provenance
    (pushed by an older tool, or a fixture) is not shown."""
    cap = t.jobs.capacity_selector
    proven = f'max by (scope, target, run_id, platform) ({P}_capacity_run_info{{{cap},platform!=""}})'
    return (f"max by (scope, target, run_id, platform) (({expr}) * on (scope, target) "
            f"group_left (run_id, platform) {proven})")


# The label the capacity tables order their rows by (not shown): the system's rows
# first, then each engine's by name, each scope's targets by key. No shown column sorts
# that way (sorting on scope, descending to put "system" first, put "websocket" above it).
ROW_ORDER = "row_order"


def _in_row_order(expr: str) -> str:
    """`expr` (a capacity table's query) labelled with ROW_ORDER: "0 system <target>",
    "1 <engine> <target>"."""
    rank = (f'label_replace(label_replace({expr}, "{ROW_ORDER}", "1", "", ""), '
            f'"{ROW_ORDER}", "0", "scope", "system")')
    return f'label_join({rank}, "{ROW_ORDER}", " ", "{ROW_ORDER}", "scope", "target")'


@dataclass(frozen=True)
class CapacityTable:
    """The capacity targets of one kind, in the unit and decimals their figures need."""

    kind: capacity.Kind
    title: str
    unit: str
    decimals: int
    sides: str  # the required columns shown: "min", "max" or "both"
    size: tuple[int, int]


# One table per kind of capacity target: a Grafana column has one unit and one number of
# decimals, and 50,000 operations/s, 12.4 ms and a 0.45 % error ratio share neither.
CAPACITY_TABLES = (
    CapacityTable(capacity.THROUGHPUT, "throughput (operations/s)", "locale", 0, "min", (24, 8)),
    CapacityTable(capacity.TIME, "latency and duration", "s", 1, "max", (12, 8)),
    CapacityTable(capacity.RATIO, "error and CPU ratios", "percentunit", 2, "both", (12, 8)),
    CapacityTable(capacity.FACTOR, "improvement over the monolith", TIMES, 1, "min", (12, 4)),
    CapacityTable(capacity.COUNT, "WebSocket connections held", "locale", 0, "min", (12, 4)),
)


def capacity_last_proven(t: Thresholds) -> list[Any]:
    """Each capacity target's last load-test verdict, from the Pushgateway, with the run
    and the platform it measured, a table per kind of target: never coloured against
    live traffic; "no load test yet" and "no command measures this yet" are neutral."""
    by = "max by (scope, target)"
    cap = t.jobs.capacity_selector
    instant: dict[str, Any] = dict(fmt="table", instant=True)
    max_age = t.alerting.validation_max_age

    def kind_table(spec: CapacityTable) -> Any:
        mine = f'{cap},target=~"{spec.kind.keys}"'

        def proven(name: str) -> str:
            return _with_provenance(t, f"{by} ({P}_capacity_{name}{{{mine}}})")
        placeholders = _never_validated(t, spec.kind)
        verdicts = proven("verdict") + (f" or on (scope, target) ({placeholders})"
                                        if placeholders else "")
        columns: dict[str, tuple[str, str, tuple[float | None, float | None] | None]] = {
            "A": ("last verdict", "none", None), "B": ("measured", spec.unit, None)}
        exprs = {"A": verdicts, "B": proven("measured")}
        if spec.sides in ("min", "both"):
            columns["C"] = ("required at least", spec.unit, None)
            exprs["C"] = proven("required_min")
        if spec.sides in ("max", "both"):
            columns["D"] = ("required at most", spec.unit, None)
            exprs["D"] = proven("required_max")
        columns["E"] = ("age", "s", (None, max_age))
        exprs["E"] = _with_provenance(t, capacity_age_expr(t, spec.kind.keys))
        tgts = [target(_in_row_order(expr), ref=ref, **instant) for ref, expr in exprs.items()]
        return table(
            f"Capacity targets: {spec.title}", tgts, columns, spec.size,
            "Pushed by `nautilus-probe loadtest`, `validate` and `review` to the "
            "Pushgateway, one target at a time: each row is the last run that measured that "
            "target, with its run and the platform it measured (Redis and prefix, or the "
            "Prometheus a review read; an improvement factor names its two runs, the "
            "baseline's and the containerized one's); a verdict without them is not shown, and "
            "a figure too thin to judge is never pushed. \"no load test yet\": no run "
            "measured it against this Pushgateway; \"no command measures this yet\": no "
            "nautilus-probe command can (validate says what to read instead). Never compared "
            f"with live traffic. Age turns red after {window(max_age)} "
            "(CapacityValidationStale); a failed verdict raises CapacityValidationFailed.",
            mappings={"A": VERDICT}, row_order=ROW_ORDER,
            rename={"run_id": "run", "platform": "measured on"},
            decimals={"B": spec.decimals, "C": spec.decimals, "D": spec.decimals, "E": 0},
            # What, its verdict and figures, then where they come from (Prometheus gives
            # the labels in name order: provenance first).
            order=["scope", "target", *columns, "run_id", "platform"],
            widths={"A": 210})  # "no command measures this yet", whole
    return [row("Capacity, last proven: the load tests' verdicts (nautilus-probe validate)"),
            *(kind_table(spec) for spec in CAPACITY_TABLES)]


def overview(t: Thresholds) -> Dashboard:
    s, e = t.system, t.engine
    lat, err = s["latency_average_seconds"], s["error_ratio"]
    reported = f"sum(max by (engine) ({P}_engine_reported_operations_per_second{sel(NOT_BASELINE)}))"
    drill = f"/d/{UIDS['engine']}?var-engine=${{__data.fields.engine}}&{VARS}&${{__url_time_range}}"
    instant: dict[str, Any] = dict(fmt="table", instant=True)
    # The engines table judges over the Service-now window: a few seconds of a slowly
    # probed engine would turn one random error into a red cell.
    w = window(t.alerting.recent)
    return _dashboard(t, "overview", "Nautilus: system overview", [
        *service_now(t),
        *capacity_last_proven(t),
        row("Engines"),
        table(f"Engines against their objectives (last {w})", [
            target(f"max by (engine) ({P}_engine_reported_operations_per_second{sel(NOT_BASELINE)})",
                   ref="A", **instant),
            target(_quantile(0.5, LAT, "engine", NOT_BASELINE, w), ref="B", **instant),
            target(_quantile(0.99, LAT, "engine", NOT_BASELINE, w), ref="C", **instant),
            target(_error_ratio("engine", NOT_BASELINE, w), ref="D", **instant),
            target(_ratio(f"{P}_replies_lost_total", f"{P}_requests_total", "engine", NOT_BASELINE,
                          w), ref="E", **instant),
            target(BACKLOG, ref="F", **instant)], {
            "A": ("throughput (reported, ops/s)", "ops", None),
            "B": ("p50 latency", "s", (None, e["latency_average_seconds"].max)),
            "C": ("p99 latency", "s", (None, e["latency_average_seconds"].max)),
            "D": ("error ratio", "percentunit", _lim(e["error_ratio"])),
            "E": ("lost ratio", "percentunit", _lim(e["error_ratio"])),
            "F": ("backlog (requests)", "none", (None, t.alerting.backlog_messages))},
            (24, 9), f"One row per containerized engine (the monolith is the baseline), over the "
            f"last {w} like the row above; click an "
            "engine for its dashboard. Cells are green when they meet the engine's objective in "
            "thresholds.yml (latency quantiles against its latency target, lost replies against "
            "its error-ratio target). Throughput is what the engine reports for the traffic that "
            "flows, not coloured: its capacity is proven by load tests (the row above).",
            link=("engine", drill), no_value=NO_SUCCESS),
        alert_list("Firing and pending alerts", (12, 8)),
        timeseries("Trading requests: sent and failed by reason", targets(
            (f"sum(rate({P}_trading_requests_total{sel()}[{RATE}]))", "sent"),
            (f"sum by (reason) (rate({P}_trading_request_failures_total{sel()}[{RATE}]))",
             "failed: {{reason}}")), "reqps", (12, 8),
            description="Composite requests sent, and those that failed by the reason of "
                        "the first failing leg."),
        row("End to end"),
        timeseries("Throughput (live)", targets(
            (reported, "reported, all engines"),
            (f"sum(rate({LAT}_count{sel(NOT_BASELINE)}[{RATE}]))", "probes answered")),
            "ops", (12, 8), description="What the engines report for the traffic that flows, "
            "and the probes answered. Log scale. No target line: capacity is proven by load "
            "tests, not by whatever traffic flows.", log=True),
        timeseries("End-to-end latency", targets(
            (_mean(TRADE), "avg"), (_quantile(0.95, TRADE), "p95"),
            (_quantile(0.99, TRADE), "p99"),
            (_mean(LAT, matchers=f'engine="{BASELINE_ENGINE}"'), "monolith baseline avg")),
            "s", (12, 8), description="Successful trading requests only; a gap means none "
            f"succeeded. No target line: the {lat.ceiling * 1e3:g} ms average is a capacity "
            "target, proven under load by the load tests (the capacity row); live, each "
            "engine's latency objective pages (EngineLatencyBudgetBurn)."),
        timeseries("Error ratio", targets(
            (_error_ratio(matchers=NOT_BASELINE), "all engines")), "percentunit", (12, 8),
            description=f"No target line: the system's {err.ceiling * 100:g}% is a capacity "
            "target, proven under load by the load tests; live, each engine's availability "
            "objective pages (EngineAvailabilityBudgetBurn, on the engine dashboard)."),
        timeseries("Latency vs the monolith", targets(
            (f"{P}:system_latency_improvement:ratio", "latency")), TIMES, (12, 8),
            (t.latency_factor, None),
            f"Target {t.latency_factor:g}×; a gap while the error ratio misses its target.",
            log=True),
        timeseries("Queueing time per engine", targets(
            (f"{_mean(LAT, 'engine')} - {_mean(SERVICE, 'engine')}", "{{engine}}")), "s",
            (12, 8), description="Mean round trip minus the engine's own reported service "
            "time: time spent on the MessageBus and waiting for a free worker."),
        timeseries("MessageBus backlog per engine", targets((BACKLOG, "{{engine}}")), "none",
                   (12, 8), description="Requests waiting in each engine's request streams "
                   "(pending + not yet delivered). Growing while throughput is low: the "
                   "engine cannot keep up.",
                   links=[{"title": "${__field.labels.engine}", "url": drill.replace(
                       "${__data.fields.engine}", "${__field.labels.engine}")}]),
        timeseries("WebSocket connections", targets(
            (f"sum({P}_ws_connections_open{sel()})", "open"),
            (f"sum({P}_ws_connections_desired{sel()})", "configured")), "none", (24, 8),
            description="Held by the prober, and how many it is configured to hold. The "
            "capacity target is proven by `nautilus-probe loadtest websocket`."),
    ], description="Is the containerized platform serving now, and what did the last load "
                   "test prove it can carry?")


# A budget spent ten times over reads "exhausted", not "-1,030 %".
EXHAUSTED = {"type": "range", "options": {"from": None, "to": 0, "result": {
    "text": "exhausted", "color": "red"}}}


def budget_panels(t: Thresholds, eng: str) -> list[Any]:
    """Each objective's error budget: what is left over the longest alerting window,
    and how fast it burns (the page threshold drawn), from the SLO recording rules."""
    page = t.alerting.burn_rates["page"][0]
    longest = window(max(t.alerting.windows()))
    out: list[Any] = []
    burns = []
    for slo in ("availability", "latency"):
        objective = getattr(t.objectives, slo)
        budget = 1 - objective
        ratio = f"{P}:engine_{slo}_errors:ratio_rate"
        out.append(stat(f"{slo.capitalize()} budget left ({longest})", [target(
            f"1 - {ratio}{longest}{{{eng}}} / {budget:.6g}")], "percentunit", (6, 8), (0, None),
            f"Objective {objective * 100:g}%: the share of the {budget * 100:.3g}% error budget "
            f"not spent over the last {longest} (or the history there is, when shorter). "
            "Exhausted: the objective is missed over that window.",
            mappings=[EXHAUSTED]))
        burns += [(f"{ratio}{window(page.long)}{{{eng}}} / {budget:.6g}",
                   f"{slo} over {window(page.long)}"),
                  (f"{ratio}{window(page.short)}{{{eng}}} / {budget:.6g}",
                   f"{slo} over {window(page.short)}")]
    out.append(timeseries("Error-budget burn rate", targets(*burns), "suffix:×", (12, 8),
                          (None, page.factor),
                          f"1× spends the budget exactly over the objective's period; the red "
                          f"line is the fast-burn page ({page.factor:g}× over "
                          f"{window(page.long)} and {window(page.short)})."))
    return out


def engine(t: Thresholds) -> Dashboard:
    e = t.engine
    eng = 'engine="$engine"'
    var = Template(name="engine", label="Engine", dataSource=DATASOURCE, type="query",
                   query=f'label_values({P}_requests_total{{{FILTER}}}, engine)',
                   default="risk", refresh=2)
    lat_max = e["latency_average_seconds"].max
    return _dashboard(t, "engine", "Nautilus: engine", [
        row("$engine against its targets"),
        stat("Throughput (reported)", [target(
            f"max({P}_engine_reported_operations_per_second{sel(eng)})")], "ops", (4, 4),
            description="What the engine reports for the traffic that flows (successful "
                        "operations). Not coloured: its capacity is proven by load tests."),
        stat("Average latency (probes)", [target(_mean(LAT, matchers=eng))], "s", (4, 4),
             (None, lat_max)),
        stat("p99 latency (probes)", [target(_quantile(0.99, LAT, matchers=eng))], "s", (4, 4),
             (None, lat_max)),
        stat("Error ratio", [target(_error_ratio(matchers=eng))], "percentunit", (4, 4),
             _lim(e["error_ratio"])),
        stat("Backlog", [target(
            f"max({P}_messagebus_pending_messages{sel(eng)}) + "
            f"max({P}_messagebus_lag_messages{sel(eng)})")], "none", (4, 4),
            description="Requests waiting in the engine's request streams."),
        stat("Responders", targets(
            (f"max({P}_messagebus_consumers_active{sel(eng)})", "active"),
            (f"max({P}_messagebus_consumers{sel(eng)})", "in group")),
             "none", (4, 4), (1, None),
             "Active: responders that took a request in the last 15 s; 0 means nothing reads "
             "its requests (EngineNoResponders). In group: every consumer name, a crashed "
             "one's included."),
        row("Service objectives: error budgets"),
        *budget_panels(t, eng),
        row("Latency"),
        timeseries("Latency quantiles per operation", targets(
            (_quantile(0.5, LAT, "op", eng), "p50 {{op}}"),
            (_quantile(0.95, LAT, "op", eng), "p95 {{op}}"),
            (_quantile(0.99, LAT, "op", eng), "p99 {{op}}")), "s", (12, 8), (None, lat_max)),
        heatmap("Latency heatmap", f"sum by (le) (rate({LAT}_bucket{sel(eng)}[{RATE}]))", "s",
                (12, 8), "Round trips of answered probes, all operations."),
        timeseries("Round trip, service and queueing time", targets(
            (_mean(LAT, "op", eng), "round trip {{op}}"),
            (_mean(SERVICE, "op", eng), "service {{op}}"),
            (f"{_mean(LAT, 'op', eng)} - {_mean(SERVICE, 'op', eng)}", "queueing {{op}}")),
            "s", (12, 8), (None, lat_max),
            "Service time is what the engine reports in its replies; queueing is the rest."),
        timeseries("Answered probes per operation", targets(
            (f"sum by (op) (rate({LAT}_count{sel(eng)}[{RATE}]))", "{{op}}")), "ops", (12, 8)),
        row("Failures and backlog"),
        timeseries("Failures by reason", targets(
            (f"sum by (reason) (rate({P}_failures_total{sel(eng)}[{RATE}]))", "{{reason}}")),
            "ops", (12, 8)),
        timeseries("Integrity: lost, late, duplicate, out of order", targets(
            (f"sum(rate({P}_replies_lost_total{sel(eng)}[{RATE}]))", "lost"),
            (f"sum(rate({P}_replies_late_total{sel(eng)}[{RATE}]))", "late"),
            (f"sum(rate({P}_replies_duplicate_total{sel(eng)}[{RATE}]))", "duplicate"),
            (f"sum(rate({P}_replies_out_of_order_total{sel(eng)}[{RATE}]))", "out of order")),
            "ops", (12, 8)),
        timeseries("MessageBus backlog", targets(
            (f"max({P}_messagebus_pending_messages{sel(eng)})", "pending (being served)"),
            (f"max({P}_messagebus_lag_messages{sel(eng)})", "not yet delivered")), "none",
            (12, 8), stack=True),
        timeseries("Probes in flight", targets(
            (f"sum by (op) ({P}_in_flight{sel(eng)})", "{{op}}")), "none", (12, 8),
            description="Sent and not yet answered or timed out."),
        row("What the engine reports about itself"),
        timeseries("Reported throughput per operation", targets(
            (f"max by (op) ({P}_engine_reported_operation_operations_per_second{sel(eng)})",
             "{{op}}"),
            (f"max({P}_engine_reported_operations_per_second{sel(eng)})", "total")),
            "ops", (12, 8), description="Successful operations the engine reports. Log scale. "
            "No target line: capacity is proven by load tests.", log=True),
        timeseries("Reported vs probed latency", targets(
            (f"max({P}_engine_reported_latency_seconds{sel(eng)})", "reported by the engine"),
            (_mean(LAT, matchers=eng), "probed round trip")), "s", (12, 8), (None, lat_max)),
        timeseries("Reported CPU", targets(
            (f"max({P}_engine_reported_cpu_ratio{sel(eng)})", "CPU (share of one core)")),
            "percentunit", (8, 8), description="The CPU-efficiency target applies under load: "
            "a load test proves it."),
        timeseries("Reported memory", targets(
            (f"max({P}_engine_reported_memory_bytes{sel(eng)})", "memory")), "bytes", (8, 8)),
        timeseries("Reported error ratio", targets(
            (f"max({P}_engine_reported_error_ratio{sel(eng)})", "error ratio")), "percentunit",
            (8, 8), description="What the engine reports. No target line: nothing alerts on "
            "it; the probes' failures are judged by the availability objective (the error "
            "budget above), the engine's error-ratio target by the load tests."),
        *kind_rows(eng),
    ], [var], "One engine: its probes, its MessageBus backlog, what it reports, and each "
       "probe kind's own row.")


UP_DOWN = [{"type": "value", "options": {
    "0": {"text": "DOWN", "color": "red"}, "1": {"text": "UP", "color": "green"}}}]


def kind_rows(eng: str) -> list[Any]:
    """Each probe kind's row of the engine dashboard, as the kind declares it
    (ProbeKind.panels): a kind added to the registry shows here by itself."""
    out: list[Any] = []
    for kind in KINDS:
        if not kind.panels:
            continue
        out.append(row(kind.row))
        size = (max(24 // len(kind.panels), 6), 8)  # the row's width shared
        for p in kind.panels:
            tgts = targets(*((q.format(P=P, sel=sel(eng), rate=RATE), legend)
                             for q, legend in p.queries))
            if p.up:
                out.append(stat(p.title, tgts, p.unit, size, (1, None), p.description,
                                mappings=UP_DOWN))
            else:
                out.append(timeseries(p.title, tgts, p.unit, size, description=p.description))
    return out


def websocket(t: Thresholds) -> Dashboard:
    hb = t.websocket["heartbeat_p99_seconds"]
    ep = "sum by (endpoint)"
    return _dashboard(t, "websocket", "Nautilus: WebSocket", [
        timeseries("Open connections per endpoint", targets(
            (f"{ep} ({P}_ws_connections_open{sel()})", "open {{endpoint}}"),
            (f"{ep} ({P}_ws_connections_desired{sel()})", "configured {{endpoint}}")), "none",
            description="Held open, against what the prober is configured to hold."),
        timeseries("Heartbeat p99 per endpoint", targets(
            (_quantile(0.99, f"{P}_ws_heartbeat_latency_seconds", "endpoint"), "{{endpoint}}")),
            "s", description=f"No target line: the {hb.ceiling * 1e3:g} ms heartbeat p99 is a "
            "capacity target under load, proven by `nautilus-probe loadtest websocket`; the "
            "prober's few heartbeats on a shared machine say little about it."),
        timeseries("Connect time", targets(
            (_quantile(0.99, f"{P}_ws_connect_duration_seconds", "endpoint"), "p99 {{endpoint}}"),
            (f"sum by (endpoint) ({P}_ws_connect_duration_seconds_sum{sel()}) / sum by (endpoint) "
             f"({P}_ws_connect_duration_seconds_count{sel()})", "mean since start {{endpoint}}")),
            "s", description="p99 over the rate interval (empty while no connection is being "
            "opened) and the mean over every connection the exporter opened."),
        timeseries("Connect failures and disconnects", targets(
            (f"sum by (reason) (rate({P}_ws_connect_failures_total{sel()}[{RATE}]))",
             "connect: {{reason}}"),
            (f"sum by (reason) (rate({P}_ws_disconnects_total{sel()}[{RATE}]))",
             "disconnect: {{reason}}")), "ops"),
        timeseries("Heartbeats", targets(
            (f"sum(rate({P}_ws_messages_sent_total{sel()}[{RATE}]))", "sent"),
            (f"sum(rate({P}_ws_messages_received_total{sel()}[{RATE}]))", "acknowledged"),
            (f"sum(rate({P}_ws_error_replies_total{sel()}[{RATE}]))", "error replies"),
            (f"sum(rate({P}_ws_timeouts_total{sel()}[{RATE}]))", "timeouts")), "ops"),
        timeseries("Late, invalid and skipped", targets(
            (f"sum(rate({P}_ws_replies_late_total{sel()}[{RATE}]))", "late acks"),
            (f"sum(rate({P}_ws_invalid_frames_total{sel()}[{RATE}]))", "invalid frames"),
            (f"sum(rate({P}_ws_heartbeats_skipped_total{sel()}[{RATE}]))", "skipped (no connection)")),
            "ops"),
        timeseries("Broadcast frames and gaps", targets(
            (f"sum(rate({P}_ws_broadcast_frames_total{sel()}[{RATE}]))", "frames"),
            (f"sum(rate({P}_ws_broadcast_gaps_total{sel()}[{RATE}]))", "gaps")), "ops", (24, 8)),
    ], description="The WebSocket front ends as the prober's held connections see them.")


def exporters_only(expr: str) -> str:
    """`expr` over process_* series, kept only for the exporters' processes: any
    program scraped under the same job (a Pushgateway, a sidecar) has them too."""
    return f"{expr} and on (job, instance, worker) {P}_build_info{sel()}"


def prober(t: Thresholds) -> Dashboard:
    who = "{{instance}} {{worker}}"
    return _dashboard(t, "prober", "Nautilus: prober health", [
        row("Can the prober be trusted?"),
        stat("MessageBus up", [target(f"min({P}_messagebus_up{sel()})")], "none", (6, 4),
             (1, None), mappings=[{"type": "value", "options": {
                 "0": {"text": "DOWN", "color": "red"}, "1": {"text": "UP", "color": "green"}}}]),
        stat("Last config reload", [target(f"min({P}_config_last_reload_successful{sel()})")],
             "none", (6, 4), (1, None), mappings=[{"type": "value", "options": {
                 "0": {"text": "FAILED", "color": "red"}, "1": {"text": "OK", "color": "green"}}}]),
        stat("Since the last config load", [target(
            f"time() - max({P}_config_last_reload_success_timestamp_seconds{sel()})")], "s",
            (6, 4)),
        stat("Stale self-reports", [target(
            f"count(({P}_engine_report_up{sel()} == 0) or ({P}_engine_report_age_seconds"
            f"{sel()} > {t.alerting.stale_after:g})) or vector(0)")], "none", (6, 4),
            (None, 1), f"Engines whose metrics:<engine> is missing, invalid or older than "
            f"{t.alerting.stale_after:g} s."),
        timeseries("Schedule lag p99", targets(
            (_quantile(0.99, f"{P}_schedule_lag_seconds", "instance"), "{{instance}}")), "s",
            limit=(None, t.alerting.schedule_lag_p99),
            description="The red line: ProberSaturated (a ticket) above it."),
        timeseries("Event-loop lag p99", targets(
            (_quantile(0.99, f"{P}_event_loop_lag_seconds", "instance"), "{{instance}}")), "s"),
        timeseries("Skipped probes", targets(
            (f"sum by (instance) (rate({P}_probes_skipped_total{sel()}[{RATE}]))", "{{instance}}")),
            "ops"),
        timeseries("Probes in flight", targets(
            (f"sum by (instance) ({P}_in_flight{sel()})", "{{instance}}")), "none"),
        timeseries("Unattributable replies", targets(
            (f"sum(rate({P}_replies_malformed_total{sel()}[{RATE}]))", "malformed"),
            (f"sum(rate({P}_replies_unmatched_total{sel()}[{RATE}]))", "unmatched")), "ops"),
        timeseries("MessageBus errors and loop restarts", targets(
            (f"sum by (operation) (rate({P}_messagebus_errors_total{sel()}[{RATE}]))",
             "redis: {{operation}}"),
            (f"sum(rate({P}_loop_restarts_total{sel()}[{RATE}]))", "loop restarts"),
            (f"sum(rate({P}_engine_report_errors_total{sel()}[{RATE}]))", "bad self-reports")),
            "ops", description="Redis errors by operation; loop restarts and unreadable "
            "self-reports in total (by loop and engine on Explore)."),
        timeseries("Self-report age", targets(
            (f"max by (engine) ({P}_engine_report_age_seconds{sel()})", "{{engine}}")), "s",
            limit=(None, t.alerting.stale_after),
            description="The red line: EngineSelfReportStale (a ticket) above it."),
        timeseries("Self-reports present", targets(
            (f"min by (engine) ({P}_engine_report_up{sel()})", "{{engine}}")), "none"),
        row("The exporter's own resources"),
        timeseries("Exporter CPU", targets(
            (exporters_only(f"rate(process_cpu_seconds_total{sel()}[{RATE}])"), who)),
            "percentunit", (8, 8)),
        timeseries("Exporter memory (resident)", targets(
            (exporters_only(f"process_resident_memory_bytes{sel()}"), who)), "bytes", (8, 8)),
        timeseries("Exporter open files", targets(
            (exporters_only(f"process_open_fds{sel()} / process_max_fds{sel()}"), who)),
            "percentunit", (8, 8), description="Of its limit (process_max_fds)."),
        table("Exporter instances", [
            target(f"max by (instance, worker, version, python_version) (time() - "
                   f"process_start_time_seconds{sel()} * on (instance, worker) "
                   f"group_left (version, python_version) {P}_build_info{sel()})",
                   ref="A", fmt="table", instant=True)],
            {"A": ("uptime", "s", (None, None))}, (24, 5)),
    ], description="Is the measurement itself sound? Read before trusting the figures.")


DASHBOARDS = {"overview": overview, "engine": engine, "websocket": websocket, "prober": prober}
