"""MessageBus backlog gauges: consumer-group state read from a real redis-server."""

from __future__ import annotations

import json
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from exporter.metrics import build
from exporter.probes.backlog import (Backlog, BacklogProbe, BacklogSpec, active_consumers,
                                     build_metrics)
from exporter.supervise import Supervisor
from nautilus_wire import protocol
from nautilus_wire.redis_client import connect

from nautilus_testkit import wait_for
from nautilus_testkit.exposition import value

from .conftest import sync_client, write_config, write_engines

PREFIX = protocol.DEFAULT_PREFIX


def probe_of(client, reg: CollectorRegistry, spec: BacklogSpec) -> BacklogProbe:
    """A backlog probe with the exporter's metrics on `reg`, as the runtime builds one."""
    m = build(reg)
    return BacklogProbe(client, m, build_metrics(reg), spec, Supervisor(m))


def stream(engine: str, priority: str) -> str:
    return protocol.request_stream(PREFIX, engine, priority)


async def test_pending_lag_and_consumers_per_engine(redis_session, redis_url) -> None:
    r = sync_client(redis_session)
    # risk: a group; 10 requests, 4 handed to a responder and not acknowledged.
    r.xgroup_create(stream("risk", "normal"), protocol.RESPONDER_GROUP, id="0", mkstream=True)
    for i in range(10):
        r.xadd(stream("risk", "normal"), {"n": str(i)})
    r.xreadgroup(protocol.RESPONDER_GROUP, "engine-1", {stream("risk", "normal"): ">"}, count=4)
    # ... and 3 at high priority where no responder ever made the group: all waiting.
    for i in range(3):
        r.xadd(stream("risk", "high"), {"n": str(i)})
    r.set(stream("factor", "normal"), "not a stream")  # garbage where a stream should be
    reg = CollectorRegistry()
    client = connect(redis_url)
    probe = probe_of(client, reg, BacklogSpec(PREFIX, ("risk", "ml", "factor"), 1.0))
    try:
        await probe.poll()
        text = generate_latest(reg).decode()
        assert value(text, "nautilus_probe_messagebus_pending_messages", engine="risk") == 4
        assert value(text, "nautilus_probe_messagebus_lag_messages", engine="risk") == 6 + 3
        assert value(text, "nautilus_probe_messagebus_consumers", engine="risk") == 1
        # ml: never sent to, no streams: an empty backlog, no responder.
        assert value(text, "nautilus_probe_messagebus_pending_messages", engine="ml") == 0
        assert value(text, "nautilus_probe_messagebus_lag_messages", engine="ml") == 0
        assert value(text, "nautilus_probe_messagebus_consumers", engine="ml") == 0
        # factor: unknown (no series), counted, and the others still read.
        assert 'engine="factor"' not in text.split("messagebus_errors_total")[0]
        assert value(text, "nautilus_probe_messagebus_errors_total", operation="backlog") == 1
        # The responder acknowledges two: pending drops by exactly two.
        ids = [e[0] for e in r.xrange(stream("risk", "normal"), count=2)]
        r.xack(stream("risk", "normal"), protocol.RESPONDER_GROUP, *ids)
        await probe.poll()
        text = generate_latest(reg).decode()
        assert value(text, "nautilus_probe_messagebus_pending_messages", engine="risk") == 2
        # A reload that drops an engine replaces the probe; closing removes its series.
        assert not probe.apply(BacklogSpec(PREFIX, ("risk",), 1.0))
        await probe.close()
        assert "messagebus_pending_messages{" not in generate_latest(reg).decode()
    finally:
        await client.aclose()
        r.close()


async def test_redis_down_is_counted_and_recovered(redis_server) -> None:
    reg = CollectorRegistry()
    client = connect(redis_server.url)
    probe = probe_of(client, reg, BacklogSpec(PREFIX, ("risk",), 1.0))
    try:
        await probe.poll()
        assert value(generate_latest(reg).decode(), "nautilus_probe_messagebus_lag_messages",
                     engine="risk") == 0
        port = redis_server.port
        redis_server.kill()
        await probe.poll()
        text = generate_latest(reg).decode()
        assert value(text, "nautilus_probe_messagebus_errors_total", operation="backlog") == 1
        redis_server.start()
        assert redis_server.port == port
        sync_client(redis_server).xadd(stream("risk", "low"), {"n": "1"})
        await probe.poll()
        assert value(generate_latest(reg).decode(), "nautilus_probe_messagebus_lag_messages",
                     engine="risk") == 1
    finally:
        await client.aclose()


def test_a_stalled_engine_shows_a_growing_backlog(redis_session, redis_url, spawn, exporter,
                                                  tmp_path: Path) -> None:
    """The synthetic stall knob stops risk answering: its backlog grows on /metrics
    while it stalls and drains once it answers again."""
    spawn("engines", "--config.file", str(write_engines(
        tmp_path / "syn.yml", redis_url, {"risk": {"limit_check": {}}})))
    ex = exporter(write_config(tmp_path / "exp.yml", redis_url,
                               {"risk": {"limit_check": {"rate": 100, "timeout": "1s"}}}))

    def backlog() -> float:
        text = ex.metrics()
        return (value(text, "nautilus_probe_messagebus_pending_messages", engine="risk")
                + value(text, "nautilus_probe_messagebus_lag_messages", engine="risk"))

    wait_for(lambda: ex.value("nautilus_probe_messagebus_consumers", engine="risk") == 1, 10)
    # Healthy: answered as fast as sent (20 is 0.2 s of probes at 100/s; an engine just
    # started on a loaded machine may take a moment to get there).
    wait_for(lambda: backlog() < 20, 10)
    r = sync_client(redis_session)
    knobs = f"{PREFIX}:{{risk}}:knobs"
    # Stalled for all but 1 ms of every 5 s: each request waits up to 5 s.
    r.set(knobs, json.dumps({"*": {"stall": {"duration": "5s", "period": "5.001s"}}}))
    wait_for(lambda: backlog() >= 200, 15)
    r.delete(knobs)
    wait_for(lambda: backlog() < 20, 20)
    r.close()


async def test_active_responders_are_those_that_took_a_request_recently(
        redis_session, redis_url, monkeypatch) -> None:
    """A responder killed without leaving the group stays a consumer, but stops being
    active once it has taken nothing for the limit; one that reads again is active."""
    from exporter.probes import backlog as backlog_module

    # The probe counts a consumer active while XINFO CONSUMERS reads it idle for no
    # more than the limit. A consumer handed a request is polled milliseconds later, so
    # a limit of 1 s leaves a loaded machine a second's stall before that poll proves
    # nothing (each is timed, and made again if it took longer); a consumer meant to
    # be stale is waited for until Redis itself reads it idle past the limit.
    limit_s = 1.0
    monkeypatch.setattr(backlog_module, "ACTIVE_IDLE_S", limit_s)
    r = sync_client(redis_session)
    for prio in ("normal", "high"):
        r.xgroup_create(stream("risk", prio), protocol.RESPONDER_GROUP, id="0", mkstream=True)

    def hand(consumer: str, prio: str) -> None:
        """`consumer` is handed a new request (Redis 7.0 counts deliveries only)."""
        r.xadd(stream("risk", prio), {"n": "1"})
        assert r.xreadgroup(protocol.RESPONDER_GROUP, consumer, {stream("risk", prio): ">"},
                            count=1)

    def idle_past_limit(consumer: str, prio: str) -> bool:
        [idle] = [c["idle"] for c in r.xinfo_consumers(stream("risk", prio),
                                                       protocol.RESPONDER_GROUP)
                  if c["name"] == consumer]
        return idle > limit_s * 1000

    reg = CollectorRegistry()
    client = connect(redis_url)
    probe = probe_of(client, reg, BacklogSpec(PREFIX, ("risk",), 1.0))

    async def poll_after_handing(*consumers: tuple[str, str]) -> str:
        """The exposition of a poll that ended within the limit of handing each
        (consumer, priority) a request: each of them active for certain."""
        for _ in range(3):
            started = time.monotonic()
            for consumer, prio in consumers:
                hand(consumer, prio)
            await probe.poll()
            if time.monotonic() - started < limit_s:
                return generate_latest(reg).decode()
        raise AssertionError(f"three polls each took over {limit_s} s after a hand-out")

    try:
        text = await poll_after_handing(("killed", "normal"), ("alive", "high"))
        assert value(text, "nautilus_probe_messagebus_consumers_active", engine="risk") == 2
        # "killed" takes nothing more; "alive" is handed a request once it is not.
        wait_for(lambda: idle_past_limit("killed", "normal"), limit_s + 10, interval=0.05)
        text = await poll_after_handing(("alive", "high"))
        assert value(text, "nautilus_probe_messagebus_consumers", engine="risk") == 2
        assert value(text, "nautilus_probe_messagebus_consumers_active", engine="risk") == 1
        wait_for(lambda: idle_past_limit("alive", "high"), limit_s + 10, interval=0.05)
        await probe.poll()
        text = generate_latest(reg).decode()
        assert value(text, "nautilus_probe_messagebus_consumers", engine="risk") == 2
        assert value(text, "nautilus_probe_messagebus_consumers_active", engine="risk") == 0
    finally:
        await client.aclose()
        r.close()


def test_active_consumers_takes_each_consumers_least_idle_stream() -> None:
    streams = [Backlog(idle_ms={"a": 40_000, "b": 1_000}), Backlog(idle_ms={"a": 2_000}),
               Backlog(idle_ms={"c": 15_001})]
    assert active_consumers(streams, 15.0) == 2  # a (2 s on one stream) and b; not c
    assert active_consumers([], 15.0) == 0
