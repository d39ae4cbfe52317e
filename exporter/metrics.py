"""Every metric the exporter exposes, defined in one place (see docs/metrics.md)."""

from __future__ import annotations

import platform
from dataclasses import dataclass
from enum import Enum
from typing import Any
from collections.abc import Iterable

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


# Every supervised loop (supervise.py): the `loop` label of loop_restarts_total.
LOOPS = ("messagebus_send", "messagebus_receive", "trading_request", "self_report", "backlog",
         "websocket_connect", "websocket_heartbeat", "event_loop_lag")
# The `operation` label of messagebus_errors_total.
BUS_OPERATIONS = ("send", "receive", "self_report", "backlog")
WS_CONNECT_FAILURES = ("refused", "timeout", "handshake", "tls", "error")
WS_DISCONNECTS = ("dropped", "closed", "unauthorized", "protocol_error")
ENGINE_OP = ("engine", "op")
EP = ("endpoint",)


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


@dataclass(slots=True)
class EndpointSeries:
    """The children of one WebSocket endpoint."""

    open: Any
    desired: Any
    connect_duration: Any
    heartbeat_latency: Any
    sent: Any
    received: Any
    error_replies: Any
    timeouts: Any
    late: Any
    invalid: Any
    broadcast_frames: Any
    broadcast_gaps: Any


@dataclass(slots=True)
class ReportSeries:
    """The gauges of one engine's self-report."""

    up: Any
    age: Any
    throughput: Any
    latency: Any
    cpu: Any
    memory: Any
    error_ratio: Any


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
    reload_ok: Gauge
    web_config_ok: Gauge
    reload_time: Gauge
    report_up: Gauge
    report_age: Gauge
    report_errors: Counter
    reported_throughput: Gauge
    reported_latency: Gauge
    reported_cpu: Gauge
    reported_memory: Gauge
    reported_error_ratio: Gauge
    reported_op_throughput: Gauge
    backlog_pending: Gauge
    backlog_lag: Gauge
    backlog_consumers: Gauge
    backlog_active: Gauge
    ws_open: Gauge
    ws_desired: Gauge
    ws_connect_duration: Histogram
    ws_connect_failures: Counter
    ws_disconnects: Counter
    ws_heartbeat_latency: Histogram
    ws_sent: Counter
    ws_received: Counter
    ws_error_replies: Counter
    ws_timeouts: Counter
    ws_late: Counter
    ws_invalid: Counter
    ws_broadcast_frames: Counter
    ws_broadcast_gaps: Counter
    ws_skipped: Counter
    loop_restarts: Counter

    def init_endpoint(self, endpoint: str) -> EndpointSeries:
        """Create every series of a WebSocket endpoint (a never-seen failure reads 0)."""
        for reason in WS_CONNECT_FAILURES:
            self.ws_connect_failures.labels(endpoint, reason)
        for reason in WS_DISCONNECTS:
            self.ws_disconnects.labels(endpoint, reason)
        return EndpointSeries(
            open=self.ws_open.labels(endpoint),
            desired=self.ws_desired.labels(endpoint),
            connect_duration=self.ws_connect_duration.labels(endpoint),
            heartbeat_latency=self.ws_heartbeat_latency.labels(endpoint),
            sent=self.ws_sent.labels(endpoint),
            received=self.ws_received.labels(endpoint),
            error_replies=self.ws_error_replies.labels(endpoint),
            timeouts=self.ws_timeouts.labels(endpoint),
            late=self.ws_late.labels(endpoint),
            invalid=self.ws_invalid.labels(endpoint),
            broadcast_frames=self.ws_broadcast_frames.labels(endpoint),
            broadcast_gaps=self.ws_broadcast_gaps.labels(endpoint))

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

    def remove_report(self, engine: str, ops: Iterable[str] = ()) -> None:
        """Every self-report series of an engine no longer read (and of `ops`)."""
        for family in (self.report_up, self.report_age, self.report_errors, self.reported_throughput,
                       self.reported_latency, self.reported_cpu, self.reported_memory,
                       self.reported_error_ratio):
            try:
                family.remove(engine)
            except KeyError:
                pass
        for op in ops:
            try:
                self.reported_op_throughput.remove(engine, op)
            except KeyError:
                pass

    def init_report(self, engine: str) -> ReportSeries:
        """The self-report gauges of one engine (created on first read)."""
        return ReportSeries(
            up=self.report_up.labels(engine), age=self.report_age.labels(engine),
            throughput=self.reported_throughput.labels(engine),
            latency=self.reported_latency.labels(engine),
            cpu=self.reported_cpu.labels(engine),
            memory=self.reported_memory.labels(engine),
            error_ratio=self.reported_error_ratio.labels(engine))


def build(reg: CollectorRegistry) -> Metrics:
    # *_created series double the exposition and nothing here reads them.
    disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus-client leaves it unannotated
    def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        return Counter(name, doc, labels, namespace=NAMESPACE, registry=reg)

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, doc, labels, namespace=NAMESPACE, registry=reg)

    def histogram(name: str, doc: str, labels: tuple[str, ...], buckets: tuple[float, ...]
                  ) -> Histogram:
        return Histogram(name, doc, labels, namespace=NAMESPACE, buckets=buckets, registry=reg)

    info = Info("build", "Exporter build information.", namespace=NAMESPACE, registry=reg)
    info.info({"version": __version__, "python_version": platform.python_version()})
    failure_labels = (*ENGINE_OP, "reason")
    m = Metrics(
        requests=counter("requests", "MessageBus probes sent (or attempted).", ENGINE_OP),
        failures=counter("failures", "Probes that failed, by reason: timeout, error (the "
                         "engine replied status error), invalid (reply broke the protocol), "
                         "send_failed (the request could not be written).", failure_labels),
        latency=histogram("latency_seconds", "Round trip of successful probes, from the "
                          "scheduled send time to the reply.", ENGINE_OP, LATENCY_BUCKETS),
        service=histogram("service_seconds", "Processing time the engine reported in its "
                          "reply (service_us).", ENGINE_OP, SERVICE_BUCKETS),
        lost=counter("replies_lost", "Probes never answered, even late.", ENGINE_OP),
        late=counter("replies_late", "Replies that arrived after their probe timed out.",
                     ENGINE_OP),
        duplicate=counter("replies_duplicate", "Extra replies to an already answered probe.",
                          ENGINE_OP),
        out_of_order=counter("replies_out_of_order", "Requests the engine began after a later "
                             "request of the same engine and op (not first come, first "
                             "served); overtaking by faster replies is not counted.", ENGINE_OP),
        in_flight=gauge("in_flight", "Probes sent and not yet answered or timed out.",
                        ENGINE_OP),
        skipped=counter("probes_skipped", "Probes not sent because the prober could not "
                        "send them on time or hit max_in_flight.", ENGINE_OP),
        trading_requests=counter("trading_requests", "Composite trading requests sent."),
        trading_failures=counter("trading_request_failures", "Composite trading requests "
                                 "that failed, by the reason of the first failing leg.",
                                 ("reason",)),
        trading_latency=histogram("trading_request_latency_seconds", "Latency of successful "
                                  "trading requests: the slowest leg, from the scheduled "
                                  "send time.", (), LATENCY_BUCKETS),
        schedule_lag=histogram("schedule_lag_seconds", "How late probes were sent relative "
                               "to their scheduled time.", (), LAG_BUCKETS),
        loop_lag=histogram("event_loop_lag_seconds", "How late the exporter's event loop "
                           "ran a timer that was due.", (), LAG_BUCKETS),
        malformed=counter("replies_malformed", "Replies that could not be attributed to a "
                          "probe because they broke the protocol."),
        unmatched=counter("replies_unmatched", "Well-formed replies with an unknown "
                          "correlation id (too old, or not ours)."),
        bus_up=gauge("messagebus_up", "1 when the last MessageBus operation succeeded."),
        bus_errors=counter("messagebus_errors", "Failed MessageBus operations.",
                           ("operation",)),
        reload_ok=gauge("config_last_reload_successful", "1 when the last configuration "
                        "reload succeeded."),
        reload_time=gauge("config_last_reload_success_timestamp_seconds", "Time of the last "
                          "successful configuration load."),
        web_config_ok=gauge("web_config_last_reload_successful", "1 when the web config file "
                            "(--web.config.file) last loaded; 0: a change was refused and the "
                            "last good TLS and auth policy still serves."),
        report_up=gauge("engine_report_up", "1 when the engine's self-report (metrics:<engine> "
                        "in Redis) was present and valid at the last read.", ("engine",)),
        report_age=gauge("engine_report_age_seconds", "Age of the engine's self-report.",
                         ("engine",)),
        report_errors=counter("engine_report_errors", "Self-reports that could not be read "
                              "or parsed.", ("engine",)),
        reported_throughput=gauge("engine_reported_operations_per_second", "Throughput the "
                                  "engine reports for itself.", ("engine",)),
        reported_latency=gauge("engine_reported_latency_seconds", "Average latency the engine "
                               "reports for itself.", ("engine",)),
        reported_cpu=gauge("engine_reported_cpu_ratio", "CPU use the engine reports, as a "
                           "fraction of one core.", ("engine",)),
        reported_memory=gauge("engine_reported_memory_bytes", "Memory the engine reports.",
                              ("engine",)),
        reported_error_ratio=gauge("engine_reported_error_ratio", "Error ratio the engine "
                                   "reports (0..1).", ("engine",)),
        reported_op_throughput=gauge("engine_reported_operation_operations_per_second",
                                     "Per-operation throughput the engine reports for itself "
                                     "(optional `operations` field).", ENGINE_OP),
        backlog_pending=gauge("messagebus_pending_messages", "Requests handed to the engine's "
                              "responders and not yet acknowledged, over its request streams "
                              "(XINFO GROUPS pending).", ("engine",)),
        backlog_lag=gauge("messagebus_lag_messages", "Requests in the engine's request streams "
                          "not yet handed to a responder (XINFO GROUPS lag).", ("engine",)),
        backlog_consumers=gauge("messagebus_consumers", "Responders in the engine's consumer "
                                "groups (distinct names over its request streams).", ("engine",)),
        backlog_active=gauge("messagebus_consumers_active", "Responders of the engine that "
                             "took a request in the last 15 s (XINFO CONSUMERS idle); 0: "
                             "none is alive.", ("engine",)),
        ws_open=gauge("ws_connections_open", "WebSocket connections held open.", EP),
        ws_desired=gauge("ws_connections_desired", "WebSocket connections the configuration "
                         "asks the prober to hold open.", EP),
        ws_connect_duration=histogram("ws_connect_duration_seconds", "Time to open a "
                                      "WebSocket connection: TCP, TLS and handshake.", EP,
                                      CONNECT_BUCKETS),
        ws_connect_failures=counter("ws_connect_failures", "WebSocket connections that could "
                                    "not be opened, by reason: refused, timeout, handshake "
                                    "(HTTP status), tls, error.", (*EP, "reason")),
        ws_disconnects=counter("ws_disconnects", "Open WebSocket connections lost, by reason: "
                               "dropped (no close frame), closed (by the server), unauthorized "
                               "(close code 4001), protocol_error.", (*EP, "reason")),
        ws_heartbeat_latency=histogram("ws_heartbeat_latency_seconds", "Heartbeat round trip, "
                                       "from the scheduled send time to heartbeat_ack.", EP,
                                       LATENCY_BUCKETS),
        ws_sent=counter("ws_messages_sent", "Heartbeats sent.", EP),
        ws_received=counter("ws_messages_received", "Heartbeat acknowledgements received in "
                            "time.", EP),
        ws_error_replies=counter("ws_error_replies", "Error frames received (failures, never "
                                 "counted as replies).", EP),
        ws_timeouts=counter("ws_timeouts", "Heartbeats not acknowledged in time.", EP),
        ws_late=counter("ws_replies_late", "Acknowledgements that arrived after their "
                        "heartbeat timed out.", EP),
        ws_invalid=counter("ws_invalid_frames", "Frames that were not protocol JSON.", EP),
        ws_broadcast_frames=counter("ws_broadcast_frames", "Broadcast frames received by "
                                    "subscribed connections.", EP),
        ws_broadcast_gaps=counter("ws_broadcast_gaps", "Broadcast sequence numbers missed by "
                                  "subscribed connections.", EP),
        ws_skipped=counter("ws_heartbeats_skipped", "Heartbeats due while no connection was "
                           "open."),
        loop_restarts=counter("loop_restarts", "Probe loops restarted after an unexpected "
                              "failure, by loop.", ("loop",)),
    )
    for operation in BUS_OPERATIONS:  # a never-failed operation reads 0
        m.bus_errors.labels(operation)
    m.web_config_ok.set(1)  # no web config file: nothing was refused
    return m
