"""The runtime in-process against a real Redis: reloads that reconnect or reopen,
self-reports read into gauges, garbage on the pubsub reply channel, bad knobs."""

from __future__ import annotations

import json
import time
from pathlib import Path

import redis
from prometheus_client import CollectorRegistry, generate_latest

from exporter.probes.self_report import SelfReportSpec
from exporter.metrics import build
from exporter.probes.self_report import SelfReportProbe, build_metrics
from exporter.supervise import Supervisor
from exporter.runtime import Exporter
from nautilus_testkit import eventually
from nautilus_testkit.exposition import value
from nautilus_testkit.probing import engines_running, probing
from nautilus_wire import protocol
from nautilus_wire.redis_client import connect
from synthetic.engine import SyntheticEngine
from synthetic.knobs import Knobs, ServiceTime

from .conftest import write_config


def text(ex: Exporter) -> str:
    return generate_latest(ex.registry).decode()


async def test_reloads_reconnect_or_reopen_only_what_changed(redis_url: str, tmp_path: Path) -> None:
    eng = SyntheticEngine(connect(redis_url), "risk", {"alert": Knobs()})
    cfg = write_config(tmp_path / "exp.yml", redis_url, {"risk": {"alert": {"rate": 100}}},
                       websocket={"endpoints": ["ws://127.0.0.1:1/ws"]})
    async with engines_running(redis_url, [eng]):
        ex = Exporter(str(cfg))
        await ex.start()
        try:
            await eventually(lambda: value(text(ex), "nautilus_probe_latency_seconds_count") >= 20, 5)
            bus, ws = ex.bus, ex.probe("websocket")
            # A new prober id: a new connection and reply stream; probing goes on.
            write_config(cfg, redis_url, {"risk": {"alert": {"rate": 100}}}, prober_id="second",
                         websocket={"endpoints": ["ws://127.0.0.1:1/ws"]})
            assert await ex.reload()
            assert ex.bus is not bus and ex.probe("websocket") is ws
            ok = value(text(ex), "nautilus_probe_latency_seconds_count")
            await eventually(lambda: value(text(ex), "nautilus_probe_latency_seconds_count")
                             >= ok + 20, 5)
            with redis.Redis.from_url(redis_url) as r:
                assert r.xlen(protocol.reply_key(protocol.DEFAULT_PREFIX, "second")) >= 20
            # A changed WebSocket section reopens the pool; the bus stays.
            bus = ex.bus
            write_config(cfg, redis_url, {"risk": {"alert": {"rate": 100}}}, prober_id="second",
                         websocket={"endpoints": ["ws://127.0.0.1:2/ws"]})
            assert await ex.reload()
            assert ex.bus is bus and ex.probe("websocket") is not ws
            assert ex.healthy
            # The prober measured itself all along: every probe's send lag, and the
            # event loop's lag every 100 ms, both small on an idle loop.
            out = text(ex)
            sent = value(out, "nautilus_probe_requests_total")
            assert value(out, "nautilus_probe_schedule_lag_seconds_count") == sent
            assert value(out, "nautilus_probe_schedule_lag_seconds_sum") / sent < 0.01
            assert value(out, "nautilus_probe_event_loop_lag_seconds_count") >= 3
            assert value(out, "nautilus_probe_event_loop_lag_seconds_sum") / \
                value(out, "nautilus_probe_event_loop_lag_seconds_count") < 0.05
        finally:
            await ex.stop()


async def test_self_reports_become_gauges(redis_url: str) -> None:
    reg = CollectorRegistry()
    m = build(reg)
    client = connect(redis_url)
    now = time.time()
    await client.set(protocol.report_key("risk"), json.dumps({
        "throughput": 1234.0, "latency": 2.5, "cpu_usage": 50, "memory_usage": 64,
        "error_rate": 0.02, "timestamp": now - 3, "operations": {"limit_check": 1000.0}}))
    await client.set(protocol.report_key("factor"), json.dumps({"throughput": "lots"}))
    probe = SelfReportProbe(client, m, build_metrics(reg),
                            SelfReportSpec(("risk", "factor", "ml"), 1.0), Supervisor(m))
    await probe.start()
    await probe.poll()
    out = generate_latest(reg).decode()
    rendered_by = time.time()
    assert value(out, "nautilus_probe_engine_report_up", engine="risk") == 1
    assert value(out, "nautilus_probe_engine_reported_operations_per_second", engine="risk") == 1234
    assert value(out, "nautilus_probe_engine_reported_latency_seconds", engine="risk") == 0.0025
    assert value(out, "nautilus_probe_engine_reported_cpu_ratio", engine="risk") == 0.5
    assert value(out, "nautilus_probe_engine_reported_memory_bytes", engine="risk") == 64 * 2**20
    assert value(out, "nautilus_probe_engine_reported_error_ratio", engine="risk") == 0.02
    assert value(out, "nautilus_probe_engine_reported_operation_operations_per_second",
                 engine="risk", op="limit_check") == 1000
    # Now minus the report's timestamp at the render: 3 s and the time since `now`,
    # however long a loaded machine took to get here (1 ms: the float's printing).
    age = value(out, "nautilus_probe_engine_report_age_seconds", engine="risk")
    assert 3 - 1e-3 <= age <= rendered_by - now + 3 + 1e-3, (age, rendered_by - now)
    # Invalid: counted, down. Missing: down, not an error.
    assert value(out, "nautilus_probe_engine_report_up", engine="factor") == 0
    assert value(out, "nautilus_probe_engine_report_errors_total", engine="factor") == 1
    assert value(out, "nautilus_probe_engine_report_up", engine="ml") == 0
    assert value(out, "nautilus_probe_engine_report_errors_total", engine="ml") == 0
    # risk stops reporting an operation: its series goes. A reload that stops reading
    # risk removes all of risk's series (they used to stay, up = 1, forever).
    await client.set(protocol.report_key("risk"), json.dumps({
        "throughput": 1.0, "latency": 2.5, "cpu_usage": 50, "memory_usage": 64,
        "error_rate": 0.0, "timestamp": now, "operations": {"breach_detection": 1.0}}))
    await probe.poll()
    out = generate_latest(reg).decode()
    assert 'op="limit_check"' not in out and 'op="breach_detection"' in out
    probe.apply(SelfReportSpec(("factor", "ml"), 1.0))
    out = generate_latest(reg).decode()
    assert 'engine="risk"' not in out
    assert value(out, "nautilus_probe_engine_report_errors_total", engine="factor") == 2  # kept
    await client.aclose()


async def test_garbage_on_the_pubsub_reply_channel(redis_url: str) -> None:
    eng = SyntheticEngine(connect(redis_url), "ml", {"process": Knobs()}, transport="pubsub")
    reply_channel = protocol.reply_key(protocol.DEFAULT_PREFIX, "tester")
    async with engines_running(redis_url, [eng]):
        async with probing(redis_url, [], duration=0.3, transport="pubsub") as h:
            with redis.Redis.from_url(redis_url) as r:
                for junk in (b"{not json", b"[1, 2]", b"\xff\xfe", b'{"v": "1"}'):
                    r.publish(reply_channel, junk)
            await eventually(lambda: value(h.text(), "nautilus_probe_replies_malformed_total") == 4, 5)


async def test_bad_knobs_leave_the_configured_ones(redis_url: str) -> None:
    configured = Knobs(service_time=ServiceTime("fixed", 0.001))
    eng = SyntheticEngine(connect(redis_url), "risk", {"alert": configured}, report_interval=0.1)
    async with engines_running(redis_url, [eng]):
        for bad in ("{not json", '["a list"]', '{"alert": {"service_time": "forever"}}',
                    '{"alert": {"bogus": 1}}'):
            await eng._redis.set("nautilus:probe:{risk}:knobs", bad)
            await eventually(lambda bad=bad: eng._overrides_raw == bad, 5)
            assert eng.ops["alert"] == configured
        await eng._redis.set("nautilus:probe:{risk}:knobs", '{"alert": {"service_time": "5ms"}}')
        await eventually(lambda: eng.ops["alert"].service_time == ServiceTime("fixed", 0.005), 5)
