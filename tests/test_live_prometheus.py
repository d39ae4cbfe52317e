"""The live test: a real Prometheus scrapes the running local stack with the
generated rules; every dashboard query returns data; an injected breach fires
its alert and only its alert."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest
import redis
import yaml

from alerts.__main__ import render
from exporter.thresholds import Thresholds

from .conftest import ROOT, free_port, http_get, wait_for

RATE_INTERVAL = "15s"  # $__rate_interval for a 1 s scrape


@pytest.fixture
def live_stack(tmp_path: Path):
    port = free_port()
    log = tmp_path / "stack.log"
    out = open(log, "wb")
    stack = subprocess.Popen([sys.executable, "-m", "exporter", "stack", "--duration", "240",
                              "--web.listen-address", f"127.0.0.1:{port}"], cwd=ROOT,
                             stdout=out, stderr=subprocess.STDOUT)
    prometheus = None
    try:
        wait_for(lambda: "Metrics: " in log.read_text(), 40)
        redis_url = re.search(r"Redis at (redis://\S+)", log.read_text()).group(1)
        # The generated rules, from thresholds.yml with windows short enough for a test.
        data = yaml.safe_load((ROOT / "thresholds.yml").read_text())
        data["alerting"].update({"rate_window": "10s", "for": {"warning": "4s", "critical": "2s"}})
        (tmp_path / "thresholds.yml").write_text(yaml.safe_dump(data))
        rules = tmp_path / "rules"
        rules.mkdir()
        for name, text in render(Thresholds.load(str(tmp_path / "thresholds.yml"))).items():
            (rules / name).write_text(text)
        prom_port = free_port()
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules / "recording.yml"), str(rules / "alerts.yml")],
            "scrape_configs": [{"job_name": "nautilus-probe",
                                "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}]}))
        binary = shutil.which("prometheus")
        assert binary, "prometheus is missing: run ./run setup"
        prometheus = subprocess.Popen(
            [binary, f"--config.file={tmp_path / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        api = f"http://127.0.0.1:{prom_port}"
        wait_for(lambda: http_get(f"{api}/-/ready")[0] == 200, 30)
        yield api, redis_url
    finally:
        for proc in (prometheus, stack):
            if proc is not None:
                proc.terminate()
                proc.wait(20)
        out.close()


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
