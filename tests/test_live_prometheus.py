"""The live test: a real Prometheus scrapes the running local stack with the
generated rules; every dashboard query returns data, a reload is annotated, and a
stalled engine's backlog grows and drains. (The alerts: test_alerting_live.py.)"""

from __future__ import annotations

import json
import time

import redis

from nautilus_testkit import ROOT, http_get, http_post, wait_for
from nautilus_testkit.live import query

RATE_INTERVAL = "15s"  # $__rate_interval for a 1 s scrape


def substitute(expr: str) -> str:
    """The dashboards' variables as Grafana would fill them (All for job and instance)."""
    return (expr.replace("$__rate_interval", RATE_INTERVAL).replace("$engine", "risk")
            .replace('"$job"', '".+"').replace('"$instance"', '".+"'))


def alerts(api: str) -> list[dict]:
    return json.loads(http_get(f"{api}/api/v1/alerts")[1])["data"]["alerts"]


def test_every_dashboard_query_has_data(live_stack) -> None:
    api, redis_url, exporter = live_stack
    # Enough samples for 15 s rates and for every self-report.
    wait_for(lambda: query(api, "nautilus_probe:engine_throughput:reported"), 40, interval=1)
    wait_for(lambda: query(api, "nautilus_probe:system_latency_seconds:mean"), 30, interval=1)
    time.sleep(12)

    empty = []
    for path in sorted((ROOT / "dashboards" / "generated").glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                if not query(api, substitute(target["expr"])):
                    empty.append(f"{path.name} / {panel['title']}: {target['expr']}")
        for annotation in board["annotations"]["list"]:
            if "expr" in annotation:
                query(api, substitute(annotation["expr"]))  # valid PromQL (data comes below)
    assert not empty, "queries without data:\n" + "\n".join(empty)

    # A configuration reload is drawn as an annotation.
    [reloads] = [a["expr"] for a in board["annotations"]["list"] if a["name"] == "Configuration reloads"]
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
