"""Metric definitions: bucket layout and naming."""

from __future__ import annotations

from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry, generate_latest

from exporter.metrics import LATENCY_BUCKETS, LATENCY_THRESHOLDS_S, SERVICE_BUCKETS
from exporter.probes.registry import every_family

ROOT = Path(__file__).resolve().parent.parent


def _latency_thresholds(node: object, key: str = "") -> list[float]:
    if isinstance(node, dict):
        return [v for k, child in node.items()
                for v in _latency_thresholds(child, str(k) if str(k).endswith("_seconds") else key)]
    if isinstance(node, (int, float)) and key.endswith("_seconds") and node <= 10:
        return [float(node)]
    return []


def test_every_latency_threshold_is_a_bucket_boundary() -> None:
    thresholds = _latency_thresholds(yaml.safe_load((ROOT / "thresholds.yml").read_text()))
    assert {0.005, 0.05, 0.1, 0.2} <= set(thresholds)
    for t in thresholds:
        assert t in LATENCY_BUCKETS, t


def test_bucket_layout() -> None:
    # Never more than 19 % between neighbours, so a quantile read is within a few
    # percent; service time as fine as the round trip (a 200 ms p99 reads ~200 ms).
    for buckets, low, ratio in ((LATENCY_BUCKETS, 0.00025, 2 ** 0.25),
                                (SERVICE_BUCKETS, 0.00005, 2 ** 0.25)):
        assert buckets[0] == low and buckets[-1] == 10.0
        assert list(buckets) == sorted(set(buckets))
        assert max(b / a for a, b in zip(buckets, buckets[1:], strict=False)) <= ratio + 1e-3
        assert set(LATENCY_THRESHOLDS_S) <= set(buckets)
    assert len(LATENCY_BUCKETS) <= 70
    assert len(SERVICE_BUCKETS) <= 80


def test_names_follow_conventions() -> None:
    reg = CollectorRegistry()
    m, _ = every_family(reg)
    m.init_probe("risk", "limit_check")
    text = generate_latest(reg).decode()
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines()
             if line and not line.startswith("#")}
    assert all(n.startswith("nautilus_probe_") for n in names)
    assert not any(n.endswith("_created") for n in names)
    for line in text.splitlines():
        if line.startswith("# TYPE") and line.endswith(" counter"):
            assert line.split()[2].endswith("_total")
    assert 'nautilus_probe_failures_total{engine="risk",op="limit_check",reason="send_failed"} 0.0' in text


def test_docs_name_every_metric() -> None:
    reg = CollectorRegistry()
    every_family(reg)
    doc = (ROOT / "docs" / "metrics.md").read_text()
    for family in reg.collect():
        name = family.name + ("_total" if family.type == "counter" else "")
        if family.type == "info":
            name += "_info"
        assert f"`{name}`" in doc, name


def test_doublings_formula() -> None:
    from exporter.metrics import _doublings

    assert _doublings(1.0, 4.0, 2) == {1.0, 1.414, 2.0, 2.828, 4.0}
    assert _doublings(0.5, 0.5, 4) == {0.5}  # the stop itself is included
    assert _doublings(1.0, 3.9999, 1) == {1.0, 2.0, 4.0}  # within 0.01 % of the stop
    assert _doublings(1.0, 3.99, 1) == {1.0, 2.0}
    latency = _doublings(0.00025, 10.0, 4)
    assert len(latency) == 62 and min(latency) == 0.00025 and max(latency) == 9.742
