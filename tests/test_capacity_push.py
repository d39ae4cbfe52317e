"""Capacity verdicts round trip: `validate` pushes them to a real Pushgateway, a real
Prometheus scrapes it, the overview's "Capacity, last proven" queries read them with
their run, platform, age and colour, and each missed target raises
CapacityValidationFailed, delivered by a real Alertmanager as one ticket notification
that states every target's figures and run. A verdict without provenance is never
shown."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from prometheus_client import push_to_gateway

from nautilus_probe.observe import Receiver, alertmanager_config
from nautilus_testkit import ROOT, free_port, wait_for
from nautilus_testkit.live import (TEST_ALERTING, capacity_rows, capacity_tables, cell_colour,
                                  query, start_alertmanager, start_prometheus, start_pushgateway,
                                  write_rules)

from .test_validate import BASELINE, GOOD, TARGETS, WEBSOCKET

OVERVIEW = json.loads((ROOT / "dashboards" / "generated" / "overview.json").read_text())


def colour(panel: dict, ref: str, value: float) -> str:
    """The cell colour Grafana gives `value` in column `ref`: its value mapping, or
    its threshold steps."""
    [props] = [{p["id"]: p["value"] for p in o["properties"]}
               for o in panel["fieldConfig"]["overrides"]
               if o["matcher"]["options"] == f"Value #{ref}"]
    return str(cell_colour(props, value))


def validate(tmp: Path, result: dict, gateway: str) -> subprocess.CompletedProcess[str]:
    (tmp / "b.json").write_text(json.dumps(BASELINE))
    (tmp / "c.json").write_text(json.dumps(result))
    (tmp / "w.json").write_text(json.dumps(WEBSOCKET))
    return subprocess.run([sys.executable, "-m", "nautilus_probe", "validate", "--baseline",
                           str(tmp / "b.json"), "--containerized", str(tmp / "c.json"),
                           "--websocket", str(tmp / "w.json"),
                           "--out", str(tmp / "report"), "--pushgateway.url", gateway],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def unproven_verdict():
    """A PASS as an older tool (or a fixture) pushed it: no run, no platform."""
    from prometheus_client import CollectorRegistry, Gauge

    reg = CollectorRegistry()
    Gauge("nautilus_probe_capacity_verdict", "verdict", registry=reg).set(1)
    Gauge("nautilus_probe_capacity_measured", "measured", registry=reg).set(60000)
    Gauge("nautilus_probe_capacity_run_info", "run", ["run_id", "command"],
          registry=reg).labels("fixture", "validate").set(1)
    return reg


def value_mapping_text(panel: dict, value: int) -> str:
    [props] = [{p["id"]: p["value"] for p in o["properties"]}
               for o in panel["fieldConfig"]["overrides"]
               if o["matcher"]["options"] == "Value #A"]
    return props["mappings"][0]["options"][str(value)]["text"]


def rows(api: str, ref: str) -> dict[tuple[str, str], float]:
    """Column `ref` of every capacity table, by (scope, target)."""
    return {(r["scope"], r["target"]): r["value"] for r in capacity_rows(api, OVERVIEW, ref)}


def labels(api: str, target: str) -> dict[str, str]:
    """The labels of `target`'s verdict row (system scope)."""
    [row] = [r for r in capacity_rows(api, OVERVIEW)
             if (r["scope"], r["target"]) == ("system", target)]
    return row


def firing_failed(api: str) -> set[tuple[str, str]]:
    return {(r["metric"]["scope"], r["metric"]["target"]) for r in query(
        api, 'ALERTS{alertname="CapacityValidationFailed",alertstate="firing"}')}


def last_ticket(receiver: Receiver) -> list[dict]:
    """The alerts of the last ticket notification of CapacityValidationFailed (other
    alerts' tickets may arrive after it)."""
    tickets = [alerts for route, alerts in receiver.notifications if route == "ticket"
               and alerts[0]["labels"]["alertname"] == "CapacityValidationFailed"]
    return tickets[-1] if tickets else []


def ticket_lines(receiver: Receiver) -> list[str]:
    """The console lines of the last ticket notification of CapacityValidationFailed."""
    from nautilus_probe.observe import notification_line

    return sorted(notification_line("ticket", a) for a in last_ticket(receiver))


def test_validate_verdicts_reach_the_overview_and_the_ticket(tmp_path: Path) -> None:
    gateway, at = start_pushgateway()
    port = int(at.rsplit(":", 1)[1])
    prometheus = am = None
    receiver = Receiver(lambda line: None)
    try:
        _, rules = write_rules(tmp_path, TEST_ALERTING)
        # The local stack's Alertmanager, but for the ticket route's group_wait (2 min,
        # for a page to inhibit it first): no page comes here, and the test is about
        # what the grouped notification says.
        config = alertmanager_config(receiver.port)
        [ticket] = [r for r in config["route"]["routes"] if r["receiver"] == "ticket"]
        ticket["group_wait"] = "5s"
        (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(config))
        am, am_url = start_alertmanager(tmp_path, tmp_path / "alertmanager.yml")
        prometheus, api = start_prometheus(tmp_path, f"127.0.0.1:{free_port()}", rules,
                                           alertmanager=am_url, pushgateway=f"127.0.0.1:{port}")
        [table] = [p for p in capacity_tables(OVERVIEW) if "throughput" in p["title"]]
        # A verdict from an older tool or a fixture, with no run and platform: not shown.
        push_to_gateway(f"127.0.0.1:{port}", job="nautilus-capacity",
                        grouping_key={"scope": "system", "target": "throughput_ops_per_second"},
                        registry=unproven_verdict())
        wait_for(lambda: query(api, 'nautilus_probe_capacity_verdict{scope="system"}'), 30)
        assert rows(api, "A")[("system", "throughput_ops_per_second")] == -1
        assert rows(api, "B") == {}

        missed = json.loads(json.dumps(GOOD))
        missed["scalability_benchmark"]["risk"]["latency"] = 101  # over its 100 ms
        missed["scalability_benchmark"]["risk"]["error_rate"] = 0.02  # over its 1 %
        # limit_check (risk's first operation: its figure) under its 20,000 ops/s
        missed["scalability_benchmark"]["risk"]["throughput"] = 15000
        proc = validate(tmp_path, missed, f"http://127.0.0.1:{port}")
        assert proc.returncode == 1, proc.stdout + proc.stderr
        # Every judged target; CPU efficiency and the full cycle were not measured.
        assert f"{TARGETS - 2} verdicts pushed to http://127.0.0.1:" in proc.stdout

        verdict = wait_for(lambda: (v := rows(api, "A")).get(
            ("risk", "latency_average_seconds")) == 0 and v, 30)
        # Pushed verdicts; what no command measures says so.
        assert verdict[("system", "throughput_ops_per_second")] == 1
        assert verdict[("system", "throughput_improvement_ratio")] == 1
        assert verdict[("system", "websocket_connections")] == 1
        assert verdict[("system", "cpu_busy_ratio")] == -2
        assert verdict[("factor", "full_cycle_seconds")] == -2
        assert len(verdict) == TARGETS - 2 + 2  # each target in one table only
        # Each shown verdict says which run measured what.
        row = labels(api, "throughput_ops_per_second")
        assert row["run_id"] == "containerized 2026-11-28T10:01:00+00:00"
        assert row["platform"] == "redis://bench-redis:6379/0 nautilus:probe"
        # An improvement factor: both of its runs, and both platforms.
        row = labels(api, "throughput_improvement_ratio")
        assert row["run_id"] == ("baseline 2026-11-28T10:00:00+00:00 + "
                                 "containerized 2026-11-28T10:01:00+00:00")
        assert row["platform"] == ("redis://bench-redis:6379/0 nautilus:loadtest + "
                                   "redis://bench-redis:6379/0 nautilus:probe")
        # The WebSocket targets: the WebSocket run, and the endpoints it measured.
        row = labels(api, "websocket_heartbeat_p99_seconds")
        assert row["run_id"] == "websocket 2026-11-28T10:05:00+00:00"
        assert row["platform"] == "ws://bench-ws:8080/ws/engine/status"
        # Each table's rows as Grafana orders them (its sortBy transformation, on a label
        # it does not show): the system's first, then each engine's by name -- websocket
        # last, not above system -- each scope's targets by key.
        for panel in capacity_tables(OVERVIEW):
            [[order]] = [step["options"]["sort"] for step in panel["transformations"]
                         if step["id"] == "sortBy"]
            shown = [(r["scope"], r["target"]) for r in sorted(
                capacity_rows(api, {"panels": [panel]}), key=lambda r: r[order["field"]])]
            assert shown == sorted(shown, key=lambda st: (st[0] != "system", st)), shown
            if panel["title"] == table["title"]:  # every engine's throughput
                assert shown[0][0] == "system" and shown[-1][0] == "websocket", shown
        assert colour(table, "A", 1) == "green" and colour(table, "A", 0) == "red"
        assert colour(table, "A", -1) == colour(table, "A", -2) == "text"
        assert value_mapping_text(table, -1) == "no load test yet"
        assert value_mapping_text(table, -2) == "no command measures this yet"
        measured = rows(api, "B")
        assert measured[("system", "throughput_ops_per_second")] == 60000
        assert measured[("risk", "latency_average_seconds")] == 0.101
        assert measured[("system", "throughput_improvement_ratio")] == 60
        assert rows(api, "C")[("system", "throughput_ops_per_second")] == 50000
        assert rows(api, "D")[("risk", "latency_average_seconds")] == 0.1
        age = rows(api, "E")[("risk", "latency_average_seconds")]
        assert 0 <= age < 60 and colour(table, "E", age) == "green"
        assert colour(table, "E", 8 * 86400) == "red"  # older than validation_max_age

        # A ticket for each missed target only, delivered together: each line says
        # what was measured against what, in the target's unit, and by which run.
        wait_for(lambda: firing_failed(api) == {
            ("risk", "latency_average_seconds"), ("risk", "error_ratio"),
            ("risk", "limit_check_ops_per_second")}, 30)
        lines = wait_for(lambda: len(got := ticket_lines(receiver)) == 3 and got, 30)
        head = "TICKET firing: CapacityValidationFailed risk"
        run = "(run containerized 2026-11-28T10:01:00+00:00)."
        assert lines == [
            f"{head} error_ratio — risk error_ratio missed its capacity target: measured 2%, "
            f"required at most 1% {run}",
            f"{head} latency_average_seconds — risk latency_average_seconds missed its "
            f"capacity target: measured 101ms, required at most 100ms {run}",
            f"{head} limit_check_ops_per_second — risk limit_check_ops_per_second missed its "
            f"capacity target: measured 15,000 ops/s, required at least 20,000 ops/s {run}"], lines
        [described] = [a["annotations"]["description"] for a in last_ticket(receiver)
                       if a["labels"]["target"] == "error_ratio"]
        assert described == (
            "risk error_ratio: the last load test that measured it missed its target in "
            "thresholds.yml: measured 2%, required at most 1%. Run containerized "
            "2026-11-28T10:01:00+00:00 (validate) on redis://bench-redis:6379/0 "
            "nautilus:probe. Fix (the run's report says where), then run the load test and "
            "validate again.")
        # docs/alerting.md quotes this notification, and that description, word for word.
        doc = " ".join((ROOT / "docs" / "alerting.md").read_text().split())
        assert [line for line in lines if line not in doc] == []
        assert f'"{described}"' in doc
        # A passing run clears them.
        proc = validate(tmp_path, GOOD, f"http://127.0.0.1:{port}")
        assert proc.returncode == 1 and " 0 missed" in proc.stdout, proc.stdout + proc.stderr
        wait_for(lambda: firing_failed(api) == set(), 30)

        # A Pushgateway that is not there: said, and the verdicts still stand.
        proc = validate(tmp_path, GOOD, f"http://127.0.0.1:{free_port()}")
        assert proc.returncode == 1 and " 0 missed" in proc.stdout
        assert "could not push the verdicts" in proc.stderr and "Traceback" not in proc.stderr
    finally:
        for proc in (prometheus, am, gateway):
            if proc is not None:
                proc.terminate()
                proc.wait(20)
        receiver.close()
