"""The one thresholds file (thresholds.yml): every target, decoded strictly.

Alert rules, dashboards and the review report read targets from here; nothing
else hard-codes a threshold.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from exporter.yamlcheck import ConfigError, Node, duration, load_file, name, positive, ratio, string


@dataclass(frozen=True)
class Limit:
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class Alerting:
    rate_window: float = 300.0
    for_warning: float = 600.0
    for_critical: float = 300.0
    warning_fraction: float = 0.8
    stale_after: float = 30.0
    runbook: str = "docs/runbook.md"


@dataclass(frozen=True)
class Thresholds:
    baseline_throughput: float
    baseline_latency: float
    system: dict[str, Limit]
    engine: dict[str, Limit]  # engine_defaults: every engine
    operations: dict[str, dict[str, float]]  # engine -> op -> minimum ops/s
    full_cycle: dict[str, Limit]  # engine -> limit on its full_cycle op's latency
    websocket: dict[str, Limit]
    alerting: Alerting = field(default_factory=Alerting)

    @property
    def throughput_factor(self) -> float:
        """The improvement the system throughput target asks for (50×)."""
        return self.system["throughput_ops_per_second"].min / self.baseline_throughput

    @property
    def latency_factor(self) -> float:
        """The improvement the end-to-end latency target asks for (4×)."""
        return self.baseline_latency / self.system["latency_average_seconds"].max

    @classmethod
    def load(cls, path: str) -> "Thresholds":
        return load_file(path, parse)[0]


SYSTEM_KEYS = ("throughput_ops_per_second", "latency_average_seconds", "websocket_connections",
               "cpu_busy_ratio", "error_ratio")
ENGINE_KEYS = ("throughput_ops_per_second", "latency_average_seconds", "error_ratio")


def _limit(path: str, value: Any) -> Limit:
    node = Node(value, path)
    lo = node.get("min", None, _number)
    hi = node.get("max", None, _number)
    node.done()
    if lo is None and hi is None:
        raise ConfigError(path, "needs min, max or both")
    if lo is not None and hi is not None and lo > hi:
        raise ConfigError(path, "min is above max")
    return Limit(lo, hi)


def _number(path: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(path, f"must be a number >= 0, got {value!r}")
    return float(value)


def _limits(node: Node, keys: tuple[str, ...]) -> dict[str, Limit]:
    out = {k: node.get(k, None, _limit) for k in keys}
    node.done()
    missing = [k for k, v in out.items() if v is None]
    if missing:
        raise ConfigError(node.sub(missing[0]), "is required")
    return out  # type: ignore[return-value]


def parse(data: Any) -> Thresholds:
    root = Node(data)
    base = root.node("baseline")
    baseline = (base.get("throughput_ops_per_second", 1000.0, positive),
                base.get("latency_average_seconds", 0.2, duration))
    base.done()
    system = _limits(root.node("system"), SYSTEM_KEYS)
    engine = _limits(root.node("engine_defaults"), ENGINE_KEYS)
    operations: dict[str, dict[str, float]] = {}
    full_cycle: dict[str, Limit] = {}
    engines = root.node("engines")
    for eng, value in engines.items():
        name(engines.sub(eng), eng)
        enode = Node(value, engines.sub(eng))
        ops = enode.node("operations_ops_per_second")
        operations[eng] = {name(ops.sub(op), op): positive(ops.sub(op), v) for op, v in ops.items()}
        if "full_cycle_seconds" in enode.data:
            full_cycle[eng] = enode.get("full_cycle_seconds", None, _limit)
        enode.done()
    ws = root.node("websocket")
    websocket = {"heartbeat_p99_seconds": ws.get("heartbeat_p99_seconds", Limit(max=0.005), _limit)}
    ws.done()
    a = root.node("alerting")
    fors = a.node("for")
    alerting = Alerting(
        rate_window=a.get("rate_window", 300.0, duration),
        for_warning=fors.get("warning", 600.0, duration),
        for_critical=fors.get("critical", 300.0, duration),
        warning_fraction=a.get("warning_fraction", 0.8, ratio),
        stale_after=a.get("self_report_stale_after", 30.0, duration),
        runbook=a.get("runbook", "docs/runbook.md", string))
    fors.done()
    a.done()
    root.done()
    return Thresholds(baseline[0], baseline[1], system, engine, operations, full_cycle,
                      websocket, alerting)


def generate(prog: str, render: Callable[["Thresholds"], dict[str, str]], default_out: str,
             argv: list[str] | None = None) -> int:
    """The `python -m alerts` / `python -m dashboards` command: thresholds in, files out."""
    ap = argparse.ArgumentParser(prog=f"python -m {prog}",
                                 description=f"Generate {prog} from the thresholds file.")
    ap.add_argument("--thresholds", default="thresholds.yml")
    ap.add_argument("--out", default=default_out)
    args = ap.parse_args(argv)
    try:
        t = Thresholds.load(args.thresholds)
    except ConfigError as exc:
        print(f"{prog}: config error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for filename, text in render(t).items():
        (out / filename).write_text(text)
    return 0
