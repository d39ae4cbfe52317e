"""Capacity verdicts to a Prometheus Pushgateway, the ecosystem's home for batch-job
results: the overview's "Capacity, last proven" row and the CapacityValidation*
alerts read them there.

One group per target (grouping key: job, scope, target), so each target keeps its
last verdict — a WebSocket load test does not erase the throughput verdict — and
the Pushgateway's own `push_time_seconds` of the group is the verdict's age.

Every verdict carries its provenance in `run_info`: the run, the command, and the
platform it measured (the MessageBus's Redis and prefix, or the Prometheus a review
read) — an improvement factor both of its runs, the baseline's and the
containerized one's; `run_timestamp_seconds` says when. The overview shows a verdict only with
that provenance. Only judged verdicts (met or missed) are pushed: a figure that
was not established is no verdict to colour.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from exporter.metrics import NAMESPACE as P
from nautilus_wire.redact import redact

from .validate import TargetCheck


@dataclass(frozen=True)
class Run:
    """Which run produced the verdicts."""

    run_id: str  # the run's kind and start time (two runs: joined by " + ")
    command: str  # loadtest | validate | review
    timestamp: float  # unix seconds, when the measured window ended (two: the older's)
    duration: float  # seconds of the measured window (two: together)
    offered_ops: float | None = None  # offered load, operations/s, when the run set one
    platform: str = ""  # what was measured: "<Redis URL, password redacted> <prefix>",
    # a WebSocket run's endpoints, or the Prometheus a review read (two: joined by " + ")


def registry_for(check: TargetCheck, run: Run) -> CollectorRegistry:
    """The series of one target's group."""
    reg = CollectorRegistry()

    def gauge(name: str, doc: str, value: float | None, **labels: str) -> None:
        if value is None:
            return
        g = Gauge(f"{P}_capacity_{name}", doc, list(labels), registry=reg)
        (g.labels(**labels) if labels else g).set(value)

    gauge("verdict", "1 when the last load test met the target, 0 when it missed it.",
          1.0 if check.passed else 0.0)
    gauge("measured", "The target's measured value, in its unit (the target's name says it).",
          check.measured)
    gauge("required_min", "The target's minimum (thresholds.yml).", check.required_min)
    gauge("required_max", "The target's maximum (thresholds.yml).", check.required_max)
    gauge("run_info", "The run that produced the verdict (an improvement factor's two, "
          "joined by +), and the platform it measured.",
          1.0, run_id=run.run_id, command=run.command, platform=run.platform)
    gauge("run_timestamp_seconds", "When the run's measured window ended (of two runs, the "
          "older's).", run.timestamp)
    gauge("run_duration_seconds", "How long the run measured (two runs: together).",
          run.duration)
    gauge("run_offered_operations_per_second", "The offered load of the run's open-loop phase.",
          run.offered_ops)
    return reg


def push(gateway: str, checks: Iterable[TargetCheck], run: Run, job: str, timeout: float = 5.0
         ) -> int:
    """Push every check to `gateway` (a URL) under `job` (thresholds.yml's capacity_job);
    returns how many groups were pushed. Raises OSError when the Pushgateway cannot be
    reached or refuses."""
    n = 0
    for check in checks:
        push_to_gateway(gateway, job=job, registry=registry_for(check, run),
                        grouping_key={"scope": check.scope, "target": check.key},
                        timeout=timeout)
        n += 1
    return n


def run_from_metadata(command: str, metas: list[dict[str, Any]],
                      offered_ops: float | None = None) -> Run:
    """A Run from the metadata of the runs a verdict was computed from (a load test's,
    or a review's window): an improvement factor names both of its runs, as "baseline
    ... + containerized ...", and is as old as the older of them."""
    parts = [_part(command, meta) for meta in metas]
    platforms = list(dict.fromkeys(p for _, _, _, p in parts if p))  # once each, in order
    return Run(run_id=" + ".join(run_id for run_id, _, _, _ in parts), command=command,
               timestamp=min(end for _, end, _, _ in parts),
               duration=sum(duration for _, _, duration, _ in parts), offered_ops=offered_ops,
               platform=" + ".join(platforms))


def _part(command: str, meta: dict[str, Any]) -> tuple[str, float, float, str]:
    """One run's (run id, end, duration, platform) from its metadata."""
    started = meta.get("started") or meta.get("window_start")
    ended = meta.get("ended") or meta.get("window_end")
    end = datetime.fromisoformat(ended).timestamp() if ended else time.time()
    duration = meta.get("duration_seconds")
    if duration is None and started:
        duration = end - datetime.fromisoformat(started).timestamp()
    return (f"{meta.get('kind', command)} {started or ''}".strip(), end, float(duration or 0.0),
            platform(meta))


def platform(meta: dict[str, Any]) -> str:
    """What a run measured, from its metadata: the MessageBus (Redis URL, already
    redacted, and prefix) or, for a review, the Prometheus it read."""
    if meta.get("redis_url"):
        return f"{meta['redis_url']} {meta.get('prefix', '')}".strip()
    if meta.get("websocket_urls"):
        return " ".join(meta["websocket_urls"])
    if meta.get("prometheus"):
        return f"Prometheus {redact(str(meta['prometheus']))}"
    return ""
