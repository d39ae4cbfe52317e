"""The load tests' results as types: what `loadtest` writes, what `review` computes
from Prometheus, and what `validate` judges.

The JSON keys are the migration plan's (docs/benchmarking.md): latencies in
milliseconds, throughput in trading requests/s for the monolith and the composite,
operations/s per engine. `decode` reads a file's JSON into these types and names
the key whose value has the wrong type; `encode` writes them back. Keys a reader
does not know are ignored, so an older reader takes a newer file.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar


class UnusableResults(Exception):
    """A results file that cannot be judged; the message names it and the key."""


@dataclass(frozen=True)
class Latency:
    """A latency distribution, in milliseconds."""

    avg_latency: float | None = None
    min_latency: float | None = None
    max_latency: float | None = None
    p50_latency: float | None = None
    p90_latency: float | None = None
    p95_latency: float | None = None
    p99_latency: float | None = None
    p999_latency: float | None = None
    sample_count: int = 0


@dataclass(frozen=True)
class LatencyBenchmark(Latency):
    """The containerized run's open-loop latency phase, timed from each request's
    scheduled send time."""

    errors: int = 0
    test_duration: float | None = None  # seconds; None in results written before it was kept


@dataclass(frozen=True)
class Contamination:
    """Requests other clients sent the measured service (the monolith, or the engines)
    during a run: an exporter probing the same prefix, another load test."""

    checked: bool = False  # False: the transport keeps no count of requests added
    foreign_requests: int = 0  # requests other clients sent during the run
    own_requests: int | None = None  # the run's own; None in results written before it was kept


@dataclass(frozen=True)
class Baseline:
    """The serial monolith (`loadtest baseline`), or its probes over a review window."""

    throughput: float | None = None  # trading requests/s; None: no closed-loop run (review)
    throughput_per_worker: float | None = None
    avg_latency: float | None = None  # ms
    p95_latency: float | None = None  # ms
    total_requests: int | None = None  # answered; None: a review counts probes instead
    errors: int = 0
    test_duration: float | None = None  # seconds
    workers: int | None = None
    latency: Latency = field(default_factory=Latency)
    source: str | None = None  # "prometheus" for a review
    window: list[float] | None = None  # a review's [start, end], unix seconds
    raw: dict[str, Any] | None = None  # the merged histograms the figures came from
    metadata: dict[str, Any] = field(default_factory=dict)  # provenance.py
    contamination: Contamination | None = None
    # MessageBus failovers during the run (failovers.py): {at_s, phase, from, to}
    failovers: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class ThroughputBenchmark:
    """The closed-loop maximum: trading requests/s, and the engine operations/s they make."""

    max_throughput: float | None = None  # trading requests/s; None: a review has no capacity run
    max_ops_per_second: float | None = None  # one operation per leg
    legs: int = 4
    total_requests: int = 0
    test_duration: float | None = None
    concurrent_workers: int = 0
    errors: int = 0


@dataclass(frozen=True)
class EngineFigures:
    """One engine alone, closed loop."""

    throughput: float | None = None  # operations/s
    latency: float | None = None  # average, ms
    error_rate: float | None = None
    samples: int | None = None  # answered; None in results written before it was kept
    errors: int | None = None
    test_duration: float | None = None  # seconds


@dataclass(frozen=True)
class SustainedStep:
    rate: float  # offered, trading requests/s
    errors: int
    count: int  # answered
    p99_latency: float | None  # ms
    duration: float | None = None  # seconds the step offered its rate


@dataclass(frozen=True)
class Sustained:
    """Open-loop steps, doubling, until p99 or the error ratio misses its target."""

    max_rate: float = 0.0  # the highest step within both
    p99_target: float | None = None  # ms
    error_ratio_target: float = 0.0
    steps: list[SustainedStep] = field(default_factory=list)


@dataclass(frozen=True)
class BusPublish:
    message_throughput: float  # messages/s acknowledged by Redis
    total_messages: int
    test_duration: float
    failed_flushes: int


@dataclass(frozen=True)
class Containerized:
    """The nine engines (`loadtest containerized`), or their probes over a review window."""

    latency_benchmark: LatencyBenchmark = field(default_factory=LatencyBenchmark)
    throughput_benchmark: ThroughputBenchmark = field(default_factory=ThroughputBenchmark)
    scalability_benchmark: dict[str, EngineFigures] = field(default_factory=dict)
    # Operations beyond each engine's first (`--operations all`), "<engine>.<operation>".
    operation_benchmark: dict[str, EngineFigures] | None = None
    messagebus_benchmark: BusPublish | None = None
    sustained_benchmark: Sustained | None = None
    workers: int | None = None
    source: str | None = None
    window: list[float] | None = None
    raw: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # Other clients' requests to the engines during the run (None: not checked, as in a
    # share of a run or a review)
    contamination: Contamination | None = None
    failovers: list[dict[str, Any]] = field(default_factory=list)  # as Baseline's


@dataclass(frozen=True)
class ConnectionTest:
    total_connections: int = 0  # asked for
    successful_connections: int = 0
    success_rate: float | None = None
    avg_connect_time: float | None = None  # ms
    max_connect_time: float | None = None  # ms
    connect_failures: int = 0
    open_seconds: float | None = None  # until every connection was open


@dataclass(frozen=True)
class MessageThroughput:
    connections: int = 0
    duration: float | None = None
    messages_sent: int = 0  # heartbeats
    messages_received: int = 0  # acked
    error_replies: int = 0
    timeouts: int = 0
    success_rate: float | None = None
    messages_per_second: float | None = None
    latency: Latency = field(default_factory=Latency)


@dataclass(frozen=True)
class WebSocketRun:
    """`loadtest websocket`: connections held, heartbeats acked."""

    connection_test: ConnectionTest = field(default_factory=ConnectionTest)
    message_throughput: MessageThroughput = field(default_factory=MessageThroughput)
    workers: int | None = None
    raw: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


Result = Baseline | Containerized | WebSocketRun
T = TypeVar("T")


def encode(obj: Any) -> Any:
    """A result as JSON-ready data: the plan's keys; a figure or part that is absent
    (None where None is the default) is left out rather than written as null."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: encode(v) for f in dataclasses.fields(obj)
                if (v := getattr(obj, f.name)) is not None or f.default is not None}
    if isinstance(obj, dict):
        return {k: encode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [encode(v) for v in obj]
    return obj


def decode(cls: type[T], data: Any, path: str = "") -> T:
    """`data` (parsed JSON) as `cls`; UnusableResults names the first key whose value
    has the wrong type."""
    if not isinstance(data, dict):
        raise UnusableResults(f"{path or 'the result'}: must be an object, got {_kind(data)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]  # cls is a dataclass
        if f.name in data:
            values[f.name] = _value(hints[f.name], data[f.name], _join(path, f.name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise UnusableResults(f"{_join(path, f.name)}: missing")
    return cls(**values)


def _value(hint: Any, value: Any, path: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if type(None) in args and (value is None or value == {}):
            return None  # an empty object is an absent part, as older results wrote it
        [hint] = [a for a in args if a is not type(None)]
        return _value(hint, value, path)
    if dataclasses.is_dataclass(hint):
        return decode(hint, value, path)  # type: ignore[arg-type]  # hint is a dataclass
    if origin is dict:
        if not isinstance(value, dict):
            raise UnusableResults(f"{path}: must be an object, got {_kind(value)}")
        return {k: _value(args[1], v, _join(path, k)) for k, v in value.items()}
    if origin is list:
        if not isinstance(value, list):
            raise UnusableResults(f"{path}: must be a list, got {_kind(value)}")
        return [_value(args[0], v, f"{path}[{i}]") for i, v in enumerate(value)]
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is Any or (isinstance(value, hint) and not (hint is int and isinstance(value, bool))):
        return value
    raise UnusableResults(f"{path}: must be {_NAMES.get(hint, hint.__name__)}, got {_kind(value)}")


_NAMES = {float: "a number", int: "a whole number", str: "a string", bool: "true or false"}


def _kind(value: Any) -> str:
    return "null" if value is None else f"{type(value).__name__} {value!r}"[:80]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key

