"""The scrape snapshot (exporter/snapshot.py): the values of the moment it was taken,
rendered byte for byte as prometheus-client renders the live registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics
from prometheus_client.process_collector import ProcessCollector

from exporter import snapshot
from exporter.metrics import build
from exporter.metrics import Failure
from exporter.probes import registry as kinds
from exporter.snapshot import freeze, Snapshot


def registry() -> tuple[CollectorRegistry, list]:
    reg = CollectorRegistry()
    m = build(reg)
    for kind in ("self_report", "backlog", "websocket", "http"):
        kinds.kind(kind).metrics(reg)  # type: ignore[misc]  # these kinds have one
    plain = Counter("plain", "An unlabelled counter.", registry=reg)
    gauge = Gauge("level", "A gauge with labels.", ["side"], registry=reg)
    read = Gauge("read_through", "A gauge read through a function.", registry=reg)
    value = [1.0]
    read.set_function(lambda: value[0])
    hist = Histogram("sizes", "An unlabelled histogram.", buckets=(1, 10, 100), registry=reg)
    ProcessCollector(registry=reg)
    risk = m.init_probe("risk", "limit_check")

    def change(k: float) -> None:
        risk.requests.inc(k)
        risk.in_flight.inc(k)
        risk.latency.observe(0.004 * k)
        risk.service.observe(0.001 * k)
        risk.failures[Failure.TIMEOUT].inc(k)
        m.schedule_lag.observe(0.0001 * k)
        plain.inc(k)
        gauge.labels("bid").set(k)
        gauge.labels(f"ask{k:g}").set(-k)  # a child born after the snapshot
        hist.observe(5 * k)
        value[0] = k

    return reg, [change]


def test_a_snapshot_renders_what_the_registry_held_when_it_was_taken() -> None:
    reg, [change] = registry()
    change(1)
    # The process collector's figures move by themselves: compare everything else.
    live = [line for line in generate_latest(reg).decode().splitlines() if "process_" not in line]
    live_om = [line for line in openmetrics(reg).decode().splitlines() if "process_" not in line]
    frozen = Snapshot(freeze(reg))
    change(2)  # the live registry moves on; the snapshot does not
    assert [line for line in generate_latest(frozen).decode().splitlines()
            if "process_" not in line] == live
    assert [line for line in openmetrics(frozen).decode().splitlines()
            if "process_" not in line] == live_om
    assert "process_cpu_seconds_total" in generate_latest(frozen).decode()
    # And it moved: the same registry renders differently now.
    assert [line for line in generate_latest(reg).decode().splitlines()
            if "process_" not in line] != live


def test_the_fast_path_is_taken_with_the_installed_prometheus_client() -> None:
    """Every metric of the exporter is copied value by value, not collected in full
    (a prometheus-client release that renamed what snapshot.py reads fails here)."""
    reg, _ = registry()
    frozen = freeze(reg)
    collected = [c for c in frozen if isinstance(c, snapshot._Collected)]
    assert len(collected) == 1  # the process collector only
    assert len(frozen) > 40
