"""The responder library that engines embed: priorities, deadlines, acks, bad input."""

from __future__ import annotations

import asyncio
import time

from nautilus_wire import protocol
from nautilus_wire.protocol import Request
from nautilus_wire.responder import Responder, Verdict
from nautilus_wire.redis_client import connect

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
    assert replies[1][1]["error"] == "limit table unavailable"
    assert (await client.xpending(stream, "responders"))["pending"] == 0
    await client.aclose()


async def test_requests_of_a_dead_consumer_are_claimed(redis_url: str, monkeypatch) -> None:
    """A consumer that read requests and died leaves them pending: a live responder
    takes them over (XAUTOCLAIM) and answers them; the dead consumer is removed."""
    from nautilus_wire import responder as responder_module

    monkeypatch.setattr(responder_module, "CLAIM_IDLE_MS", 0)
    monkeypatch.setattr(responder_module, "CONSUMER_IDLE_MS", 0)
    client = connect(redis_url)
    responder = Responder(client, "risk", lambda req: asyncio.sleep(0), consumer="alive")
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
    assert [c["name"] for c in consumers] == ["alive"]
    await client.aclose()
