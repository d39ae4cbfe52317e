"""The metrics every exporter has, defined in one place (docs/metrics.md); each probe
kind defines its own group in its module (websocket.py, self_report.py, backlog.py,
http.py) with the helpers below."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from enum import Enum
from typing import Any

from prometheus_client import (CollectorRegistry, Counter, Gauge, Histogram, Info,
                               disable_created_metrics)

from . import __version__

NAMESPACE = "nautilus_probe"

# 0.25 ms .. ~10 s, four buckets per doubling (ratio 2**0.25, about 19 %), so a
# median read by histogram_quantile is within a few percent; plus every latency
# threshold in thresholds.yml (5, 50, 100, 200 ms) as an exact boundary, which
# tests/test_metrics.py checks against that file.
LATENCY_THRESHOLDS_S = (0.005, 0.05, 0.1, 0.2)


def _doublings(start: float, stop: float, per_doubling: int) -> set[float]:
    """start * 2**(i/per_doubling) up to stop, four significant digits."""
    out, i = set(), 0
    while (edge := start * 2 ** (i / per_doubling)) <= stop * 1.0001:
        out.add(float(f"{edge:.4g}"))
        i += 1
    return out


LATENCY_BUCKETS = tuple(sorted(_doublings(0.00025, 10.0, 4)
                               | {*LATENCY_THRESHOLDS_S, 10.0}))
# An engine's own processing time, from 50 us (engines can be fast), as fine as the
# round trip's (four buckets per doubling, 19 %): a 200 ms service time must read
# ~200 ms at p99, as its round trip does.
SERVICE_BUCKETS = tuple(sorted(_doublings(0.00005, 10.0, 4)
                               | {*LATENCY_THRESHOLDS_S, 10.0}))
# Opening a WebSocket connection (TCP, TLS, handshake): 0.25 ms .. ~8 s, doubling.
CONNECT_BUCKETS = tuple(float(f"{0.00025 * 2 ** i:.4g}") for i in range(16))
# Prober self-measurement: 0.1 ms .. ~3 s, doubling.
LAG_BUCKETS = tuple(float(f"{1e-4 * 2 ** i:.4g}") for i in range(16))



class Failure(str, Enum):
    """Why a MessageBus probe failed: the `reason` label of failures_total."""

    TIMEOUT = "timeout"
    ERROR = "error"  # the engine replied status "error"
    INVALID = "invalid"  # the reply broke the protocol
    SEND_FAILED = "send_failed"  # the request could not be written


# The exporter's own supervised loops (supervise.py); each probe kind declares its
# own (ProbeKind.loops). Together: the `loop` label of loop_restarts_total.
LOOPS = ("event_loop_lag", "messagebus_master")


class BusOperation(str, Enum):
    """The MessageBus operation that failed: the `operation` label of messagebus_errors_total."""

    SEND = "send"
    RECEIVE = "receive"
    SELF_REPORT = "self_report"
    BACKLOG = "backlog"


ENGINE = ("engine",)
ENGINE_OP = ("engine", "op")


@dataclass(slots=True)
class ProbeSeries:
    """The children of one engine × op, bound once for the hot path."""

    requests: Any
    latency: Any
    service: Any
    lost: Any
    late: Any
    duplicate: Any
    out_of_order: Any
    in_flight: Any
    skipped: Any
    failures: dict[Failure, Any]


@dataclass
class Metrics:
    requests: Counter
    failures: Counter
    latency: Histogram
    service: Histogram
    lost: Counter
    late: Counter
    duplicate: Counter
    out_of_order: Counter
    in_flight: Gauge
    skipped: Counter
    trading_requests: Counter
    trading_failures: Counter
    trading_latency: Histogram
    schedule_lag: Histogram
    loop_lag: Histogram
    malformed: Counter
    unmatched: Counter
    bus_up: Gauge
    bus_errors: Counter
    master_info: Gauge
    master_changes: Counter
    reload_ok: Gauge
    web_config_ok: Gauge
    reload_time: Gauge
    loop_restarts: Counter
    bus_error: dict[BusOperation, Any]  # bound children of bus_errors
    trading_failure: dict[Failure, Any]  # bound by the trading-request probe, when there is one

    def init_probe(self, engine: str, op: str) -> ProbeSeries:
        """Create every series of an engine × op (a never-seen failure reads 0)."""
        return ProbeSeries(
            requests=self.requests.labels(engine, op),
            latency=self.latency.labels(engine, op),
            service=self.service.labels(engine, op),
            lost=self.lost.labels(engine, op),
            late=self.late.labels(engine, op),
            duplicate=self.duplicate.labels(engine, op),
            out_of_order=self.out_of_order.labels(engine, op),
            in_flight=self.in_flight.labels(engine, op),
            skipped=self.skipped.labels(engine, op),
            failures={reason: self.failures.labels(engine, op, reason.value)
                      for reason in Failure})


def counter(reg: CollectorRegistry, name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
    return Counter(name, doc, labels, namespace=NAMESPACE, registry=reg)


def gauge(reg: CollectorRegistry, name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
    return Gauge(name, doc, labels, namespace=NAMESPACE, registry=reg)


def histogram(reg: CollectorRegistry, name: str, doc: str, labels: tuple[str, ...],
              buckets: tuple[float, ...]) -> Histogram:
    return Histogram(name, doc, labels, namespace=NAMESPACE, buckets=buckets, registry=reg)


def remove(family: Any, *labels: str) -> None:
    """Remove one child, if it exists (a series that was never created is already gone)."""
    try:
        family.remove(*labels)
    except KeyError:
        pass


def build(reg: CollectorRegistry) -> Metrics:
    """The metrics every exporter has; each probe kind adds its own group (ProbeKind.metrics)."""
    # *_created series double the exposition and nothing here reads them.
    disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus-client leaves it unannotated

    info = Info("build", "Exporter build information.", namespace=NAMESPACE, registry=reg)
    info.info({"version": __version__, "python_version": platform.python_version()})
    failure_labels = (*ENGINE_OP, "reason")
    m = Metrics(
        requests=counter(reg, "requests", "MessageBus probes sent (or attempted).", ENGINE_OP),
        failures=counter(reg, "failures", "Probes that failed, by reason: timeout, error (the "
                         "engine replied status error), invalid (reply broke the protocol), "
                         "send_failed (the request could not be written).", failure_labels),
        latency=histogram(reg, "latency_seconds", "Round trip of successful probes, from the "
                          "scheduled send time to the reply.", ENGINE_OP, LATENCY_BUCKETS),
        service=histogram(reg, "service_seconds", "Processing time the engine reported in its "
                          "reply (service_us).", ENGINE_OP, SERVICE_BUCKETS),
        lost=counter(reg, "replies_lost", "Probes never answered, even late.", ENGINE_OP),
        late=counter(reg, "replies_late", "Replies that arrived after their probe timed out.",
                     ENGINE_OP),
        duplicate=counter(reg, "replies_duplicate", "Extra replies to an already answered probe.",
                          ENGINE_OP),
        out_of_order=counter(reg, "replies_out_of_order", "Requests the engine began after a later "
                             "request of the same engine and op (not first come, first "
                             "served); overtaking by faster replies is not counted.", ENGINE_OP),
        in_flight=gauge(reg, "in_flight", "Probes sent and not yet answered or timed out.",
                        ENGINE_OP),
        skipped=counter(reg, "probes_skipped", "Probes not sent because the prober could not "
                        "send them on time or hit max_in_flight.", ENGINE_OP),
        trading_requests=counter(reg, "trading_requests", "Composite trading requests sent."),
        trading_failures=counter(reg, "trading_request_failures", "Composite trading requests "
                                 "that failed, by the reason of the first failing leg.",
                                 ("reason",)),
        trading_latency=histogram(reg, "trading_request_latency_seconds", "Latency of successful "
                                  "trading requests: the slowest leg, from the scheduled "
                                  "send time.", (), LATENCY_BUCKETS),
        schedule_lag=histogram(reg, "schedule_lag_seconds", "How late probes were sent relative "
                               "to their scheduled time.", (), LAG_BUCKETS),
        loop_lag=histogram(reg, "event_loop_lag_seconds", "How late the exporter's event loop "
                           "ran a timer that was due.", (), LAG_BUCKETS),
        malformed=counter(reg, "replies_malformed", "Replies that could not be attributed to a "
                          "probe because they broke the protocol."),
        unmatched=counter(reg, "replies_unmatched", "Well-formed replies with an unknown "
                          "correlation id (too old, or not ours)."),
        bus_up=gauge(reg, "messagebus_up", "1 when the last MessageBus operation succeeded."),
        bus_errors=counter(reg, "messagebus_errors", "Failed MessageBus operations.",
                           ("operation",)),
        master_info=gauge(reg, "messagebus_master_info", "1 for each Redis master the exporter "
                          "writes to now (the sentinels' master, a cluster's primaries).",
                          ("address",)),
        master_changes=counter(reg, "messagebus_master_changes", "Times a MessageBus master "
                               "was replaced by another (a Sentinel or Cluster failover)."),
        reload_ok=gauge(reg, "config_last_reload_successful", "1 when the last configuration "
                        "reload succeeded."),
        reload_time=gauge(reg, "config_last_reload_success_timestamp_seconds", "Time of the last "
                          "successful configuration load."),
        web_config_ok=gauge(reg, "web_config_last_reload_successful", "1 when the web config file "
                            "(--web.config.file) last loaded; 0: a change was refused and the "
                            "last good TLS and auth policy still serves."),
        loop_restarts=counter(reg, "loop_restarts", "Probe loops restarted after an unexpected "
                              "failure, by loop.", ("loop",)),
        bus_error={}, trading_failure={},
    )
    # Bound once; a never-failed operation or reason reads 0.
    m.bus_error = {op: m.bus_errors.labels(op.value) for op in BusOperation}
    m.web_config_ok.set(1)  # no web config file: nothing was refused
    return m
