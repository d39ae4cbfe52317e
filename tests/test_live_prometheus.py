"""The live test: a real Prometheus scrapes the running local stack with the
generated rules; every dashboard query returns data, a reload is annotated, and a
stalled engine's backlog grows and drains. (The alerts: test_alerting_live.py.)"""

from __future__ import annotations

import json
import time

import redis

from alerts.query import PrometheusAPI
from nautilus_testkit import ROOT, http_post, wait_for
from nautilus_testkit.live import query, red_cells, substitute
from nautilus_wire.protocol import ENGINE_OPERATIONS

# Pushed by load tests (tests/test_capacity_push.py reads them from a real
# Pushgateway); this stack runs none, so only the "no load test yet" rows exist.
PUSHED = 'job="nautilus-capacity"'
# Every engine the local stack runs, whatever probes it.
STACK_ENGINES = (*ENGINE_OPERATIONS, "websocket")


def alerts(api: str) -> list[dict]:
    return PrometheusAPI(api).alerts()


def test_every_dashboard_query_has_data(live_stack) -> None:
    api, redis_url, exporter = live_stack
    # Enough samples for 15 s rates and for every self-report.
    wait_for(lambda: query(api, "nautilus_probe:engine_throughput:reported"), 40, interval=1)
    wait_for(lambda: query(api, "nautilus_probe:system_latency_seconds:mean"), 30, interval=1)
    time.sleep(12)  # the 15 s windows filled (the overview's colours below read them)

    def without_data() -> list[str]:
        empty = []
        for path in sorted((ROOT / "dashboards" / "generated").glob("*.json")):
            board = json.loads(path.read_text())
            for panel in board["panels"]:
                for target in panel.get("targets", []):
                    if PUSHED in target["expr"] and " or " not in target["expr"]:
                        query(api, substitute(target["expr"]))  # valid PromQL
                        continue
                    expr = substitute(target["expr"])
                    if "ws_connect_duration_seconds_bucket" in expr:
                        # Connections open once, before the first scrape: no connect in
                        # any window, so no value (a gap, never NaN).
                        # test_websocket_probe.py measures connect times.
                        query(api, expr)  # valid PromQL
                        continue
                    # An engine's panels have data for the engine picked (risk), or for
                    # one of the engines they apply to: a probe kind's targets in the
                    # stack may be another engine's (the WebSocket engines' health
                    # endpoints and ports).
                    if not query(api, expr) and not (
                            "$engine" in target["expr"]
                            and any(query(api, substitute(target["expr"], engine=e))
                                    for e in STACK_ENGINES)):
                        empty.append(f"{path.name} / {panel['title']}: {target['expr']}")
            for annotation in board["annotations"]["list"]:
                if "expr" in annotation:
                    query(api, substitute(annotation["expr"]))  # valid PromQL (data below)
        return empty

    # Every query has data by now, or soon after on a loaded machine (its scrapes and
    # rule evaluations fall behind): polled to a deadline, then asserted.
    empty = without_data()
    deadline = time.monotonic() + 30
    while empty and time.monotonic() < deadline:
        time.sleep(2)
        empty = without_data()
    assert not empty, "queries without data:\n" + "\n".join(empty)
    # Healthy: no stat or table cell of the overview is red (or NaN).
    overview = json.loads((ROOT / "dashboards" / "generated" / "overview.json").read_text())
    assert red_cells(api, overview) == []

    # A configuration reload is drawn as an annotation.
    [reloads] = [a["expr"] for a in overview["annotations"]["list"]
                 if a["name"] == "Configuration reloads"]
    assert query(api, substitute(reloads)) == []
    assert http_post(f"{exporter}/-/reload")[0] == 200
    wait_for(lambda: query(api, substitute(reloads)), 15, interval=1)

    # A stalled engine: its backlog grows on the dashboards' query, then drains.
    backlog = substitute('max(nautilus_probe_messagebus_pending_messages{engine="factor"}) + '
                         'max(nautilus_probe_messagebus_lag_messages{engine="factor"})')
    assert float(query(api, backlog)[0]["value"][1]) < 10
    with redis.Redis.from_url(redis_url) as r:
        knobs = "nautilus:probe:{factor}:knobs"
        # Requests wait up to 20 s; the stack reads the backlog every 5 s.
        r.set(knobs, json.dumps({"*": {"stall": {"duration": "20s", "period": "20.001s"}}}))
        wait_for(lambda: float(query(api, backlog)[0]["value"][1]) >= 30, 30, interval=1)
        r.delete(knobs)
    wait_for(lambda: float(query(api, backlog)[0]["value"][1]) < 10, 40, interval=1)
