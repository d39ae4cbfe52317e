"""A consistent snapshot of the exporter's registry that costs its event loop little,
rendered on the endpoints' thread at a fraction of prometheus-client's cost.

Every reply is timed when the probes' loop reads it, so whatever holds that loop
delays the replies arriving meanwhile: collecting the whole registry there moves
the latency tail by as long as it takes (docs/performance.md, "Scrapes beside
probing"). Collecting on the endpoints' thread instead would read requests,
answers and in-flight probes from different moments. So the loop only reads each
metric child's values (`freeze`), and everything else happens on the endpoints'
thread.

There, building and formatting the samples through prometheus-client is the most
Python of a render, and it holds the interpreter the probes' thread needs. A
sample line differs from one render to the next only in its value, so `Exposition`
learns each child's lines once, from prometheus-client rendering that child alone,
and afterwards writes the same lines with the new values (`floatToGoString`, the
library's own number format). It keeps what it learnt only when the library's lines
end with exactly the values given, in that order; otherwise, and for what it does
not know (a custom collector, a gauge read through a function), the library renders
the whole family. `tests/test_snapshot.py` checks the result is byte for byte the
library's, in both exposition formats, and that the fast path is taken with the
prometheus-client installed.

The copy reads prometheus-client's internals (a registry's collectors, a metric's
children, a child's `_value`, `_buckets` and `_sum`, and how a gauge read through
a function is marked). pyproject.toml bounds the release to those the tests passed
on, and at import `FAST_PATH` proves them once more on a small registry of every
kind: when a release reads differently, every metric is collected in full instead
(slower, never wrong) and a warning says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from itertools import accumulate
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.utils import floatToGoString

log = logging.getLogger(__name__)

Encoder = Callable[[Any], bytes]
_number: Callable[[float], str] = floatToGoString  # the library's, typed: it has no annotations


class _Frozen:
    """A value as it was (prometheus-client's value objects answer get())."""

    __slots__ = ("value",)

    def __init__(self, value: float) -> None:
        self.value = value

    def get(self) -> float:
        return self.value

    def get_exemplar(self) -> None:
        return None  # the exporter records no exemplars


class _Collected:
    """Families already collected (what the fast path does not know)."""

    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> list[Any]:
        return self.families


def _plain(child: Any) -> bool:
    """A child whose values `_raw` can read (a gauge with set_function is not)."""
    kind = type(child)
    return kind is Histogram or kind is Counter or (
        kind is Gauge and "_child_samples" not in child.__dict__)


def _raw(child: Any) -> tuple[float, ...]:
    """A plain child's values: a histogram's bucket counts then its sum, or the value."""
    if type(child) is Histogram:
        return (*[b.get() for b in child._buckets], child._sum.get())
    return (child._value.get(),)


def _sample_values(kind: type, raw: tuple[float, ...]) -> list[float]:
    """The values of the child's samples, in prometheus-client's order."""
    if kind is Histogram:
        buckets = list(accumulate(raw[:-1]))
        return [*buckets, buckets[-1], raw[-1]]  # le=..., _count, _sum
    return list(raw)


def _clone(metric: Any) -> Any:
    clone = object.__new__(type(metric))  # copy.copy's result, at a third of its cost
    clone.__dict__.update(metric.__dict__)
    return clone


def _frozen_child(child: Any, raw: tuple[float, ...]) -> Any:
    clone = _clone(child)
    if type(child) is Histogram:
        clone._buckets = [_Frozen(v) for v in raw[:-1]]
        clone._sum = _Frozen(raw[-1])
    else:
        clone._value = _Frozen(raw[0])
    return clone


# A child at the moment of the snapshot: its label values, itself, its raw values.
Child = tuple[tuple[str, ...], Any, tuple[float, ...]]


class _Family:
    """A metric and its children at the moment of the snapshot (an unlabelled metric
    is its own child)."""

    __slots__ = ("metric", "children")

    def __init__(self, metric: Any, children: list[Child]) -> None:
        self.metric, self.children = metric, children

    def frozen(self, children: list[Child] | None = None) -> Any:
        """A collector that renders these values (or only `children`') through the library."""
        children = self.children if children is None else children
        if not self.metric._is_parent():
            return _frozen_child(self.metric, children[0][2])
        clone = _clone(self.metric)
        clone._metrics = {labels: _frozen_child(child, raw) for labels, child, raw in children}
        return clone

    def collect(self) -> list[Any]:
        families: list[Any] = self.frozen().collect()
        return families


def _read(metric: MetricWrapperBase) -> _Family | _Collected:
    children: list[tuple[Any, Any]]
    if not metric._is_parent():  # type: ignore[no-untyped-call]  # prometheus-client leaves it unannotated
        children = [((), metric)]
    else:
        with metric._lock:
            children = list(metric._metrics.items())
    if not all(_plain(child) for _, child in children):
        return _Collected(list(metric.collect()))  # read now, in full
    return _Family(metric, [(labels, child, _raw(child)) for labels, child in children])


def _copy(registry: CollectorRegistry) -> list[_Family | _Collected]:
    with registry._lock:
        collectors = list(registry._collector_to_names)
    return [_read(c) if isinstance(c, MetricWrapperBase) else _Collected(list(c.collect()))
            for c in collectors]


def _fast_path_holds() -> bool:
    """Whether the copy reads this prometheus-client release right: a registry of every
    kind of child it copies, and a gauge read through a function, copied then changed,
    must render as it was."""
    reg = CollectorRegistry()
    counter = Counter("c", "A labelled counter.", ["l"], registry=reg)
    gauge = Gauge("g", "A gauge.", registry=reg)
    read = Gauge("f", "A gauge read through a function.", registry=reg)
    hist = Histogram("h", "A histogram.", ["l"], buckets=(1.0,), registry=reg)
    value = [5.0]
    read.set_function(lambda: value[0])
    counter.labels("a").inc(2)
    gauge.set(3)
    for x in (0.5, 2.0):
        hist.labels("a").observe(x)
    try:
        was = generate_latest(reg)
        copy = _copy(reg)
        counter.labels("a").inc()
        gauge.set(4)
        hist.labels("a").observe(0.25)
        value[0] = 6.0
        return ([type(c) for c in copy] == [_Family, _Family, _Collected, _Family]
                and generate_latest(Snapshot(copy)) == was)
    except Exception:  # an internal gone or renamed
        return False


def freeze(registry: CollectorRegistry) -> list[_Family | _Collected]:
    """On the loop that updates the metrics: every value of this moment, read and
    kept, wherever and whenever it is rendered."""
    if FAST_PATH:
        return _copy(registry)
    return [_Collected(list(registry.collect()))]  # the public API only


class Snapshot:
    """Frozen collectors; prometheus-client's encoders render it like a registry, and
    `Exposition.render` renders it faster."""

    def __init__(self, collectors: list[_Family | _Collected]) -> None:
        self.collectors = collectors

    def collect(self) -> list[Any]:
        return [family for c in self.collectors for family in c.collect()]


class _Lines:
    """What one family renders to, apart from values: its header, and each child's
    sample lines up to their values."""

    __slots__ = ("header", "children")

    def __init__(self, header: str) -> None:
        self.header = header
        self.children: dict[tuple[str, ...], list[str]] = {}


class Exposition:
    """One exposition format (one prometheus-client encoder). Not thread-safe: one
    thread renders with it, as the endpoints' thread does."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self.trailer = encoder(_Collected([])).decode()  # "# EOF\n" in OpenMetrics
        self._lines: dict[Any, _Lines] = {}  # live metric -> its lines

    def _text(self, collector: Any) -> str:
        """The library's rendering of one collector, without the trailer."""
        text = self.encoder(collector).decode()
        return text[:len(text) - len(self.trailer)] if text.endswith(self.trailer) else text

    def render(self, source: Any) -> bytes:
        """The exposition of a Snapshot, or of anything else the encoder renders."""
        if not isinstance(source, Snapshot):
            return self.encoder(source)
        out: list[str] = []
        known: dict[Any, _Lines] = {}  # what the next render keeps: families still there
        for c in source.collectors:
            if isinstance(c, _Collected) or not self._write(c, known, out):
                out.append(self._text(c))
        out.append(self.trailer)
        self._lines = known
        return "".join(out).encode()

    def _write(self, family: _Family, known: dict[Any, _Lines], out: list[str]) -> bool:
        """Append the family's lines from what was learnt; False (and nothing appended)
        when a child's lines cannot be learnt, and the library must render it all."""
        lines = self._lines.get(family.metric)
        children: dict[tuple[str, ...], list[str]] = {}
        written: list[str] = []
        for labels, child, raw in family.children:
            values = [_number(v) for v in _sample_values(type(child), raw)]
            prefixes = lines.children.get(labels) if lines is not None else None
            if prefixes is None:
                learnt = self._learn(family, labels, child, raw, values)
                if learnt is None:
                    return False
                header, prefixes = learnt
                if lines is None:
                    lines = _Lines(header)
                elif header != lines.header:
                    return False
            children[labels] = prefixes
            written.extend(f"{prefix}{value}\n" for prefix, value in zip(prefixes, values, strict=True))
        if lines is None:  # no children yet: only the header, which the library writes
            return False
        lines.children = children
        known[family.metric] = lines
        out.append(lines.header)
        out.extend(written)
        return True

    def _learn(self, family: _Family, labels: tuple[str, ...], child: Any,
               raw: tuple[float, ...], values: list[str]) -> tuple[str, list[str]] | None:
        """The header and line prefixes of one child, from the library rendering it
        alone; None unless its sample lines end with `values`, one each, in order."""
        text = self._text(family.frozen([(labels, child, raw)]))
        # Lines end at "\n" only (splitlines would also split a label value at U+2028).
        lines = [f"{line}\n" for line in text.split("\n")[:-1]]
        header = [line for line in lines if line.startswith("#")]
        samples = lines[len(header):]
        if len(samples) != len(values) or any(line.startswith("#") for line in samples):
            return None
        prefixes = []
        for line, value in zip(samples, values, strict=True):
            end = f" {value}\n"
            if not line.endswith(end):
                return None
            prefixes.append(line[:len(line) - len(value) - 1])
        return "".join(header), prefixes


FAST_PATH = _fast_path_holds()
if not FAST_PATH:
    log.warning("this prometheus-client release stores metric values differently from those "
                "the snapshot was proven on: every scrape collects the registry in full on "
                "the probes' loop (slower, still exact)")
