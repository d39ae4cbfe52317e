"""The migration plan's three runs, each a function of its options: `baseline` (the
serial monolith), `containerized` (the trading request's latency and throughput,
each engine, sustained-rate steps, the MessageBus publish test) and `websocket`
(held connections and heartbeats on the exporter's own pool). Each returns its raw
result: phases with mergeable histograms."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any
from collections.abc import AsyncIterator, Awaitable, Callable

from exporter.schedule import clock
from nautilus_wire.protocol import BASELINE_ENGINE, ENGINE_OPERATIONS, TRADING_REQUEST_LEGS
from nautilus_wire.redis_client import connect

from .buffered_bus import BufferedMessageBus
from .caller import Caller
from .drivers import Tally, closed_loop, open_loop
from .failovers import FailoverWatch
from .histogram import LatencyHistogram
from .report import within


def _ok(reply: Any) -> None:
    if reply.status != "ok":
        raise RuntimeError(reply.error)


async def run_baseline(opts: dict[str, Any], stop: asyncio.Event) -> dict[str, Any]:
    """Serial requests to the monolith, one in flight per worker (the migration plan's loop)."""
    client = connect(opts["redis_url"])
    async with Caller(client, opts["transport"], opts["prefix"], opts["prober"]) as caller, \
            _watching(client) as watch:
        async def call() -> None:
            _ok(await caller.call(BASELINE_ENGINE, "trading_request", timeout=opts["timeout"]))
        tally = Tally("baseline", opts["progress"])
        watch.phase = "baseline"
        duration = await closed_loop(call, 1, opts["duration"], stop, tally)
    await client.aclose()
    return {"kind": "baseline", "duration": duration, "errors": tally.errors,
            "histogram": tally.hist.to_json(), "failovers": watch.events,
            "requests_sent": caller.requests}


@contextlib.asynccontextmanager
async def _watching(client: Any) -> AsyncIterator[FailoverWatch]:
    """A FailoverWatch on `client` for the length of the block."""
    watch, done = FailoverWatch(client), asyncio.Event()
    task = asyncio.create_task(watch.run(done))
    try:
        yield watch
    finally:
        done.set()
        await task


async def run_containerized(opts: dict[str, Any], stop: asyncio.Event) -> dict[str, Any]:
    client = connect(opts["redis_url"])
    out: dict[str, Any] = {"kind": "containerized", "p99_target": opts["p99_target"],
                           "error_ratio_target": opts.get("error_ratio_target", 0.0)}
    async with Caller(client, opts["transport"], opts["prefix"], opts["prober"]) as caller, \
            _watching(client) as watch:
        async def trading_request() -> None:
            replies = await asyncio.gather(*(caller.call(e, op, timeout=opts["timeout"])
                                             for e, op in TRADING_REQUEST_LEGS))
            for r in replies:
                _ok(r)

        phases: list[tuple[str, Callable[[], Awaitable[None]], str, float]] = [
            ("latency", trading_request, "open", opts["rate"]),
            ("throughput", trading_request, "closed", opts["concurrency"])]
        for engine, ops in ENGINE_OPERATIONS.items():
            async def call(engine: str = engine, op: str = ops[0]) -> None:
                _ok(await caller.call(engine, op, timeout=opts["timeout"]))
            phases.append((f"engine:{engine}", call, "closed", opts["concurrency"]))
        if opts.get("operations") == "all":
            for engine, op in extra_operations():
                async def call_op(engine: str = engine, op: str = op) -> None:
                    _ok(await caller.call(engine, op, timeout=opts["timeout"]))
                phases.append((f"operation:{engine}.{op}", call_op, "closed",
                               opts["concurrency"]))
        # Equal shares, the latency phase two (its p99 needs the samples): at the default
        # 240 s each share is ~12 s, so every rate is over 10 s and the p99 of 100
        # trading requests/s rests on ~2,500 samples (evidence.py).
        unit = phase_seconds(opts)
        for label, fn, mode, n in phases:
            if stop.is_set():
                break
            tally = Tally(label, opts["progress"])
            watch.phase = label
            seconds = 2 * unit if label == "latency" else unit
            if mode == "open":
                duration = await open_loop(fn, n, seconds, stop, tally, _share(opts))
            else:
                duration = await closed_loop(fn, int(n), seconds, stop, tally)
            out[label] = {"duration": duration, "errors": tally.errors,
                          "histogram": tally.hist.to_json()}
        watch.phase = "sustained"
        out["sustained"] = await _sustained(trading_request, opts, unit, stop)
        if not stop.is_set():
            watch.phase = "messagebus"
            out["messagebus"] = await _publish(client, unit, stop)
    out["failovers"] = watch.events
    out["requests_sent"] = caller.requests  # to the engines, every phase
    await client.aclose()
    return out


SUSTAIN_STEPS = 6  # rate, 2x, 4x ... 32x


def phase_shares(phases: int) -> int:
    """How many equal shares a containerized run's duration is cut into: each closed-
    or open-loop phase one (the latency phase two), each sustained step one, the bus one."""
    return phases + 1 + SUSTAIN_STEPS + 1


def phase_seconds(opts: dict[str, Any]) -> float:
    """One share of a containerized run's duration. Its closed- and open-loop phases,
    as run_containerized builds them: latency, throughput, each engine's first
    operation, and with `--operations all` each further one."""
    extra = len(extra_operations()) if opts.get("operations") == "all" else 0
    return float(opts["duration"]) / phase_shares(2 + len(ENGINE_OPERATIONS) + extra)


def containerized_plan(opts: dict[str, Any]) -> dict[str, Any]:
    """What a containerized run plans, as its result's metadata records it (the report
    says what ran of it): the seconds of each share of its duration, and at most how
    many sustained-rate steps (they stop at the first beyond a target)."""
    return {"phase_seconds": round(phase_seconds(opts), 3), "sustained_steps": SUSTAIN_STEPS}


def extra_operations() -> list[tuple[str, str]]:
    """(engine, operation) beyond each engine's first that thresholds.yml gives a rate
    (`--operations all`); the factor engine's full cycle is not a rate."""
    return [(engine, op) for engine, ops in ENGINE_OPERATIONS.items() for op in ops[1:]
            if op != "full_cycle"]


def _share(opts: dict[str, Any]) -> tuple[int, int]:
    """(i, N): this process sends its slice of each open-loop schedule (shares.py)."""
    index, count = opts.get("share", (0, 1))
    return index, count


async def _sustained(call: Callable[[], Awaitable[None]], opts: dict[str, Any], seconds: float,
                     stop: asyncio.Event) -> list[dict[str, Any]]:
    """Open-loop steps from --rate, doubling, until p99 passes its target or the error
    ratio passes its target: the highest rate the system sustains within both (a
    single error out of thousands is the engines' own error rate, not saturation)."""
    steps = []
    rate = opts["rate"]
    for _ in range(SUSTAIN_STEPS):
        if stop.is_set():
            break
        tally = Tally(f"sustain {rate:g}/s", opts["progress"])
        duration = await open_loop(call, rate, seconds, stop, tally, _share(opts))
        steps.append({"rate": rate, "duration": duration, "errors": tally.errors,
                      "histogram": tally.hist.to_json()})
        if not within(tally.errors, tally.hist.count, tally.hist.quantile(0.99)
                       if tally.hist.count else None, opts):
            break
        rate *= 2
    return steps


async def _publish(client: Any, seconds: float, stop: asyncio.Event) -> dict[str, Any]:
    """The migration plan's MessageBus publish test, counted to Redis's acknowledgement."""
    started = clock()
    async with BufferedMessageBus(client, config="high_frequency") as bus:
        while clock() - started < seconds and not stop.is_set():
            for _ in range(100):
                await bus.publish("benchmark.test", {"timestamp": time.time()}, "HIGH")
            await asyncio.sleep(0)
    return {"acknowledged": bus.stats.acknowledged, "failed_flushes": bus.stats.failed_flushes,
            "duration": clock() - started}


async def run_websocket(opts: dict[str, Any], stop: asyncio.Event) -> dict[str, Any]:
    """The migration plan's WebSocket load test on the exporter's pool: hold N connections, then
    heartbeats over them at a fixed total rate, every reply matched by its id."""
    from prometheus_client import CollectorRegistry

    from exporter.metrics import NAMESPACE, build
    from exporter.probes.websocket import WebSocketProbe, WsEndpoint, WsSpec, build_metrics
    from exporter.supervise import Supervisor

    reg = CollectorRegistry()
    spec = WsSpec(tuple(WsEndpoint(u, u.split("?")[0], None) for u in opts["urls"]),
                  opts["connections"], connect_rate=opts["connect_rate"],
                  connect_timeout=opts["timeout"], heartbeat_rate=opts["rate"],
                  heartbeat_timeout=opts["timeout"], compression=False, subscribe_topic=None,
                  subscribe_connections=0)
    prober = WebSocketProbe(spec, build_metrics(reg), Supervisor(build(reg)))
    connects, tally = LatencyHistogram(), Tally("websocket", opts["progress"])
    prober.on_connect, prober.on_latency = connects.record, tally.ok

    def total(name: str) -> int:
        return int(sum(s.value for m in reg.collect() for s in m.samples if s.name == name))

    phase_stop = asyncio.Event()
    connector = asyncio.create_task(prober.run_connector(phase_stop))
    t0 = clock()
    while connects.count < opts["connections"] and clock() - t0 < opts["duration"] \
            and not stop.is_set():
        await asyncio.sleep(0.02)
    open_seconds = clock() - t0
    heartbeats = asyncio.create_task(prober.run_heartbeats(phase_stop))
    started = clock()
    while clock() - started < opts["duration"] and not stop.is_set():
        await asyncio.sleep(0.05)
    phase_stop.set()
    await asyncio.gather(connector, heartbeats)
    sent_for = clock() - started
    end = clock() + opts["timeout"]
    while prober.heartbeats and clock() < end:  # the last acks, or their timeouts
        await asyncio.sleep(0.01)
        prober.expire(clock())
    tally.elapsed()
    await prober.close()
    return {"kind": "websocket", "connections": opts["connections"], "open_seconds": open_seconds,
            "connect_failures": total(f"{NAMESPACE}_ws_connect_failures_total"),
            "messages_sent": total(f"{NAMESPACE}_ws_messages_sent_total"),
            "error_replies": total(f"{NAMESPACE}_ws_error_replies_total"),
            "timeouts": total(f"{NAMESPACE}_ws_timeouts_total"),
            "duration": sent_for, "errors": 0, "histogram": tally.hist.to_json(),
            "connect_histogram": connects.to_json()}


RUNS = {"baseline": run_baseline, "containerized": run_containerized,
        "websocket": run_websocket}
