"""The engine self-report: `metrics:<engine>`, the migration plan's JSON, published
by the responder from what it measured and what the engine supplies."""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import os
import time
from dataclasses import dataclass
from typing import Any
from collections.abc import Awaitable, Callable, Mapping

from .protocol import MAX_REPORT_OPERATIONS, NAME_RE

try:
    _PAGE = os.sysconf("SC_PAGE_SIZE")
except (AttributeError, ValueError, OSError):  # not Linux
    _PAGE = 0

# Figures an engine may supply (`SelfReport.figures`) in place of the responder's.
ENGINE_FIGURES = ("throughput", "latency", "cpu_usage", "memory_usage", "error_rate",
                  "operations")
# What identifies the responder that wrote a report (a second writer is named by it).
WRITER_FIELD = "responder"
# The fields of a report that the engine's figures supplied (the rest: the responder's).
ENGINE_FIELDS = "from_engine"

# `figures(interval)` (or `figures()`): the engine's own figures, a mapping or an
# awaitable of one.
Figures = Callable[..., Mapping[str, Any] | Awaitable[Mapping[str, Any]]]


@dataclass(frozen=True)
class SelfReport:
    """How the responder self-reports.

    `interval`: seconds between reports (the first one goes out 1 s after start).
    `expire`: seconds the key lives without a new report (default 3 intervals, at
    least 15 s): a crashed engine's report disappears instead of going stale forever.
    `figures`: called at each report with the seconds since the previous call (since
    the start, the first time), or with no argument if it takes none; a plain or an
    async function. Returns any of ENGINE_FIGURES measured by the engine itself (its
    real work, not only probes), which replace the responder's. If it raises, returns
    something else, or an async one takes longer than the interval (at most 5 s),
    the report goes out with the responder's figures (docs/engines.md, Self-report).
    """

    interval: float = 5.0
    expire: float | None = None
    figures: Figures | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.interval) and 0.1 <= self.interval <= 3600):
            raise ValueError(f"self-report interval {self.interval!r} is not 0.1..3600 s")
        if self.expire is not None and not (math.isfinite(self.expire) and
                                            self.expire >= 2 * self.interval):
            raise ValueError(f"self-report expire {self.expire!r} must be at least two intervals")

    @property
    def ttl(self) -> int:
        return math.ceil(self.expire if self.expire is not None else max(3 * self.interval, 15))


def _takes_interval(fn: Callable[..., Any]) -> bool:
    try:
        inspect.signature(fn).bind(0.0)
    except TypeError:  # takes no argument
        return False
    except ValueError:  # no signature to read (a builtin): called without one
        return False
    return True


async def engine_figures(figures: Figures, interval: float,
                         timeout: float) -> dict[str, Any]:
    """What `figures` supplies over the last `interval` seconds, checked: ValueError
    naming the field when it is not one of ENGINE_FIGURES with a finite number (and
    `operations` a mapping of operation to one); TimeoutError when an async one takes
    longer than `timeout`; whatever it raised."""
    result = figures(interval) if _takes_interval(figures) else figures()
    if inspect.isawaitable(result):
        result = await asyncio.wait_for(result, timeout)
    if not isinstance(result, Mapping):
        raise ValueError(f"self-report figures returned {type(result).__name__}, not a mapping "
                         f"of {', '.join(ENGINE_FIGURES)}")
    out: dict[str, Any] = {}
    for name, value in result.items():
        if name not in ENGINE_FIGURES:
            raise ValueError(f"self-report figure {str(name)[:40]!r} is not any of "
                             f"{', '.join(ENGINE_FIGURES)}")
        if name == "operations":
            if not isinstance(value, Mapping) or len(value) > MAX_REPORT_OPERATIONS:
                raise ValueError("self-report figure 'operations' is not a mapping of at most "
                                 f"{MAX_REPORT_OPERATIONS} operations to operations/s")
            bad = [op for op in value if not NAME_RE.match(str(op))]
            if bad:
                raise ValueError(f"self-report figure operations[{str(bad[0])[:40]!r}]: an "
                                 "operation is named [a-z][a-z0-9_]*, at most 63")
            out[name] = {str(op): _number(f"operations[{str(op)[:40]!r}]", v)
                         for op, v in value.items()}
        else:
            out[name] = _number(str(name), value)
    return out


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"self-report figure {name} is {str(value)[:40]!r}, not a finite number")
    return float(value)


def rss_bytes() -> int:
    """This process's resident memory (Linux; 0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


@dataclass
class Snapshot:
    """Cumulative counts at one moment; a report is the difference of two."""

    at: float
    cpu: float
    ok: int
    errors: int
    ok_service_us: int
    ok_by_op: dict[str, int]

    @classmethod
    def take(cls, stats: Any) -> Snapshot:
        return cls(time.monotonic(), time.process_time(), stats.replies - stats.errors,
                   stats.errors, stats.ok_service_us, dict(stats.ok_by_op))


def build_report(before: Snapshot, after: Snapshot, supplied: Mapping[str, Any],
                 extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The report between two snapshots. Throughput, latency and operations count
    successful replies only (an engine failing every request does no useful work);
    error_rate is failed / all."""
    dt = after.at - before.at
    ok, errors = after.ok - before.ok, after.errors - before.errors
    report: dict[str, Any] = {
        "throughput": ok / dt if dt > 0 else 0.0,  # operations/s
        "latency": (after.ok_service_us - before.ok_service_us) / ok / 1000 if ok else 0.0,  # ms
        "cpu_usage": 100.0 * (after.cpu - before.cpu) / dt if dt > 0 else 0.0,  # % of one core
        "memory_usage": rss_bytes() / 2**20,  # MiB
        "error_rate": errors / (ok + errors) if ok + errors else 0.0,
        "operations": {op: (n - before.ok_by_op.get(op, 0)) / dt if dt > 0 else 0.0
                       for op, n in after.ok_by_op.items()},
        "source": "probes",
    }
    unknown = set(supplied) - set(ENGINE_FIGURES)
    if unknown:
        raise ValueError(f"self-report figures {sorted(unknown)} are not any of {ENGINE_FIGURES}")
    if supplied:
        report.update(supplied)
        report["source"] = "engine"
    # Which fields the engine's figures supplied; the others are the responder's.
    report[ENGINE_FIELDS] = sorted(supplied)
    report.update(extra or {})
    report["timestamp"] = time.time()
    return report


def writer_of(text: str) -> str | None:
    """The consumer name of the responder that wrote a report; None when a responder
    did not write it (or it is not a report)."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    writer = data.get(WRITER_FIELD) if isinstance(data, dict) else None
    return writer if isinstance(writer, str) else None


def age_of(text: str) -> float | None:
    """Seconds since a report's `timestamp`; None when it has none."""
    try:
        stamp = json.loads(text).get("timestamp")
    except (ValueError, AttributeError):
        return None
    if isinstance(stamp, bool) or not isinstance(stamp, (int, float)) or not math.isfinite(stamp):
        return None
    return time.time() - stamp


def encode(report: Mapping[str, Any]) -> str:
    """JSON with finite numbers only (the exporter counts anything else as an error)."""
    return json.dumps(report, separators=(",", ":"), allow_nan=False)
