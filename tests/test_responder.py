"""The responder library that engines embed: priorities, deadlines, acks, bad input."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time

import pytest
import redis

import nautilus_wire
from nautilus_wire import ResponderThread, SelfReport, handlers, protocol
from nautilus_wire.protocol import Request
from nautilus_wire.handlers import Verdict
from nautilus_wire.responder import Responder
from nautilus_wire.redis_client import connect
from nautilus_wire.self_report import Snapshot, build_report

from nautilus_testkit import eventually

PREFIX = "nautilus:probe"
REPLY = protocol.reply_key(PREFIX, "tester")


def request(seq: int, prio: str, deadline_s: float = 30.0, op: str = "limit_check") -> Request:
    return Request(f"r{seq}", "tester", "risk", op, seq, prio, REPLY,
                   int((time.time() + deadline_s) * 1000))


async def serve_until_idle(responder: Responder, expected: int) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(responder.run(stop))
    deadline = time.monotonic() + 10
    while responder.stats.received < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    stop.set()  # the responder finishes what it holds before run() returns
    await task


async def test_higher_priorities_are_served_first(redis_url: str) -> None:
    client = connect(redis_url)
    order: list[str] = []

    async def handle(req: Request) -> None:
        order.append(req.prio)

    responder = Responder(client, "risk", handle)
    await responder._ensure_groups()  # as a running engine would have
    seq = 0
    for prio in ("low", "normal", "high", "critical"):
        for _ in range(10):
            seq += 1
            await client.xadd(protocol.request_stream(PREFIX, "risk", prio), request(seq, prio).fields())
    await serve_until_idle(responder, 40)
    assert order == ["critical"] * 10 + ["high"] * 10 + ["normal"] * 10 + ["low"] * 10
    # Every request was answered and acknowledged.
    assert await client.xlen(REPLY) == 40
    for prio in protocol.PRIORITIES:
        pending = await client.xpending(protocol.request_stream(PREFIX, "risk", prio), "responders")
        assert pending["pending"] == 0
    await client.aclose()


async def test_expired_and_malformed_requests_get_no_reply(redis_url: str) -> None:
    client = connect(redis_url)

    async def handle(req: Request) -> Verdict:
        if req.seq == 3:
            raise RuntimeError("limit table unavailable")
        return Verdict()

    responder = Responder(client, "risk", handle)
    stream = protocol.request_stream(PREFIX, "risk", "normal")
    await client.xadd(stream, request(1, "normal").fields())
    await client.xadd(stream, request(2, "normal", deadline_s=-1).fields())  # already expired
    await client.xadd(stream, {"v": "1", "id": "bad"})  # malformed
    await client.xadd(stream, request(3, "normal").fields())  # handler raises
    await serve_until_idle(responder, 3)
    stats = responder.stats
    assert (stats.received, stats.expired, stats.malformed, stats.replies, stats.errors) == (3, 1, 1, 2, 1)
    replies = await client.xrange(REPLY)
    assert [(f["seq"], f["status"]) for _, f in replies] == [("1", "ok"), ("3", "error")]
    assert replies[1][1]["error"] == "RuntimeError: limit table unavailable"
    assert (await client.xpending(stream, "responders"))["pending"] == 0
    await client.aclose()


async def test_requests_of_a_dead_consumer_are_claimed(redis_url: str, monkeypatch) -> None:
    """A consumer that read requests and died leaves them pending: a live responder
    takes them over (XAUTOCLAIM) and answers them; the dead consumer is removed."""
    from nautilus_wire import responder as responder_module

    monkeypatch.setattr(responder_module, "CLAIM_IDLE_MS", 0)
    monkeypatch.setattr(responder_module, "CONSUMER_IDLE_MS", 0)
    client = connect(redis_url)
    responder = Responder(client, "risk", lambda req: asyncio.sleep(0), consumer="alive",
                          self_report=None)
    await responder._ensure_groups()
    stream = protocol.request_stream(PREFIX, "risk", "normal")
    for seq in (1, 2, 3):
        await client.xadd(stream, request(seq, "normal").fields())
    # The dead consumer reads them and never acknowledges.
    await client.xreadgroup(protocol.RESPONDER_GROUP, "dead", {stream: ">"}, count=10)
    assert (await client.xpending(stream, protocol.RESPONDER_GROUP))["pending"] == 3
    await serve_until_idle(responder, 3)
    assert responder.stats.claimed == 3 and responder.stats.replies == 3
    assert (await client.xpending(stream, protocol.RESPONDER_GROUP))["pending"] == 0
    consumers = await client.xinfo_consumers(stream, protocol.RESPONDER_GROUP)
    assert consumers == []  # "dead" removed by housekeeping, "alive" by its clean stop
    await client.aclose()


async def test_handlers_per_operation_and_unknown_operations(redis_url: str) -> None:
    """Each op reaches its own handler; a plain function runs on a worker thread with
    the probe context; an op without a handler is answered "error", naming the known ones."""
    client = connect(redis_url)
    seen: list[tuple[str, bool, bool]] = []

    async def limit_check(req: Request) -> None:
        seen.append((req.op, nautilus_wire.is_probe(), threading.current_thread() is main))

    def breach_detection(req: Request) -> Verdict:  # blocking code is fine here
        time.sleep(0.01)
        seen.append((req.op, nautilus_wire.current_probe() is req, threading.current_thread() is main))
        return Verdict(service_us=1234)

    main = threading.current_thread()
    responder = Responder(client, "risk", {"limit_check": limit_check,
                                           "breach_detection": breach_detection},
                          self_report=None)
    stream = protocol.request_stream(PREFIX, "risk", "normal")
    for seq, op in enumerate(("limit_check", "breach_detection", "rebalance"), 1):
        await client.xadd(stream, request(seq, "normal", op=op).fields())
    await serve_until_idle(responder, 3)
    assert sorted(seen) == [("breach_detection", True, False), ("limit_check", True, True)]
    assert not nautilus_wire.is_probe()  # outside a handler
    replies = {f["op"]: f for _, f in await client.xrange(REPLY)}
    assert replies["breach_detection"]["status"] == "ok"
    assert replies["breach_detection"]["service_us"] == "1234"
    assert replies["rebalance"]["status"] == "error"
    assert replies["rebalance"]["error"] == (
        "unknown operation 'rebalance' (this engine answers: breach_detection, limit_check)")
    stats = responder.stats
    assert (stats.replies, stats.errors, stats.unknown_ops) == (3, 1, 1)
    assert stats.ok_by_op == {"limit_check": 1, "breach_detection": 1}
    await client.aclose()


async def test_handler_failures_are_logged_once_then_counted_and_bounded_on_the_wire(
        redis_url: str, caplog) -> None:
    client = connect(redis_url)
    secret = "redis://svc:hunter2@db.internal:6379/0"

    async def handle(req: Request) -> None:
        raise ConnectionError(f"cannot reach {secret}\n" + "x" * 5000)

    responder = Responder(client, "risk", {"limit_check": handle}, self_report=None)
    stream = protocol.request_stream(PREFIX, "risk", "normal")
    for seq in range(1, 6):
        await client.xadd(stream, request(seq, "normal").fields())
    with caplog.at_level(logging.WARNING, logger="nautilus_wire"):
        await serve_until_idle(responder, 5)
    errors = [f["error"] for _, f in await client.xrange(REPLY)]
    assert len(errors) == 5
    for text in errors:
        assert text.startswith("ConnectionError: cannot reach redis://svc:xxxxx@db.internal")
        assert "hunter2" not in text and "\n" not in text
        assert len(text) == handlers.MAX_ERROR_CHARS
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1 and "first time" in tracebacks[0].getMessage()
    counted = [r.getMessage() for r in caplog.records if "failing" in r.getMessage()]
    assert counted == []  # 2-5 are summed up a full minute after the traceback
    assert responder.stats.errors == 5
    await client.aclose()


async def test_consumer_name_is_stable_and_a_clean_stop_leaves_the_group(
        redis_url: str, monkeypatch) -> None:
    monkeypatch.setenv("NAUTILUS_WIRE_CONSUMER", "risk-0")
    client = connect(redis_url)
    responder = Responder(client, "risk", lambda req: None, self_report=None)
    assert responder.consumer == "risk-0"
    monkeypatch.delenv("NAUTILUS_WIRE_CONSUMER")
    assert Responder(client, "risk", lambda req: None).consumer == socket.gethostname()
    stream = protocol.request_stream(PREFIX, "risk", "normal")
    await client.xadd(stream, request(1, "normal").fields())
    async with responder:
        await eventually(lambda: responder.stats.replies == 1, timeout=5)
        names = [c["name"] for c in await client.xinfo_consumers(stream, protocol.RESPONDER_GROUP)]
        assert names == ["risk-0"]
    assert await client.xinfo_consumers(stream, protocol.RESPONDER_GROUP) == []
    await client.aclose()


async def test_a_restarted_consumer_takes_back_what_it_held_when_killed(
        redis_url: str, monkeypatch) -> None:
    """Killed mid-handler: its requests stay pending under its name. The restart, with
    the same name, serves the live ones and acknowledges the expired at once."""
    from nautilus_wire import responder as responder_module

    client = connect(redis_url)
    first = Responder(client, "risk", lambda req: None, consumer="risk-0", self_report=None)
    await first._ensure_groups()
    stream = protocol.request_stream(PREFIX, "risk", "normal")
    await client.xadd(stream, request(1, "normal").fields())
    await client.xadd(stream, request(2, "normal", deadline_s=0.2).fields())
    await client.xreadgroup(protocol.RESPONDER_GROUP, "risk-0", {stream: ">"}, count=10)  # then SIGKILL
    await asyncio.sleep(0.3)  # request 2's deadline passes
    # (A restart within CLAIM_IDLE_MS of the last read leaves them to XAUTOCLAIM: the
    # name may belong to another live process; see the next test.)
    monkeypatch.setattr(responder_module, "CLAIM_IDLE_MS", 200)
    restarted = Responder(client, "risk", lambda req: None, consumer="risk-0", self_report=None)
    started = time.monotonic()
    async with restarted:
        await eventually(lambda: restarted.stats.received == 2, timeout=5)
        took = time.monotonic() - started
    assert took < 1.0, took  # not CLAIM_IDLE_MS: its own requests, taken back at start
    assert (restarted.stats.claimed, restarted.stats.replies, restarted.stats.expired) == (2, 1, 1)
    assert (await client.xpending(stream, protocol.RESPONDER_GROUP))["pending"] == 0
    await client.aclose()


async def test_a_name_in_use_by_a_live_process_is_not_taken_back(redis_url: str, caplog) -> None:
    """Two processes given one name (gunicorn workers on one host, say): the second
    to start must not serve the first's requests in hand; it says what to fix."""
    client = connect(redis_url)
    await Responder(client, "risk", lambda req: None, consumer="web", self_report=None)._ensure_groups()
    stream = protocol.request_stream(PREFIX, "risk", "normal")
    await client.xadd(stream, request(1, "normal").fields())
    await client.xreadgroup(protocol.RESPONDER_GROUP, "web", {stream: ">"}, count=10)  # in hand
    second = Responder(client, "risk", lambda req: None, consumer="web", self_report=None)
    with caplog.at_level(logging.WARNING, logger="nautilus_wire"):
        async with second:
            # Said at its start (however late a loaded machine gets there), then it
            # keeps its hands off for a while.
            await eventually(lambda: any("NAUTILUS_WIRE_CONSUMER" in r.getMessage()
                                         for r in caplog.records), timeout=10)
            await asyncio.sleep(0.5)
    assert second.stats.received == 0
    assert any("NAUTILUS_WIRE_CONSUMER" in r.getMessage() for r in caplog.records)
    await client.aclose()


async def test_self_report_from_what_the_responder_measured(redis_url: str) -> None:
    """The first report 1 s after start; successful work only in throughput and
    latency; an expiry; the engine's own figures win; removed on a clean stop."""
    client = connect(redis_url)
    calls = 0

    async def handle(req: Request) -> Verdict:
        nonlocal calls
        calls += 1
        if calls % 4 == 0:
            raise ValueError("bad limit")
        return Verdict(service_us=2000)

    responder = Responder(client, "risk", {"limit_check": handle},
                          self_report=SelfReport(interval=1.0))
    stream = protocol.request_stream(PREFIX, "risk", "normal")
    for seq in range(1, 41):
        await client.xadd(stream, request(seq, "normal").fields())
    started = time.monotonic()
    async with responder:  # the first report (at 1 s) covers all 40
        while (raw := await client.get("metrics:risk")) is None:
            await asyncio.sleep(0.02)
        seen = time.monotonic()
        report = json.loads(raw)
        ttl = await client.ttl("metrics:risk")
    assert 10 <= ttl <= 15
    assert report["source"] == "probes"
    assert (report["error_rate"], report["latency"]) == (0.25, 2.0)  # ms, successes only
    # 30 successes over the first report's interval: 1 s, and no longer than it took
    # to see the report (a loaded machine's late timer).
    assert 30 / (seen - started) <= report["throughput"] <= 30 / 1.0, (report, seen - started)
    assert report["memory_usage"] > 10  # MiB of this process
    assert time.time() - report["timestamp"] < 2
    assert await client.get("metrics:risk") is None  # a clean stop removes it
    before = Snapshot(0.0, 0.0, 0, 0, 0, {})
    after = Snapshot(2.0, 0.5, 30, 10, 30 * 2000, {"limit_check": 30})
    built = build_report(before, after, {})
    assert (built["throughput"], built["latency"], built["error_rate"]) == (15.0, 2.0, 0.25)
    assert built["cpu_usage"] == 25.0 and built["operations"] == {"limit_check": 15.0}
    engine = build_report(before, after, {"throughput": 5000.0, "cpu_usage": 80.0})
    assert (engine["throughput"], engine["cpu_usage"], engine["source"]) == (5000.0, 80.0, "engine")
    with pytest.raises(ValueError, match="thruput"):
        build_report(before, after, {"thruput": 1})
    await client.aclose()


async def test_first_self_report_within_a_second_of_start(redis_url: str) -> None:
    client = connect(redis_url)
    responder = Responder(client, "risk", lambda req: None, self_report=SelfReport(interval=5.0))
    started = time.monotonic()
    async with responder:
        while not await client.exists("metrics:risk") and time.monotonic() - started < 3:
            await asyncio.sleep(0.02)
        took = time.monotonic() - started
    assert took < 1.5, took
    await client.aclose()


def test_responder_thread_for_a_synchronous_service(redis_url: str) -> None:
    """A sync service: handlers are plain functions; start() and stop() from its thread."""
    sync = redis.Redis.from_url(redis_url, decode_responses=True)
    served: list[str] = []
    with ResponderThread(redis_url, "risk", {"limit_check": lambda req: served.append(req.id)},
                         consumer="sync-0", self_report=None) as thread:
        stream = protocol.request_stream(PREFIX, "risk", "normal")
        deadline = time.monotonic() + 5
        while not sync.exists(stream) and time.monotonic() < deadline:
            time.sleep(0.01)
        sync.xadd(stream, request(1, "normal").fields())
        while thread.stats.replies < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert served == ["r1"] and thread.stats.replies == 1
    assert sync.xinfo_consumers(stream, protocol.RESPONDER_GROUP) == []  # left on stop
    assert not any(t.name.startswith("nautilus_wire") for t in threading.enumerate())
    with pytest.raises(ValueError, match="engine name"):
        ResponderThread(redis_url, "Risk!", lambda req: None).start()
    sync.close()
