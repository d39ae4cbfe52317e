"""The live test: a real Prometheus scrapes the running local stack with the
generated rules; every dashboard query returns data; an injected breach fires
its alert and only its alert."""

from __future__ import annotations

import json
import time
import urllib.parse

import redis

from nautilus_testkit import ROOT, http_get, wait_for

RATE_INTERVAL = "15s"  # $__rate_interval for a 1 s scrape


def query(api: str, expr: str) -> list:
    status, body = http_get(f"{api}/api/v1/query?query={urllib.parse.quote(expr)}", timeout=10)
    assert status == 200, body
    return json.loads(body)["data"]["result"]


def alerts(api: str) -> list[dict]:
    return json.loads(http_get(f"{api}/api/v1/alerts")[1])["data"]["alerts"]


def test_dashboards_have_data_and_a_breach_fires(live_stack) -> None:
    api, redis_url = live_stack
    # Enough samples for 15 s rates and for every self-report.
    wait_for(lambda: query(api, "nautilus_probe:engine_throughput:reported"), 40, interval=1)
    wait_for(lambda: query(api, "nautilus_probe:system_latency_seconds:mean"), 30, interval=1)
    time.sleep(12)

    empty = []
    for path in sorted((ROOT / "dashboards" / "generated").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                expr = target["expr"].replace("$__rate_interval", RATE_INTERVAL) \
                    .replace("$engine", "risk")
                if not query(api, expr):
                    empty.append(f"{path.name} / {panel['title']}: {expr}")
    assert not empty, "queries without data:\n" + "\n".join(empty)

    def latency_alerts(state: str | None = None) -> list[dict]:
        return [a for a in alerts(api) if a["labels"]["alertname"] == "EngineLatencyAboveTarget"
                and (state is None or a["state"] == state)]

    assert latency_alerts() == []  # healthy before the breach
    with redis.Redis.from_url(redis_url) as r:
        r.set("nautilus:probe:{risk}:knobs", json.dumps({"*": {"service_time": "150ms"}}))
    wait_for(lambda: any(a["labels"]["engine"] == "risk" and a["labels"]["severity"] == "critical"
                         for a in latency_alerts("firing")), 45, interval=1)
    assert {a["labels"]["engine"] for a in latency_alerts()} == {"risk"}
    # The trading request includes the risk leg: the end-to-end target is breached too.
    wait_for(lambda: any(a["labels"]["alertname"] == "SystemLatencyAboveTarget"
                         and a["state"] == "firing" for a in alerts(api)), 30, interval=1)
