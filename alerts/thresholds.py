"""The one thresholds file (thresholds.yml): every target, decoded strictly.

Alert rules, dashboards and the review report read targets from here; nothing
else hard-codes a threshold.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Callable

from nautilus_config.checks import duration, duration_or_zero, name, Node, positive, string
from nautilus_config.errors import ConfigError
from nautilus_config.strict_yaml import load_file


@dataclass(frozen=True)
class Limit:
    min: float | None = None
    max: float | None = None

    @property
    def floor(self) -> float:
        """`min`, of a target whose key must have one (REQUIRED_SIDE: parse checks it)."""
        if self.min is None:
            raise ValueError("this limit has no min")
        return self.min

    @property
    def ceiling(self) -> float:
        """`max`, of a target whose key must have one (REQUIRED_SIDE: parse checks it)."""
        if self.max is None:
            raise ValueError("this limit has no max")
        return self.max


@dataclass(frozen=True)
class BurnRate:
    """Alert when the error budget burns `factor` times too fast over both windows."""

    factor: float
    long: float  # seconds
    short: float


# The SRE workbook's multiwindow, multi-burn-rate scheme (page: 2 % of a 30-day
# budget in an hour, 5 % in six; ticket: 10 % in a day, all of it in three).
DEFAULT_BURN_RATES: dict[str, tuple[BurnRate, ...]] = {
    "page": (BurnRate(14.4, 3600, 300), BurnRate(6, 21600, 1800)),
    "ticket": (BurnRate(3, 86400, 7200), BurnRate(1, 259200, 21600)),
}
SEVERITIES = ("page", "ticket")


@dataclass(frozen=True)
class Objectives:
    availability: float = 0.99  # share of probes answered ok
    latency: float = 0.99  # share of answered probes under the engine's latency target


@dataclass(frozen=True)
class Alerting:
    rate_window: float = 300.0
    burn_rates: dict[str, tuple[BurnRate, ...]] = field(
        default_factory=lambda: dict(DEFAULT_BURN_RATES))
    for_page: float = 120.0
    for_ticket: float = 900.0
    for_no_responders: float = 60.0
    # A burn alerts only while it is still happening: every condition also needs the
    # budget burning over `recent`, so an alert resolves within recent + keep_firing_for
    # of the fault's end; a dip shorter than keep_firing_for neither resolves nor re-pages.
    recent: float = 300.0
    # The present, as a page states it beside the windows' burn figures: the failing
    # share (and, for latency, p50/p99) over this last stretch.
    current: float = 60.0
    keep_firing_page: float = 270.0
    keep_firing_ticket: float = 120.0
    # The last load-test validation: a ticket when it failed or is older than this.
    validation_max_age: float = 7 * 86400.0
    schedule_lag_p99: float = 0.05  # the prober's own delay: ProberSaturated above it
    backlog_messages: float = 100.0
    stale_after: float = 30.0
    runbook_url: str = "https://github.com/nautilus-platform/nautilus-probe/blob/main/docs/runbook.md"

    def windows(self) -> list[float]:
        """Every burn-rate window (and the recent and current ones), shortest first."""
        return sorted({self.recent, self.current} | {w for rates in self.burn_rates.values() for b in rates
                                       for w in (b.long, b.short)})

    def keep_firing_for(self, severity: str) -> float:
        return self.keep_firing_page if severity == "page" else self.keep_firing_ticket


@dataclass(frozen=True)
class Jobs:
    """The Prometheus `job` labels every rule, dashboard and scrape config selects."""

    exporter: str = "nautilus-probe"  # the job scraping the exporter(s)
    capacity: str = "nautilus-capacity"  # the Pushgateway job of the load tests' verdicts

    @property
    def capacity_selector(self) -> str:
        return f'job="{self.capacity}"'


@dataclass(frozen=True)
class Thresholds:
    baseline_throughput: float
    baseline_latency: float
    system: dict[str, Limit]
    engine: dict[str, Limit]  # engine_defaults: every engine
    operations: dict[str, dict[str, float]]  # engine -> op -> minimum ops/s
    full_cycle: dict[str, Limit]  # engine -> limit on its full_cycle op's latency
    websocket: dict[str, Limit]
    objectives: Objectives = field(default_factory=Objectives)
    alerting: Alerting = field(default_factory=Alerting)
    jobs: Jobs = field(default_factory=Jobs)

    @property
    def throughput_factor(self) -> float:
        """The improvement the system throughput target asks for (50×)."""
        return self.system["throughput_ops_per_second"].floor / self.baseline_throughput

    @property
    def latency_factor(self) -> float:
        """The improvement the end-to-end latency target asks for (4×)."""
        return self.baseline_latency / self.system["latency_average_seconds"].ceiling

    @classmethod
    def load(cls, path: str) -> Thresholds:
        return load_file(path, parse)[0]


SYSTEM_KEYS = ("throughput_ops_per_second", "latency_average_seconds", "websocket_connections",
               "cpu_busy_ratio", "error_ratio")
ENGINE_KEYS = ("throughput_ops_per_second", "latency_average_seconds", "error_ratio")
# The side of its limit each target must state: the side the rules, the dashboards
# and the verdicts compute with (the other side is optional).
REQUIRED_SIDE = {"throughput_ops_per_second": "min", "latency_average_seconds": "max",
                 "error_ratio": "max", "full_cycle_seconds": "max",
                 "heartbeat_p99_seconds": "max"}


def _limit(path: str, value: Any) -> Limit:
    node = Node(value, path)
    lo = node.get("min", None, _number)
    hi = node.get("max", None, _number)
    node.done()
    if lo is None and hi is None:
        raise ConfigError(path, "needs min, max or both")
    side = REQUIRED_SIDE.get(path.rsplit(".", 1)[-1])
    if (side == "min" and lo is None) or (side == "max" and hi is None):
        raise ConfigError(path, f"needs a {side}")
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
    return out  # type: ignore[return-value]  # no None left: checked above


def _objective(path: str, value: Any) -> float:
    v = _number(path, value)
    if not 0 < v < 1:
        raise ConfigError(path, f"must be a share between 0 and 1 (e.g. 0.99), got {value!r}")
    return v


def _http_url(path: str, value: Any) -> str:
    text = string(path, value)
    if not text.startswith(("http://", "https://")):
        raise ConfigError(path, f"must be an absolute http(s) URL (alerts link to it), got {text!r}")
    return text


_WINDOW_RE = re.compile(r"^([1-9][0-9]*)(s|m|h|d|w)$")
_WINDOW_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


# A Prometheus job label value as written into selectors and scrape configs.
_JOB_RE = re.compile(r"\A[A-Za-z0-9_.:-]{1,64}\Z")


def _job(path: str, value: Any) -> str:
    if not isinstance(value, str) or not _JOB_RE.match(value):
        raise ConfigError(path, "must be a job name of letters, digits and _ . : - "
                                f"(at most 64), got {value!r}")
    return value


def _jobs(node: Node) -> Jobs:
    jobs = Jobs(exporter=node.get("exporter_job", Jobs.exporter, _job),
                capacity=node.get("capacity_job", Jobs.capacity, _job))
    if jobs.exporter == jobs.capacity:
        raise ConfigError(node.sub("capacity_job"),
                          f"must differ from exporter_job ({jobs.exporter!r}): the capacity "
                          "alerts would read the exporter's series")
    node.done()
    return jobs


def _window(path: str, value: Any) -> float:
    """A Prometheus range such as 5m, 6h, 3d (at most 90 days)."""
    m = _WINDOW_RE.match(value) if isinstance(value, str) else None
    if m is None:
        raise ConfigError(path, f"must be a window such as 5m, 6h or 3d, got {value!r}")
    seconds = float(int(m.group(1)) * _WINDOW_UNITS[m.group(2)])
    if seconds > 90 * 86400:
        raise ConfigError(path, f"must be at most 90d, got {value!r}")
    return seconds


def _burn_rates(path: str, value: Any) -> tuple[BurnRate, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError(path, "must be a list of {factor, long, short}")
    out = []
    for i, item in enumerate(value):
        node = Node(item, f"{path}[{i}]")
        factor, long = node.get("factor", None, positive), node.get("long", None, _window)
        short = node.get("short", None, _window)
        node.done()
        if factor is None or long is None or short is None:
            raise ConfigError(f"{path}[{i}]", "needs factor, long and short")
        rate = BurnRate(factor, long, short)
        if rate.short >= rate.long:
            raise ConfigError(f"{path}[{i}].short", "must be shorter than long")
        out.append(rate)
    return tuple(out)


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
        if (cycle := enode.get("full_cycle_seconds", None, _limit)) is not None:
            full_cycle[eng] = cycle
        enode.done()
    ws = root.node("websocket")
    websocket = {"heartbeat_p99_seconds": ws.get("heartbeat_p99_seconds", Limit(max=0.005), _limit)}
    ws.done()
    o = root.node("objectives")
    objectives = Objectives(availability=o.get("availability", 0.99, _objective),
                            latency=o.get("latency", 0.99, _objective))
    o.done()
    a = root.node("alerting")
    fors = a.node("for")
    keep = a.node("keep_firing_for")
    rates = a.node("burn_rates")
    burn_rates = {sev: rates.get(sev, tuple(DEFAULT_BURN_RATES[sev]), _burn_rates)
                  for sev in SEVERITIES}
    rates.done()
    alerting = Alerting(
        rate_window=a.get("rate_window", 300.0, duration),
        burn_rates=burn_rates,
        for_page=fors.get("page", 120.0, duration),
        for_ticket=fors.get("ticket", 900.0, duration),
        for_no_responders=fors.get("no_responders", 60.0, duration),
        recent=a.get("recent", 300.0, _window),
        current=a.get("current", 60.0, _window),
        keep_firing_page=keep.get("page", 270.0, duration_or_zero),
        keep_firing_ticket=keep.get("ticket", 120.0, duration_or_zero),
        validation_max_age=a.get("validation_max_age", 7 * 86400.0, _window),
        backlog_messages=a.get("backlog_messages", 100.0, positive),
        schedule_lag_p99=a.get("prober_schedule_lag_p99", 0.05, duration),
        stale_after=a.get("self_report_stale_after", 30.0, duration),
        runbook_url=a.get("runbook_url", Alerting.runbook_url, _http_url))
    fors.done()
    keep.done()
    a.done()
    jobs = _jobs(root.node("prometheus"))
    root.done()
    return Thresholds(baseline[0], baseline[1], system, engine, operations, full_cycle,
                      websocket, objectives, alerting, jobs)


def generate(prog: str, render: Callable[[Thresholds], dict[str, str]], default_out: str,
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
