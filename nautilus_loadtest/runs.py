"""`nautilus-probe loadtest baseline|containerized|websocket`: the migration plan's benchmark runs, honestly.

Each run writes a JSON result with the keys the migration plan's comparison expects plus
full percentiles and the mergeable histograms. Latency runs at a fixed rate are
open loop (timed from the scheduled send); throughput runs are closed loop with
N requests in flight. `--workers N` runs N processes and merges their results
exactly: counts add, histograms merge.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from datetime import datetime, UTC
from concurrent.futures import ProcessPoolExecutor
from typing import Any
from collections.abc import Awaitable, Callable

from redis.exceptions import ResponseError

from exporter import __version__
from exporter.schedule import Schedule, clock, sleep_for
from nautilus_wire.protocol import (BASELINE_ENGINE, ENGINE_OPERATIONS, PRIORITIES,
                                    TRADING_REQUEST_LEGS, request_stream)
from nautilus_wire.redact import redact
from nautilus_wire.redis_client import BUS_ERRORS, connect

from .buffered_bus import BufferedMessageBus
from .caller import Caller
from .histogram import LatencyHistogram


class Tally:
    """One measured phase: latencies, errors, and live progress on stderr."""

    def __init__(self, label: str, show: bool) -> None:
        self.label, self.show = label, show
        self.hist = LatencyHistogram()
        self.errors = 0
        self.started = clock()
        self._last = 0.0

    def ok(self, seconds: float) -> None:
        self.hist.record(seconds)
        self._progress()

    def failed(self) -> None:
        self.errors += 1
        self._progress()

    def _progress(self) -> None:
        now = clock()
        if self.show and now - self._last >= 1.0:
            self._last = now
            elapsed = now - self.started
            p99 = self.hist.quantile(0.99) * 1e3 if self.hist.count else float("nan")
            print(f"\r{self.label}: {elapsed:5.1f}s {self.hist.count:8d} ok "
                  f"{self.hist.count / max(elapsed, 1e-9):9.1f}/s {self.errors:6d} errors "
                  f"p99 {p99:8.2f} ms", end="", file=sys.stderr, flush=True)

    def elapsed(self) -> float:
        if self.show:
            print(file=sys.stderr)
        return clock() - self.started


async def _closed_loop(call: Callable[[], Awaitable[None]], concurrency: int, duration: float,
                       stop: asyncio.Event, tally: Tally) -> float:
    end = clock() + duration

    async def worker() -> None:
        while clock() < end and not stop.is_set():
            t0 = clock()
            try:
                await call()
                tally.ok(clock() - t0)
            except Exception:
                tally.failed()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return tally.elapsed()


async def _open_loop(call: Callable[[], Awaitable[None]], rate: float, duration: float,
                     stop: asyncio.Event, tally: Tally) -> float:
    start = clock()
    tasks: set[asyncio.Task[None]] = set()

    async def one(due: float) -> None:
        try:
            await call()
            tally.ok(clock() - due)  # from the scheduled time: no coordinated omission
        except Exception:
            tally.failed()

    schedule = Schedule(rate, start)
    while clock() - start < duration and not stop.is_set():
        for due in schedule.take_due(clock()):
            task = asyncio.create_task(one(due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.sleep(sleep_for(schedule.next_due(), clock()))
    if tasks:
        await asyncio.wait(tasks)
    return tally.elapsed()


def _ok(reply: Any) -> None:
    if reply.status != "ok":
        raise RuntimeError(reply.error)


async def run_baseline(opts: dict[str, Any], stop: asyncio.Event) -> dict[str, Any]:
    """Serial requests to the monolith, one in flight per worker (the migration plan's loop)."""
    client = connect(opts["redis_url"])
    async with Caller(client, opts["transport"], opts["prefix"], opts["prober"]) as caller:
        async def call() -> None:
            _ok(await caller.call(BASELINE_ENGINE, "trading_request", timeout=opts["timeout"]))
        tally = Tally("baseline", opts["progress"])
        duration = await _closed_loop(call, 1, opts["duration"], stop, tally)
    await client.aclose()
    return {"kind": "baseline", "duration": duration, "errors": tally.errors,
            "histogram": tally.hist.to_json()}


async def run_containerized(opts: dict[str, Any], stop: asyncio.Event) -> dict[str, Any]:
    client = connect(opts["redis_url"])
    out: dict[str, Any] = {"kind": "containerized", "p99_target": opts["p99_target"],
                           "error_ratio_target": opts.get("error_ratio_target", 0.0)}
    async with Caller(client, opts["transport"], opts["prefix"], opts["prober"]) as caller:
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
        # latency and throughput one share each; the nine engines, the bus and each
        # of the sustained-rate steps a third each
        per_phase = opts["duration"] / (2 + (len(ENGINE_OPERATIONS) + 1 + SUSTAIN_STEPS) / 3)
        for label, fn, mode, n in phases:
            if stop.is_set():
                break
            tally = Tally(label, opts["progress"])
            seconds = per_phase / 3 if label.startswith("engine:") else per_phase
            loop = _open_loop if mode == "open" else _closed_loop
            duration = await loop(fn, n, seconds, stop, tally)
            out[label] = {"duration": duration, "errors": tally.errors,
                          "histogram": tally.hist.to_json()}
        out["sustained"] = await _sustained(trading_request, opts, per_phase / 3, stop)
        if not stop.is_set():
            out["messagebus"] = await _publish(client, per_phase / 3, stop)
    await client.aclose()
    return out


SUSTAIN_STEPS = 6  # rate, 2x, 4x ... 32x


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
        duration = await _open_loop(call, rate, seconds, stop, tally)
        steps.append({"rate": rate, "duration": duration, "errors": tally.errors,
                      "histogram": tally.hist.to_json()})
        if not _within(tally.errors, tally.hist.count, tally.hist.quantile(0.99)
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


def merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge workers' raw results exactly: histograms and counts add."""
    merged: dict[str, Any] = {"kind": results[0]["kind"]}

    def phase(parts: list[dict[str, Any]]) -> dict[str, Any]:
        hist = LatencyHistogram()
        for p in parts:
            hist.merge(LatencyHistogram.from_json(p["histogram"]))
        return {"duration": max(p["duration"] for p in parts),
                "errors": sum(p["errors"] for p in parts), "histogram": hist.to_json()}

    if merged["kind"] == "baseline":
        merged.update(phase(results))
    elif merged["kind"] == "websocket":
        merged.update(phase(results))
        connects = LatencyHistogram()
        for r in results:
            connects.merge(LatencyHistogram.from_json(r["connect_histogram"]))
        merged["connect_histogram"] = connects.to_json()
        for key in ("connections", "connect_failures", "messages_sent", "error_replies", "timeouts"):
            merged[key] = sum(r[key] for r in results)
        merged["open_seconds"] = max(r["open_seconds"] for r in results)
    else:
        for key in results[0]:
            if key in ("p99_target", "error_ratio_target"):
                merged[key] = results[0][key]
            elif key == "sustained":
                depth = min(len(r[key]) for r in results)
                merged[key] = [{**phase([r[key][i] for r in results]),
                                "rate": sum(r[key][i]["rate"] for r in results)}
                               for i in range(depth)]
            elif key == "messagebus":
                parts = [r[key] for r in results if key in r]
                merged[key] = {"acknowledged": sum(p["acknowledged"] for p in parts),
                               "failed_flushes": sum(p["failed_flushes"] for p in parts),
                               "duration": max(p["duration"] for p in parts)}
            elif key != "kind":
                merged[key] = phase([r[key] for r in results if key in r])
    return merged


def report(raw: dict[str, Any], workers: int, concurrency: int) -> dict[str, Any]:
    """The migration plan's result keys (latencies in ms; trading requests/s for the
    monolith and the composite, ops/s per engine), plus percentiles."""
    def stats(p: dict[str, Any]) -> tuple[LatencyHistogram, float]:
        return LatencyHistogram.from_json(p["histogram"]), max(p["duration"], 1e-9)

    if raw["kind"] == "baseline":
        hist, dur = stats(raw)
        return {"throughput": hist.count / dur, "throughput_per_worker": hist.count / dur / workers,
                "avg_latency": hist.mean * 1e3, "p95_latency": hist.quantile(0.95) * 1e3,
                "total_requests": hist.count, "errors": raw["errors"], "test_duration": dur,
                "workers": workers, "latency": hist.summary_ms(), "raw": raw}
    if raw["kind"] == "websocket":
        hist, dur = stats(raw)
        connects = LatencyHistogram.from_json(raw["connect_histogram"])
        sent = raw["messages_sent"]
        return {"connection_test": {
                    "total_connections": raw["connections"], "successful_connections": connects.count,
                    "success_rate": connects.count / raw["connections"] if raw["connections"] else None,
                    "avg_connect_time": connects.mean * 1e3 if connects.count else None,
                    "max_connect_time": connects.max * 1e3 if connects.count else None,
                    "connect_failures": raw["connect_failures"], "open_seconds": raw["open_seconds"]},
                "message_throughput": {
                    "connections": raw["connections"], "duration": dur, "messages_sent": sent,
                    "messages_received": hist.count, "error_replies": raw["error_replies"],
                    "timeouts": raw["timeouts"], "success_rate": hist.count / sent if sent else None,
                    "messages_per_second": hist.count / dur, "latency": hist.summary_ms()},
                "workers": workers, "raw": raw}
    lat, _ = stats(raw["latency"])
    thr, thr_dur = stats(raw["throughput"])
    engines = {}
    for key, part in raw.items():
        if key.startswith("engine:"):
            h, d = stats(part)
            total = h.count + part["errors"]
            engines[key.split(":", 1)[1]] = {
                "throughput": h.count / d, "latency": h.mean * 1e3 if h.count else None,
                "error_rate": part["errors"] / total if total else None}
    return {"latency_benchmark": {**lat.summary_ms(), "errors": raw["latency"]["errors"]},
            "throughput_benchmark": {"max_throughput": thr.count / thr_dur,
                                     # each trading request is one operation per leg
                                     "max_ops_per_second": thr.count / thr_dur * len(TRADING_REQUEST_LEGS),
                                     "legs": len(TRADING_REQUEST_LEGS),
                                     "total_requests": thr.count, "test_duration": thr_dur,
                                     "concurrent_workers": concurrency * workers,
                                     "errors": raw["throughput"]["errors"]},
            "scalability_benchmark": engines, "messagebus_benchmark": _bus_report(raw),
            "sustained_benchmark": _sustained_report(raw),
            "workers": workers, "raw": raw}


def _within(errors: int, ok: int, p99_s: float | None, opts: dict[str, Any]) -> bool:
    """A sustained-rate step passes: answers came, p99 and the error ratio within target."""
    if not ok or p99_s is None or p99_s > opts["p99_target"]:
        return False
    return errors / (errors + ok) <= opts.get("error_ratio_target", 0.0)


def _sustained_report(raw: dict[str, Any]) -> dict[str, Any]:
    steps = []
    target = raw.get("p99_target")
    error_target = raw.get("error_ratio_target", 0.0)
    limits = {"p99_target": target, "error_ratio_target": error_target}
    ok = []
    for step in raw.get("sustained", []):
        h = LatencyHistogram.from_json(step["histogram"])
        p99 = h.quantile(0.99) if h.count else None
        steps.append({"rate": step["rate"], "errors": step["errors"], "count": h.count,
                      "p99_latency": p99 * 1e3 if p99 is not None else None})
        if target is not None and _within(step["errors"], h.count, p99, limits):
            ok.append(step["rate"])
    return {"max_rate": max(ok, default=0.0), "p99_target": target * 1e3 if target else None,
            "error_ratio_target": error_target, "steps": steps}


class NothingAnswered(Exception):
    """A run in which no request was answered: no result worth judging."""


def _answered(raw: Any) -> int:
    """Answered requests over every phase of a raw result."""
    if isinstance(raw, dict):
        own = raw.get("histogram", {}).get("count", 0) if isinstance(raw.get("histogram"), dict) else 0
        return own + sum(_answered(v) for k, v in raw.items() if k != "histogram")
    if isinstance(raw, list):
        return sum(_answered(v) for v in raw)
    return 0


def _bus_report(raw: dict[str, Any]) -> dict[str, Any]:
    bus = raw.get("messagebus")
    if bus is None:
        return {}
    return {"message_throughput": bus["acknowledged"] / max(bus["duration"], 1e-9),
            "total_messages": bus["acknowledged"], "test_duration": bus["duration"],
            "failed_flushes": bus["failed_flushes"]}


class Contaminated(Exception):
    """A baseline run during which something else also sent requests to the monolith."""


def _git_commit() -> str | None:
    """The checkout's commit, when the tool runs from one."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        out = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def provenance() -> dict[str, Any]:
    """Which tool made a result, and where: every load-test result and review says."""
    return {"tool": "nautilus-probe", "version": __version__, "git_commit": _git_commit(),
            "host": socket.gethostname()}


def metadata(kind: str, opts: dict[str, Any], workers: int, started: float, ended: float
             ) -> dict[str, Any]:
    """What a reviewer needs to trust (or redo) a result."""
    offered: dict[str, Any] = {"duration_seconds": opts["duration"],
                               "timeout_seconds": opts["timeout"], "workers": workers}
    if kind == "baseline":
        offered["in_flight"] = workers  # serial: one request at a time per worker
    elif kind == "containerized":
        offered.update(latency_phase_rate=opts["rate"], rate_unit="trading requests/s",
                       in_flight=opts["concurrency"] * workers)
    else:
        offered.update(connections=opts["connections"] * workers,
                       connect_rate=opts["connect_rate"], urls=opts["urls"])
    return {"kind": kind, "started": iso(started), "ended": iso(ended),
            "duration_seconds": round(ended - started, 3), **provenance(),
            "redis_url": redact(opts["redis_url"]), "transport": opts["transport"],
            "prefix": opts["prefix"], "thresholds": opts.get("thresholds"), "offered": offered}


def _requests_added(opts: dict[str, Any], engine: str) -> int | None:
    """Requests ever added to an engine's request streams (XINFO STREAM entries-added):
    read before and after a run, the difference is everyone's traffic. None when the
    transport keeps no count (pub/sub) or Redis cannot say."""
    if opts["transport"] != "streams":
        return None

    async def read() -> int:
        client = connect(opts["redis_url"])
        total = 0
        try:
            for priority in PRIORITIES:
                try:
                    info = await client.xinfo_stream(request_stream(opts["prefix"], engine,
                                                                    priority))
                except ResponseError:
                    continue  # no such stream yet: nothing was ever sent at this priority
                total += int(info.get("entries-added", 0))
        finally:
            await client.aclose()
        return total
    try:
        return asyncio.run(read())
    except BUS_ERRORS:
        return None


def run(kind: str, opts: dict[str, Any], workers: int, out_path: str) -> dict[str, Any]:
    """Run `kind` on `workers` processes (1: in this process), merge, write JSON."""
    started = time.time()
    before = _requests_added(opts, BASELINE_ENGINE) if kind == "baseline" else None
    if workers == 1:
        result = merge([_in_process(kind, opts)])
    else:
        import signal

        # Ctrl-C reaches every worker, which stops early and returns what it measured;
        # this parent ignores it, then merges and writes as usual.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
                futures = [pool.submit(_in_process, kind, {
                    **opts, "prober": f"{opts['prober']}_{i}",
                    "progress": opts["progress"] and i == 0}) for i in range(workers)]
                result = merge([f.result() for f in futures])
        finally:
            signal.signal(signal.SIGINT, previous)
    if kind != "websocket" and _answered(result) == 0:
        raise NothingAnswered(f"no request was answered: is the MessageBus at "
                              f"{opts['redis_url']} reachable, and are the engines running? "
                              f"No result was written to {out_path}.")
    final = report(result, workers, opts.get("concurrency", 1))
    final["metadata"] = metadata(kind, opts, workers, started, time.time())
    problem = None
    if kind == "baseline":
        after = _requests_added(opts, BASELINE_ENGINE)
        ours = final["total_requests"] + final["errors"]
        foreign = None if before is None or after is None else after - before - ours
        final["contamination"] = {"checked": foreign is not None,
                                  "foreign_requests": max(foreign or 0, 0)}
        if foreign and foreign > 0:
            problem = (f"{foreign} requests from other clients reached the monolith during "
                       f"the baseline run (we sent {ours}): its figures are not the monolith "
                       "alone. Stop whatever else probes it (the local stack's exporter does: "
                       "run the baseline against engines without an exporter) and run again. "
                       f"The result in {out_path} is marked contaminated; validate refuses it.")
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as fh:
        json.dump(final, fh, indent=2)
    if problem:
        raise Contaminated(problem)
    return final


def _in_process(kind: str, opts: dict[str, Any]) -> dict[str, Any]:
    """One run in this process (or a worker): its own event loop, Redis client and
    prober id; Ctrl-C stops it early and what was measured is still returned."""
    import signal

    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass

    async def body() -> dict[str, Any]:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
        return await RUNS[kind](opts, stop)
    return asyncio.run(body())


def summary_table(kind: str, r: dict[str, Any]) -> str:
    if kind == "websocket":
        c, m = r["connection_test"], r["message_throughput"]
        rows = [("connections opened", f"{c['successful_connections']} / {c['total_connections']}"),
                ("time to open (s)", c["open_seconds"]),
                ("connect avg / max (ms)",
                 f"{c['avg_connect_time'] or 0:.2f} / {c['max_connect_time'] or 0:.2f}"),
                ("heartbeats sent / acked", f"{m['messages_sent']} / {m['messages_received']}"),
                ("error replies, timeouts", f"{m['error_replies']}, {m['timeouts']}"),
                ("acked per second", m["messages_per_second"]),
                ("p50 / p99 (ms)", f"{m['latency'].get('p50_latency', 0):.2f} / "
                                   f"{m['latency'].get('p99_latency', 0):.2f}")]
    elif kind == "baseline":
        rows = [("throughput (trading requests/s)", r["throughput"]),
                ("per worker (trading requests/s)", r["throughput_per_worker"]),
                ("avg latency (ms)", r["avg_latency"]), ("p95 latency (ms)", r["p95_latency"]),
                ("p99 latency (ms)", r["latency"].get("p99_latency", float("nan"))),
                ("requests", r["total_requests"]), ("errors", r["errors"]),
                ("duration (s)", r["test_duration"])]
    else:
        lb, tb = r["latency_benchmark"], r["throughput_benchmark"]
        rows = [("e2e avg latency (ms)", lb.get("avg_latency", float("nan"))),
                ("e2e p95 / p99 (ms)", f"{lb.get('p95_latency', 0):.2f} / {lb.get('p99_latency', 0):.2f}"),
                ("max throughput (trading requests/s)", tb["max_throughput"]),
                ("  = engine operations/s", tb["max_ops_per_second"]),
                ("in flight", tb["concurrent_workers"])]
        sb = r["sustained_benchmark"]
        rows.append(("sustained rate, p99 <= target (trading requests/s)", sb["max_rate"]))
        if r["messagebus_benchmark"]:
            rows.append(("MessageBus publish (msgs/s)", r["messagebus_benchmark"]["message_throughput"]))
        for engine, e in r["scalability_benchmark"].items():
            rows.append((f"{engine} (ops/s, ms, err)",
                         f"{e['throughput']:.0f}, {e['latency'] or 0:.2f}, {e['error_rate'] or 0:.4f}"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v:.2f}" if isinstance(v, float) else f"{k:<{width}}  {v}"
                     for k, v in rows)
