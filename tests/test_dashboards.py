"""Generated dashboards: in sync, modern panels only, thresholds from thresholds.yml."""

from __future__ import annotations

import json

from dashboards.__main__ import render
from alerts.thresholds import Thresholds

from nautilus_testkit import ROOT

GENERATED = ROOT / "dashboards" / "generated"
MODERN = {"timeseries", "stat", "gauge", "bargauge", "table", "heatmap"}


def load(name: str) -> dict:
    return json.loads((GENERATED / f"{name}.json").read_text())


def test_committed_dashboards_match_a_fresh_generation() -> None:
    for name, text in render(Thresholds.load(str(ROOT / "thresholds.yml"))).items():
        assert (GENERATED / name).read_text() == text, f"{name} is stale: run python -m dashboards"


def test_modern_panels_and_fixed_datasource() -> None:
    uids = set()
    for path in GENERATED.glob("*.json"):
        d = json.loads(path.read_text())
        uids.add(d["uid"])
        for panel in d["panels"]:
            assert panel["type"] in MODERN, (path.name, panel["type"])
            assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}
            for t in panel["targets"]:
                assert t["datasource"] == {"type": "prometheus", "uid": "prometheus"}
                assert t["expr"]
    assert uids == {"nautilus-overview", "nautilus-engine", "nautilus-websocket", "nautilus-prober"}


def test_threshold_lines_come_from_the_thresholds_file() -> None:
    t = Thresholds.load(str(ROOT / "thresholds.yml"))
    steps = {p["title"]: [s["value"] for s in p["fieldConfig"]["defaults"]["thresholds"]["steps"]]
             for p in load("overview")["panels"]}
    assert steps["Throughput vs target"][-1] == t.system["throughput_ops_per_second"].min
    assert steps["End-to-end latency vs target"][-1] == t.system["latency_average_seconds"].max
    assert steps["Error ratio"][-1] == t.system["error_ratio"].max
    engine = {p["title"]: p for p in load("engine")["panels"]}
    quantiles = engine["Latency quantiles per operation"]["fieldConfig"]["defaults"]
    assert quantiles["thresholds"]["steps"][-1]["value"] == t.engine["latency_average_seconds"].max
    assert quantiles["custom"]["thresholdsStyle"]["mode"] == "line"
