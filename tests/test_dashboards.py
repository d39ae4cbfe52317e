"""Generated dashboards: in sync, a valid grid, Grafana 11's own types, the datasource
and filter variables, units, every metric family graphed (or excused), thresholds
from thresholds.yml."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import yaml
from grafanalib.core import GridPos
from prometheus_client import CollectorRegistry, ProcessCollector

from alerts import capacity
from alerts.thresholds import Thresholds
from dashboards.__main__ import render
from dashboards.build import SCHEMA_VERSION, UIDS
from dashboards.panels import COLUMNS, FILTER, flow, timeseries, target
from exporter.probes.registry import every_family
from nautilus_testkit import ROOT

GENERATED = ROOT / "dashboards" / "generated"
SCHEMA = ROOT / "tools" / "grafana-schema"
MODERN = {"timeseries", "stat", "table", "heatmap", "alertlist", "row"}


def dashboards() -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(GENERATED.glob("*.json"))}


def panels(d: dict) -> list[dict]:
    return [p for p in d["panels"] if p["type"] != "row"]


def exprs() -> list[str]:
    out = []
    for d in dashboards().values():
        out += [t["expr"] for p in panels(d) for t in p["targets"]]
        out += [a["expr"] for a in d["annotations"]["list"] if "expr" in a]
    return out


def grid_problems(items: list[dict]) -> list[str]:
    """What Grafana could not lay out: impossible sizes, overlaps, rows that do not
    contain the panels below them."""
    out, cells = [], {}
    for p in items:
        g, name = p["gridPos"], p["title"]
        if not (g["w"] > 0 and g["h"] > 0 and g["x"] >= 0 and g["y"] >= 0
                and g["x"] + g["w"] <= COLUMNS):
            out.append(f"{name}: impossible {g}")
            continue
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                if (x, y) in cells:
                    out.append(f"{name} overlaps {cells[x, y]} at {x},{y}")
                cells[x, y] = name
    rows = [p for p in items if p["type"] == "row"]
    for row in rows:
        if row["gridPos"]["w"] != COLUMNS or row.get("collapsed"):
            out.append(f"row {row['title']}: must span the grid, expanded")
    if rows and items[0]["type"] != "row":
        out.append("panels above the first row belong to no row")
    return out


def test_committed_dashboards_match_a_fresh_generation() -> None:
    for name, text in render(Thresholds.load(str(ROOT / "thresholds.yml"))).items():
        assert (GENERATED / name).read_text() == text, f"{name} is stale: run python -m dashboards"


def test_the_grid_is_valid() -> None:
    for name, d in dashboards().items():
        assert grid_problems(d["panels"]) == [], name
        assert [p["id"] for p in d["panels"]] == list(range(1, len(d["panels"]) + 1))
    # The check catches what grafanalib's positional GridPos(h, w, x, y) did to
    # (x, y, w, h) tuples: h=0, w=0, x=6 for the first stat.
    old = [{"title": "old", "type": "stat",
            "gridPos": GridPos(*(0, 0, 6, 4)).to_json_data()}]
    assert grid_problems(old) == ["old: impossible {'h': 0, 'w': 0, 'x': 6, 'y': 4}"]
    overlap = [{"title": t, "type": "stat", "gridPos": {"h": 4, "w": 12, "x": x, "y": 0}}
               for t, x in (("a", 0), ("b", 6))]
    assert grid_problems(overlap)[0] == "b overlaps a at 6,0"


def test_flow_wraps_at_24_columns() -> None:
    laid = flow([timeseries(str(i), [target("up")], "s", (w, 8)) for i, w in
                 enumerate((12, 12, 8, 8, 16, 24))])
    assert [(p.gridPos.x, p.gridPos.y, p.gridPos.w) for p in laid] == [
        (0, 0, 12), (12, 0, 12), (0, 8, 8), (8, 8, 8), (0, 16, 16), (0, 24, 24)]


def test_grafana_11_types_accept_every_dashboard() -> None:
    """Validated against a JSON Schema made (by ./run setup) from @grafana/schema, the
    TypeScript types Grafana publishes for the release the compose file runs. The types
    model annotation queries for Grafana's own annotation store only (their comment:
    "TODO.. this should just be a normal query target"), so a Prometheus annotation's
    query fields are checked here by name instead."""
    path = SCHEMA / "dashboard.schema.json"
    assert path.exists(), "Grafana's schema is missing: run ./run setup"
    validator = jsonschema.Draft7Validator(json.loads(path.read_text()))
    prom_fields = {"expr", "step", "titleFormat", "textFormat", "tagKeys", "useValueForTime"}
    gen = (SCHEMA / "node_modules/@grafana/schema/dist/esm/raw/dashboard/x/"
           "dashboard_types.gen.js").read_text()
    assert int(re.search(r"schemaVersion: (\d+)", gen).group(1)) == SCHEMA_VERSION
    for name, d in dashboards().items():
        assert d["schemaVersion"] == SCHEMA_VERSION
        for a in d["annotations"]["list"]:
            if a["datasource"]["type"] == "prometheus":
                assert {"expr", "titleFormat"} <= set(a) and set(a) - prom_fields <= {
                    "datasource", "enable", "iconColor", "name"}, a
                for key in prom_fields:
                    a.pop(key, None)
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(d)]
        assert errors == [], name
    # and the schema is strict: a misspelt key is refused.
    d = dashboards()["prober"]
    d["panels"][0]["gridpos"] = d["panels"][0].pop("gridPos")
    assert list(validator.iter_errors(d))


def test_datasource_variable_filters_units_and_uids() -> None:
    ds = {"type": "prometheus", "uid": "${datasource}"}
    assert {d["uid"] for d in dashboards().values()} == set(UIDS.values())
    for name, d in dashboards().items():
        variables = {v["name"]: v for v in d["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["current"]["value"] == "prometheus"  # the provisioned uid
        assert variables["job"]["includeAll"] and variables["instance"]["includeAll"]
        for p in panels(d):
            assert p["type"] in MODERN, (name, p["type"])
            assert p["datasource"] == ds, (name, p["title"])
            assert p["fieldConfig"]["defaults"].get("unit"), (name, p["title"], "no unit")
            for t in p["targets"]:
                assert t["datasource"] == ds and t["expr"]
    # Every raw series is filtered by job and instance; recording rules and ALERTS are
    # already aggregated.
    for expr in exprs():
        for m in re.finditer(r"\b((?:nautilus_probe|process)_[a-z_]+)\b(\{[^}]*\})?", expr):
            if m.group(1).startswith("nautilus_probe_capacity_"):
                # Pushed by load tests to the Pushgateway: their own job, no exporter;
                # their run's info only where it names the platform it measured; a
                # table's figures only of its kind of target.
                assert m.group(2) in ('{job="nautilus-capacity"}',
                                      '{job="nautilus-capacity",platform!=""}',
                                      *(f'{{job="nautilus-capacity",target=~"{k.keys}"}}'
                                        for k in capacity.KINDS)), expr
                continue
            assert m.group(2) and m.group(2).startswith("{" + FILTER), (m.group(1), expr)


def test_links_between_dashboards() -> None:
    d = dashboards()
    [table] = [p for p in d["overview"]["panels"]
               if p["title"].startswith("Engines against their objectives")]
    links = [link for o in table["fieldConfig"]["overrides"] for prop in o["properties"]
             if prop["id"] == "links" for link in prop["value"]]
    assert links and links[0]["url"].startswith("/d/nautilus-engine?var-engine=${__data.fields.engine}")
    assert "${job:queryparam}" in links[0]["url"]
    assert any(link.get("url", "").startswith("/d/nautilus-prober") for link in d["engine"]["links"])
    for board in d.values():
        assert any(link["type"] == "dashboards" and link["includeVars"] for link in board["links"])


def test_every_metric_family_is_graphed_or_excused() -> None:
    reg = CollectorRegistry()
    every_family(reg)
    ProcessCollector(registry=reg)
    suffix = {"counter": "_total", "info": "_info"}
    families = {m.name + suffix.get(m.type, "") for m in reg.collect()}
    families |= {"nautilus_probe_worker_up",  # only the --workers parent has them
                 "nautilus_probe_worker_restarts_total"}
    doc = (ROOT / "docs" / "metrics.md").read_text()
    excused = set(re.findall(r"^\| `([a-z_]+)` \| not graphed: ", doc, re.M))
    text = "\n".join(exprs())
    missing = [f for f in sorted(families)
               if f not in excused and not re.search(rf"\b{f}(_bucket|_sum|_count)?\b", text)]
    assert missing == [], "neither graphed nor excused in docs/metrics.md"
    assert excused <= families, excused - families  # no stale excuse


# Every red line drawn on a time series, and the alert that fires when a series
# crosses it: a line nobody is paged or ticketed for reads as a failure nobody acts on.
RED_LINES = {
    ("engine", "Error-budget burn rate"): "EngineAvailabilityBudgetBurn",  # and latency's
    ("engine", "Latency quantiles per operation"): "EngineLatencyBudgetBurn",
    ("engine", "Round trip, service and queueing time"): "EngineLatencyBudgetBurn",
    ("engine", "Reported vs probed latency"): "EngineLatencyBudgetBurn",
    ("prober", "Schedule lag p99"): "ProberSaturated",
    ("prober", "Self-report age"): "EngineSelfReportStale",
}


def test_every_red_line_has_an_alert_behind_it() -> None:
    alerts: dict[str, dict[str, str]] = {}  # name -> expr and description, every severity
    for r in yaml.safe_load((ROOT / "alerts" / "generated" / "alerts.yml").read_text())[
            "groups"][0]["rules"]:
        alerts.setdefault(r["alert"], {"expr": "", "description": ""})
        alerts[r["alert"]]["expr"] += r["expr"]
        alerts[r["alert"]]["description"] += r["annotations"]["description"]
    lines = {}
    for board, data in dashboards().items():
        for p in panels(data):
            defaults = p.get("fieldConfig", {}).get("defaults", {})
            if p["type"] != "timeseries" or \
                    defaults.get("custom", {}).get("thresholdsStyle", {}).get("mode") == "off":
                continue
            red = [s["value"] for s in defaults["thresholds"]["steps"] if s["color"] == "red"
                   and s["value"] is not None]
            if red:
                lines[(board, p["title"])] = red
    assert set(lines) == set(RED_LINES), set(lines) ^ set(RED_LINES)
    t = Thresholds.load(str(ROOT / "thresholds.yml"))
    # Each line is the alert's own threshold.
    page = t.alerting.burn_rates["page"][0]
    assert lines[("engine", "Error-budget burn rate")] == [page.factor]
    assert f"> {page.factor * (1 - t.objectives.availability):.6g}" in \
        alerts["EngineAvailabilityBudgetBurn"]["expr"]
    latency = t.engine["latency_average_seconds"].max
    for title in ("Latency quantiles per operation", "Round trip, service and queueing time",
                  "Reported vs probed latency"):
        assert lines[("engine", title)] == [latency]
    assert f"slower than {latency * 1e3:g} ms" in \
        alerts["EngineLatencyBudgetBurn"]["description"]
    assert lines[("prober", "Schedule lag p99")] == [t.alerting.schedule_lag_p99]
    assert f"> {t.alerting.schedule_lag_p99:g}" in alerts["ProberSaturated"]["expr"]
    assert lines[("prober", "Self-report age")] == [t.alerting.stale_after]
    assert f"> {t.alerting.stale_after:g}" in alerts["EngineSelfReportStale"]["expr"]


def test_threshold_lines_come_from_the_thresholds_file() -> None:
    t = Thresholds.load(str(ROOT / "thresholds.yml"))

    def steps(board: str) -> dict[str, list]:
        return {p["title"]: [s["value"] for s in p["fieldConfig"]["defaults"]["thresholds"]["steps"]]
                for p in panels(dashboards()[board]) if p["type"] in ("timeseries", "stat")}

    overview = steps("overview")
    assert overview["End-to-end latency (avg)"][-1] == t.system["latency_average_seconds"].max
    assert overview["Latency vs the monolith"][-1] == t.latency_factor == 4
    assert overview["Availability (worst engine)"][-1] == t.objectives.availability
    assert overview["Backlog (largest engine)"][-1] == t.alerting.backlog_messages
    # No capacity target is coloured (or drawn) against live traffic: they live in
    # the pushed load-test verdicts only.
    capacity = {t.system["throughput_ops_per_second"].min, t.system["websocket_connections"].min,
                t.system["cpu_busy_ratio"].min, t.throughput_factor,
                t.engine["throughput_ops_per_second"].min}
    for board in ("overview", "engine", "websocket"):  # the prober's are about itself
        for title, values in steps(board).items():
            assert not capacity & set(values[1:]), (board, title, values)
    engine = {p["title"]: p for p in panels(dashboards()["engine"])}
    quantiles = engine["Latency quantiles per operation"]["fieldConfig"]["defaults"]
    assert quantiles["thresholds"]["steps"][-1]["value"] == t.engine["latency_average_seconds"].max
    assert quantiles["custom"]["thresholdsStyle"]["mode"] == "line"
    [table] = [p for p in dashboards()["overview"]["panels"]
               if p["title"].startswith("Engines against their objectives")]
    cells = {o["matcher"]["options"]: {prop["id"]: prop["value"] for prop in o["properties"]}
             for o in table["fieldConfig"]["overrides"]}
    assert cells["Value #C"]["thresholds"]["steps"][-1]["value"] == t.engine["latency_average_seconds"].max
    assert cells["Value #D"]["thresholds"]["steps"][-1]["value"] == t.engine["error_ratio"].max
    assert cells["Value #D"]["custom.cellOptions"]["type"] == "color-background"


def capacity_tables() -> dict[str, dict]:
    return {p["title"]: p for p in dashboards()["overview"]["panels"]
            if p["title"].startswith("Capacity targets")}


def column(panel: dict, ref: str) -> dict:
    [props] = [{p["id"]: p["value"] for p in o["properties"]}
               for o in panel["fieldConfig"]["overrides"] if o["matcher"]["options"] == f"Value #{ref}"]
    return props


def test_each_kind_of_capacity_target_in_the_unit_and_decimals_it_needs() -> None:
    """A Grafana column has one unit and one number of decimals: a table per kind of
    target, so an error ratio of 0.45 % does not read 0.0 beside 50,000 ops/s, nor a
    101 ms latency 0.1 beside its 100 ms limit."""
    from nautilus_loadtest.results import Baseline, Containerized
    from nautilus_loadtest.validate import verdicts

    t = Thresholds.load(str(ROOT / "thresholds.yml"))
    tables = capacity_tables()
    shown = {title: (column(p, "B")["unit"], column(p, "B")["decimals"])
             for title, p in tables.items()}
    assert shown == {
        "Capacity targets: throughput (operations/s)": ("locale", 0),
        "Capacity targets: latency and duration": ("s", 1),
        "Capacity targets: error and CPU ratios": ("percentunit", 2),
        "Capacity targets: improvement over the monolith": ("suffix:×", 1),
        "Capacity targets: WebSocket connections held": ("locale", 0)}
    for p in tables.values():  # the required columns as the measured one
        # What, its verdict (whole: "no command measures this yet") and figures, then
        # where they come from; not Prometheus's label order (provenance first).
        [organize] = [t["options"] for t in p["transformations"] if t["id"] == "organize"]
        order = sorted(organize["indexByName"], key=organize["indexByName"].get)
        assert order[:4] == ["scope", "target", "Value #A", "Value #B"], order
        assert order[-3:] == ["Value #E", "run_id", "platform"], order
        assert column(p, "A")["custom.width"] >= 7 * len("no command measures this yet")
        for ref in ("C", "D"):
            if ref in {t["refId"] for t in p["targets"]}:
                assert (column(p, ref)["unit"], column(p, ref)["decimals"]) == \
                    (column(p, "B")["unit"], column(p, "B")["decimals"])
    # Every target validate judges is of exactly one kind, so it lands in one table.
    keys = {v.key for v in verdicts(t, Baseline(), Containerized())}
    assert len(keys) == 17 and all(capacity.kind(k) for k in keys)
    assert {k: capacity.kind(k).name for k in ("error_ratio", "latency_improvement_ratio",
                                                "websocket_heartbeat_p99_seconds",
                                                "limit_check_ops_per_second")} == {
        "error_ratio": "ratio", "latency_improvement_ratio": "factor",
        "websocket_heartbeat_p99_seconds": "time", "limit_check_ops_per_second": "throughput"}


def test_targets_no_command_measures_say_so_rather_than_awaiting_a_load_test() -> None:
    from nautilus_loadtest.results import Baseline, Containerized
    from nautilus_loadtest.validate import verdicts

    t = Thresholds.load(str(ROOT / "thresholds.yml"))
    # The targets validate says no command measures are alerts/capacity.py's.
    said = {v.key for v in verdicts(t, Baseline(), Containerized()) if v.note.startswith("no command")}
    assert said == capacity.NO_COMMAND == {"cpu_busy_ratio", "full_cycle_seconds"}
    placeholders = {}
    for p in capacity_tables().values():
        [verdict] = [x["expr"] for x in p["targets"] if x["refId"] == "A"]
        for value, key in re.findall(r'vector\((-\d)\).*?"target", "(\w+)"', verdict):
            placeholders[key] = column(p, "A")["mappings"][0]["options"][value]["text"]
    assert placeholders == {"throughput_ops_per_second": "no load test yet",
                            "throughput_improvement_ratio": "no load test yet",
                            "websocket_connections": "no load test yet",
                            "cpu_busy_ratio": "no command measures this yet",
                            "full_cycle_seconds": "no command measures this yet"}


def test_capacity_rows_come_system_first_then_each_engine_by_name(tmp_path: Path) -> None:
    """Grafana sorts each capacity table on row_order, a label the table does not show
    and its queries set: promtool runs the throughput table's queries over verdicts of
    websocket, system and risk (sorted on scope, descending, websocket once came above
    system)."""
    [panel] = [p for title, p in capacity_tables().items() if "throughput" in title]
    steps = panel["transformations"]
    assert [s["id"] for s in steps] == ["merge", "sortBy", "organize"]
    assert steps[1]["options"] == {"sort": [{"field": "row_order"}]}
    assert steps[2]["options"]["excludeByName"]["row_order"] is True
    assert not panel["options"].get("sortBy")  # the table's own sort would override it
    # Each row's key, by hand: the system's first, then the engines, each by name.
    rows = {("websocket", "throughput_ops_per_second"): "1 websocket throughput_ops_per_second",
            ("system", "throughput_ops_per_second"): "0 system throughput_ops_per_second",
            ("risk", "throughput_ops_per_second"): "1 risk throughput_ops_per_second",
            ("risk", "limit_check_ops_per_second"): "1 risk limit_check_ops_per_second"}
    assert [st for st, _ in sorted(rows.items(), key=lambda kv: kv[1])] == [
        ("system", "throughput_ops_per_second"), ("risk", "limit_check_ops_per_second"),
        ("risk", "throughput_ops_per_second"), ("websocket", "throughput_ops_per_second")]
    series, expected = [], []
    for (scope, key), order in rows.items():
        labels = f'job="nautilus-capacity",scope="{scope}",target="{key}"'
        series += [{"series": f"nautilus_probe_capacity_{name}{{{labels}}}", "values": "1x3"}
                   for name in ("verdict", "measured")]
        series.append({"series": f'nautilus_probe_capacity_run_info{{{labels},run_id="r",'
                                 'command="validate",platform="p"}', "values": "1x3"})
        expected.append({"labels": f'{{scope="{scope}",target="{key}",run_id="r",platform="p",'
                                   f'row_order="{order}"}}', "value": 1})
    shown = [t for t in panel["targets"] if t["refId"] in ("A", "B")]
    assert len(shown) == 2
    (tmp_path / "rows.yml").write_text(yaml.safe_dump({"rule_files": [], "tests": [{
        "interval": "1m", "input_series": series,
        "promql_expr_test": [{"expr": t["expr"], "eval_time": "1m", "exp_samples": expected}
                             for t in shown]}]}))
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: run ./run setup"
    test = subprocess.run([promtool, "test", "rules", "rows.yml"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert test.returncode == 0 and "SUCCESS" in test.stdout, test.stdout + test.stderr
