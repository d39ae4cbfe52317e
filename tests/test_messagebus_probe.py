"""The MessageBus prober against real Redis and synthetic engines with known truth."""

from __future__ import annotations

import asyncio
import bisect
import time

import pytest
import redis
import yaml

from exporter.probes.messagebus import ProbeSpec
from exporter.probes.trading_request import CompositeSpec
from nautilus_wire import protocol
from nautilus_wire.redis_client import connect
from nautilus_wire.requester import make_transport, StreamsTransport
from nautilus_wire.thin_streams import settings, ThinStreamsTransport
from synthetic.engine import SyntheticEngine
from synthetic.knobs import Knobs, ServiceTime

from nautilus_testkit import eventually, wait_for
from nautilus_testkit.exposition import buckets, histogram_quantile, value
from nautilus_testkit.probing import engines_running, probing

LAT = "nautilus_probe_latency_seconds"


def spec(engine: str, op: str, rate: float, timeout: float = 2.0,
         priority: str = "normal") -> ProbeSpec:
    return ProbeSpec(engine, op, rate, timeout, priority, 16)


def fixed(seconds: float, **kw: float) -> Knobs:
    return Knobs(service_time=ServiceTime("fixed", seconds), **kw)


def engine(redis_url: str, name: str, ops: dict[str, Knobs], **kw) -> SyntheticEngine:
    return SyntheticEngine(connect(redis_url), name, ops, seed=1234, **kw)


@pytest.fixture
def engine_process(spawn, tmp_path):
    """Synthetic engines in their own process (as deployed): timing tests get a core
    of their own instead of sharing the prober's event loop."""
    def start(redis_url: str, engines: dict, transport: str = "streams") -> None:
        path = tmp_path / "synthetic.yml"
        path.write_text(yaml.safe_dump({"redis_url": redis_url, "transport": transport,
                                        "engines": engines}))
        spawn("engines", "--config.file", str(path))
        with redis.Redis.from_url(redis_url) as r:
            if transport == "streams":
                engine = next(iter(engines))
                wait_for(lambda: r.exists(f"nautilus:probe:{{{engine}}}:req:low"), 10)
            else:
                wait_for(lambda: r.pubsub_numsub("nautilus:probe:{risk}:req")[0][1] == 1, 10)
    return start


@pytest.mark.parametrize("transport", ["streams", "pubsub"])
async def test_fixed_service_time_median(redis_url: str, engine_process, transport: str) -> None:
    """A 20 ms engine reads 20-22 ms. Beside it, a 0 ms operation of the same engine
    measures this machine's bare MessageBus round trip in the same run: on a busy
    2-vCPU VM that floor alone can exceed 1.5 ms, so the upper bound is 20 ms plus
    the larger of 2 ms and the floor + 0.5 ms (typically 2 ms: medians here read
    20.9-21.6 ms with floors of 1.5-2.5 ms). The floor is a fact to check too: it
    is capped at 3 ms, which this machine meets, so a constant delay added by the
    prober (which would raise the floor with the median) fails the test. A run whose
    floor is over 3 ms met a machine busy with something else (a fresh-clone CI read
    9.3 ms beside a stack starting up): it is run again, up to three times in all, and
    the first with a floor within 3 ms is judged; a prober's own delay fails all three."""
    engine_process(redis_url, {"risk": {"limit_check": {"service_time": "20ms"},
                                        "alert": {"service_time": 0}}}, transport)
    for _ in range(3):
        async with probing(redis_url, [spec("risk", "limit_check", 200),
                                       spec("risk", "alert", 200)],
                           duration=4, transport=transport) as h:
            text = h.text()
        floor = histogram_quantile(0.5, buckets(text, LAT, engine="risk", op="alert"))
        if floor <= 0.003:
            break
    assert floor <= 0.003, floor
    # 200/s over the window measured (4 s and a loaded machine's set-up), every probe
    # sent answered; one taken later than its timeout is skipped, not sent.
    least, most = h.due(200)
    sent = value(text, "nautilus_probe_requests_total", engine="risk", op="limit_check")
    skipped = value(text, "nautilus_probe_probes_skipped_total", engine="risk", op="limit_check")
    assert least <= sent + skipped <= most and skipped <= 0.02 * most, (sent, skipped, least, most)
    assert value(text, f"{LAT}_count", engine="risk", op="limit_check") == sent
    assert value(text, "nautilus_probe_failures_total") == 0
    median = histogram_quantile(0.5, buckets(text, LAT, engine="risk", op="limit_check"))
    assert 0.020 <= median <= 0.020 + max(0.002, floor + 0.0005), (median, floor)
    # The engine's own service time is exported too: 20 ms on average (its exact mean).
    service = value(text, "nautilus_probe_service_seconds_sum", op="limit_check") / \
        value(text, "nautilus_probe_service_seconds_count", op="limit_check")
    assert 0.019 <= service <= 0.022, service


async def test_drop_ratio_counts_lost(redis_url: str) -> None:
    eng = engine(redis_url, "ml", {"process": fixed(0, drop_ratio=0.05)})
    async with engines_running(redis_url, [eng]):
        async with probing(redis_url, [spec("ml", "process", 400, timeout=0.3)],
                           duration=5) as h:
            text = h.text()
    requests = value(text, "nautilus_probe_requests_total", engine="ml")
    lost = value(text, "nautilus_probe_replies_lost_total", engine="ml")
    assert requests >= 1900, requests
    assert abs(lost / requests - 0.05) <= 0.015, (lost, requests)
    # Exactly what the engine dropped, each also a timeout, none late.
    assert lost == eng.responder.stats.dropped
    assert value(text, "nautilus_probe_failures_total", reason="timeout") == lost
    assert value(text, "nautilus_probe_replies_late_total") == 0
    assert value(text, "nautilus_probe_in_flight") == 0


@pytest.mark.parametrize("thin", [True, False], ids=["thin", "redis-py"])
async def test_a_correct_concurrent_engine_reads_zero_out_of_order(redis_url: str, engine_process,
                                                                   thin: bool) -> None:
    """Service times of 1-60 ms at 200 probes/s: replies overtake slower ones all the
    time, yet every request starts in arrival order, so nothing is out of order. Not
    even when the prober's loop stalls 60 ms every 300 ms and reads replies late (a
    GC pause, a busy core): a reply's arrival is when it entered Redis. (Timed at
    its reading, this prober counted 34-42 of its 1,200 replies out of order.)"""
    engine_process(redis_url, {"risk": {"alert": {"service_time": {
        "distribution": "uniform", "min": "1ms", "max": "60ms"}}}})
    stop = asyncio.Event()

    async def stall() -> None:
        while not stop.is_set():
            await asyncio.sleep(0.3)
            time.sleep(0.06)  # holds the prober's loop

    staller = asyncio.create_task(stall())
    async with probing(redis_url, [spec("risk", "alert", 200)], duration=3, thin=thin) as h:
        stop.set()
        await staller
        text = h.text()
    client = connect(redis_url)
    replies = await client.xrange(protocol.reply_key(protocol.DEFAULT_PREFIX, "tester"))
    await client.aclose()
    arrivals = [int(f["seq"]) for _, f in replies]
    overtaken = sum(1 for i, seq in enumerate(arrivals) if seq < max(arrivals[:i], default=0))
    assert overtaken >= 100, overtaken  # the old "seq below the highest seen" rule: 100+
    assert value(text, "nautilus_probe_replies_out_of_order_total") == 0
    assert value(text, "nautilus_probe_requests_total") >= 500


async def test_duplicates_and_out_of_order_counted_exactly(redis_url: str) -> None:
    eng = engine(redis_url, "risk", {"alert": fixed(0, duplicate_ratio=0.05, reorder_ratio=0.05)})
    async with engines_running(redis_url, [eng]):
        async with probing(redis_url, [spec("risk", "alert", 200)], duration=4) as h:
            text = h.text()
    stats = eng.responder.stats
    assert stats.duplicates >= 10 and eng.reordered >= 10, (stats, eng.reordered)
    assert value(text, "nautilus_probe_replies_duplicate_total") == stats.duplicates
    assert value(text, "nautilus_probe_replies_out_of_order_total") == eng.reordered
    assert value(text, "nautilus_probe_failures_total") == 0
    assert value(text, "nautilus_probe_replies_lost_total") == 0
    assert value(text, f"{LAT}_count") == value(text, "nautilus_probe_requests_total")


async def test_stall_shows_in_the_tail(redis_url: str, engine_process) -> None:
    """1 s of silence every 5 s: open-loop probing puts it in p99 (closed loop hides it)."""
    engine_process(redis_url, {"factor": {"full_cycle": {
        "service_time": "1ms", "stall": {"duration": "1s", "period": "5s"}}}})
    async with probing(redis_url, [spec("factor", "full_cycle", 50, timeout=2.0)],
                       duration=5.5) as h:
        text = h.text()
    cum = buckets(text, LAT, engine="factor")
    assert histogram_quantile(0.99, cum) > 0.5
    assert histogram_quantile(0.5, cum) < 0.01
    assert value(text, "nautilus_probe_failures_total") == 0


async def test_error_replies_are_counted_exactly(redis_url: str) -> None:
    eng = engine(redis_url, "analytics", {"report": fixed(0, error_ratio=0.2)})
    async with engines_running(redis_url, [eng]):
        async with probing(redis_url, [spec("analytics", "report", 200)], duration=2) as h:
            text = h.text()
    errors = value(text, "nautilus_probe_failures_total", reason="error")
    assert errors == eng.responder.stats.errors
    requests = value(text, "nautilus_probe_requests_total")
    assert 0.12 <= errors / requests <= 0.28
    assert value(text, f"{LAT}_count") == requests - errors


async def test_unknown_operation_is_an_error_reply(redis_url: str) -> None:
    eng = engine(redis_url, "risk", {"limit_check": fixed(0)})
    async with engines_running(redis_url, [eng]):
        async with probing(redis_url, [spec("risk", "nope", 50)], duration=1) as h:
            text = h.text()
    requests = value(text, "nautilus_probe_requests_total", op="nope")
    assert requests >= 45
    assert value(text, "nautilus_probe_failures_total", op="nope", reason="error") == requests


async def test_trading_request_is_as_slow_as_its_slowest_leg(redis_url: str) -> None:
    legs = {"risk": ("limit_check", 0.050), "analytics": ("calculation", 0.030),
            "factor": ("factor_calculation", 0.100), "ml": ("process", 0.010)}
    engines = [engine(redis_url, e, {op: fixed(t)}) for e, (op, t) in legs.items()]
    trading = CompositeSpec(rate=20, timeout=1.0, priority="high", payload_size=16,
                            legs=tuple((e, op) for e, (op, _) in legs.items()))
    async with engines_running(redis_url, engines):
        async with probing(redis_url, [], duration=3, trading=trading) as h:
            text = h.text()
    count = value(text, "nautilus_probe_trading_request_latency_seconds_count")
    assert count == value(text, "nautilus_probe_trading_requests_total") >= 55
    avg = value(text, "nautilus_probe_trading_request_latency_seconds_sum") / count
    assert 0.100 <= avg <= 0.110, avg
    # Every leg is also an ordinary probe of its engine.
    assert value(text, "nautilus_probe_requests_total", engine="ml") == count


async def test_trading_request_fails_with_a_leg(redis_url: str) -> None:
    engines = [engine(redis_url, "risk", {"limit_check": fixed(0, error_ratio=1.0)}),
               engine(redis_url, "ml", {"process": fixed(0)})]
    trading = CompositeSpec(rate=20, timeout=0.5, priority="high", payload_size=0,
                            legs=(("risk", "limit_check"), ("ml", "process")))
    async with engines_running(redis_url, engines):
        async with probing(redis_url, [], duration=1, trading=trading) as h:
            text = h.text()
    sent = value(text, "nautilus_probe_trading_requests_total")
    assert sent >= 18
    assert value(text, "nautilus_probe_trading_request_failures_total", reason="error") == sent
    assert value(text, "nautilus_probe_trading_request_latency_seconds_count") == 0


async def test_knobs_change_while_running(redis_url: str) -> None:
    """A breach injected through Redis, without a restart, shows in the exported latency."""
    eng = engine(redis_url, "risk", {"limit_check": fixed(0.001)}, report_interval=0.2)
    async with engines_running(redis_url, [eng]):
        async with probing(redis_url, [spec("risk", "limit_check", 50)], duration=1) as h:
            before = h.text()
        await eng._redis.set("nautilus:probe:{risk}:knobs",
                             '{"limit_check": {"service_time": "150ms"}}')
        await eventually(lambda: eng.ops["limit_check"] == fixed(0.150), 5)
        async with probing(redis_url, [spec("risk", "limit_check", 50)], duration=1) as h:
            after = h.text()
        await eng._redis.delete("nautilus:probe:{risk}:knobs")
        await eventually(lambda: eng.ops["limit_check"] == fixed(0.001), 5)
    assert histogram_quantile(0.5, buckets(before, LAT)) < 0.01
    # The exact mean, not a bucket-interpolated median: 150 ms sits inside the bucket
    # (128, 152.2] ms, where interpolation reads ~140 ms whenever no probe lands above it.
    mean = value(after, f"{LAT}_sum") / value(after, f"{LAT}_count")
    assert 0.15 <= mean <= 0.17, mean


async def test_replies_after_the_timeout_are_late_not_lost(redis_url: str) -> None:
    """An engine that takes 600 ms against a 400 ms timeout: every probe times out,
    and every reply, arriving 200 ms later, is counted late (not lost, not ok)."""
    eng = engine(redis_url, "risk", {"alert": fixed(0.600)})
    async with engines_running(redis_url, [eng]):
        async with probing(redis_url, [spec("risk", "alert", 50, timeout=0.4)], duration=2) as h:
            text = h.text()
    requests = value(text, "nautilus_probe_requests_total")
    # 50/s over the window measured (2 s and a loaded machine's set-up); a probe taken
    # later than its timeout is skipped, counted, not sent.
    least, most = h.due(50)
    assert least <= requests + value(text, "nautilus_probe_probes_skipped_total") <= most, \
        (requests, h.window)
    assert requests >= least * 0.9, requests
    ok = value(text, f"{LAT}_count")
    timeouts = value(text, "nautilus_probe_failures_total", reason="timeout")
    late = value(text, "nautilus_probe_replies_late_total")
    lost = value(text, "nautilus_probe_replies_lost_total")
    # Every probe settled once: answered, or timed out and then late or lost.
    assert ok + timeouts == requests and late + lost == timeouts, (ok, timeouts, late, lost)
    assert late <= eng.responder.stats.replies, (late, eng.responder.stats)
    # The reply comes 600 ms after the probe: mid-way between its 400 ms timeout and the
    # end of the grace window (as long again), 200 ms from either edge (at 50 ms, a
    # machine loaded by two busy loops moved half of them). Only a loaded machine
    # holding the engine or the prober that long moves one across an edge (or has the
    # engine find a request past its deadline, which it drops): a few at most.
    assert late >= 0.9 * requests and ok <= 0.05 * requests, (ok, late, lost, requests)


async def test_a_slow_leg_fails_the_trading_request(redis_url: str) -> None:
    """The composite fails with the reason of its failing leg; each leg is counted in
    its own series."""
    engines = [engine(redis_url, "risk", {"limit_check": fixed(0)}),
               engine(redis_url, "analytics", {"calculation": fixed(0)}),
               engine(redis_url, "factor", {"factor_calculation": fixed(0.150)}),
               engine(redis_url, "ml", {"process": fixed(0)})]
    trading = CompositeSpec(rate=20, timeout=0.1, priority="high", payload_size=0,
                            legs=protocol.TRADING_REQUEST_LEGS)
    async with engines_running(redis_url, engines):
        async with probing(redis_url, [], duration=2, trading=trading) as h:
            text = h.text()
    sent = value(text, "nautilus_probe_trading_requests_total")
    # 20/s over the window measured (2 s and a loaded machine's set-up); a request taken
    # later than its 100 ms timeout is skipped, counted on each leg, not sent.
    least, most = h.due(20)
    skipped = value(text, "nautilus_probe_probes_skipped_total", engine="risk")
    assert least <= sent + skipped <= most, (sent, skipped, h.window)
    assert sent >= least * 0.9, sent
    assert value(text, "nautilus_probe_trading_request_failures_total", reason="timeout") == sent
    assert value(text, "nautilus_probe_trading_request_latency_seconds_count") == 0
    assert value(text, "nautilus_probe_failures_total", engine="factor", reason="timeout") == sent
    for fine in ("risk", "analytics", "ml"):
        # Each leg counted once in its own series: answered, or (its engine answers at
        # once, but a loaded machine can hold a reply past 100 ms) timed out.
        answered = value(text, f"{LAT}_count", engine=fine)
        timeouts = value(text, "nautilus_probe_failures_total", engine=fine, reason="timeout")
        assert answered + timeouts == value(text, "nautilus_probe_requests_total",
                                            engine=fine) == sent, (fine, answered, timeouts)
        assert value(text, "nautilus_probe_failures_total", engine=fine) == timeouts
        assert answered >= 0.75 * sent, (fine, answered, sent)


async def test_the_thin_path_and_redis_py_measure_the_same(redis_url: str, engine_process) -> None:
    """The hot path over hiredis (nautilus_wire/thin_streams.py) against redis-py's,
    at once against one 20 ms engine: the same count, and p50 and p99 within one
    bucket of each other."""
    engine_process(redis_url, {"risk": {"limit_check": {"service_time": "20ms"}}})

    async def measure(thin: bool) -> tuple[str, type, tuple[float, float]]:
        async with probing(redis_url, [spec("risk", "limit_check", 200)], duration=4,
                           prober=f"thin_{thin}".lower(), thin=thin) as h:
            return h.text(), type(h.bus.transport), h.due(200)

    (thin, thin_kind, thin_due), (plain, plain_kind, plain_due) = await asyncio.gather(
        measure(True), measure(False))
    assert (thin_kind, plain_kind) == (ThinStreamsTransport, StreamsTransport)
    edges = [le for le, _ in buckets(plain, LAT, engine="risk", op="limit_check")]
    for text, (least, most) in ((thin, thin_due), (plain, plain_due)):
        assert value(text, "nautilus_probe_failures_total") == 0
        # 200/s over the window each measured (4 s and a loaded machine's set-up), every
        # probe sent answered; one taken later than its timeout is skipped, not sent.
        sent = value(text, "nautilus_probe_requests_total", engine="risk", op="limit_check")
        skipped = value(text, "nautilus_probe_probes_skipped_total")
        assert least <= sent + skipped <= most and skipped <= 0.02 * most, (
            sent, skipped, least, most)
        assert value(text, f"{LAT}_count", engine="risk", op="limit_check") == sent
    for q in (0.5, 0.99):
        a, b = (histogram_quantile(q, buckets(t, LAT, engine="risk", op="limit_check"))
                for t in (thin, plain))
        assert abs(bisect.bisect_left(edges, a) - bisect.bisect_left(edges, b)) <= 1, (q, a, b)
    # And they read the engine: a median of 20-30 ms (test_fixed_service_time_median
    # holds it to 20-22). Not the p99, the 8th slowest of 800: one stall of the shared
    # machine moved both paths to 40 ms alike in a CI run; their agreement is above.
    assert 0.020 <= histogram_quantile(0.5, buckets(thin, LAT, engine="risk", op="limit_check")) <= 0.030


def test_the_thin_path_is_used_only_where_it_applies() -> None:
    """Plain TCP (ACL user included) takes the thin path; TLS, a Unix socket and
    Redis Cluster keep redis-py."""
    assert settings(connect("redis://probe:s3cret@127.0.0.1:6390/2")) == {
        "host": "127.0.0.1", "port": 6390, "db": 2, "username": "probe", "password": "s3cret"}
    for url in ("rediss://127.0.0.1:6390/0", "unix:///tmp/redis.sock",
                "redis+cluster://127.0.0.1:7000"):
        client = connect(url)
        assert settings(client) is None, url
        kind = type(make_transport("streams", client, "p", "x"))
        assert kind is StreamsTransport, url
    assert type(make_transport("streams", connect("redis://127.0.0.1:1"), "p", "x")) \
        is ThinStreamsTransport
