"""The buffered MessageBus client against a real Redis."""

from __future__ import annotations

import json

import pytest

from nautilus_loadtest.buffered_bus import PRESETS, BufferedMessageBus, BufferPolicy, BusConfig, Priority
from nautilus_testkit import eventually
from nautilus_wire.redis_client import connect


def test_priorities_accept_enums_names_and_numbers() -> None:
    assert Priority.parse("HIGH") is Priority.HIGH
    assert Priority.parse("critical") is Priority.CRITICAL
    assert Priority.parse(Priority.LOW) is Priority.LOW
    assert Priority.parse(1) is Priority.NORMAL
    with pytest.raises(ValueError, match="unknown priority 'URGENT'"):
        Priority.parse("URGENT")
    assert set(PRESETS) >= {"high_frequency", "low_latency", "bulk"}


async def test_flush_by_size_and_by_interval(redis_url: str) -> None:
    client = connect(redis_url)
    config = BusConfig({p: BufferPolicy(10, 0.2) for p in Priority})
    async with BufferedMessageBus(client, config=config, transport="streams") as bus:
        for i in range(25):
            await bus.publish("orders", {"n": i}, "HIGH")
        # Two full batches went at once; five wait for the interval.
        assert bus.stats.acknowledged == 20 and bus.stats.flushes == 2
        assert await client.xlen("nautilus:bus:orders") == 20
        # The rest go when their 0.2 s interval is up.
        await eventually(lambda: bus.stats.acknowledged == 25, 2)
    entries = await client.xrange("nautilus:bus:orders")
    assert [json.loads(f["data"])["n"] for _, f in entries] == list(range(25))
    await client.aclose()


async def test_higher_priorities_flush_first(redis_url: str) -> None:
    client = connect(redis_url)
    config = BusConfig({p: BufferPolicy(1000, 10.0) for p in Priority})
    bus = BufferedMessageBus(client, config=config, transport="streams")
    for prio in ("LOW", "NORMAL", "HIGH", "CRITICAL"):
        await bus.publish("mixed", prio, prio)
    assert bus.stats.acknowledged == 0  # nothing is counted before Redis acknowledges it
    await bus.flush()
    entries = await client.xrange("nautilus:bus:mixed")
    assert [f["priority"] for _, f in entries] == ["CRITICAL", "HIGH", "NORMAL", "LOW"]
    assert bus.stats.by_priority == {"CRITICAL": 1, "HIGH": 1, "NORMAL": 1, "LOW": 1}
    await client.aclose()


async def test_a_failed_flush_keeps_the_messages(redis_server) -> None:
    client = connect(redis_server.url)
    config = BusConfig({p: BufferPolicy(1000, 10.0) for p in Priority})
    bus = BufferedMessageBus(client, config=config, transport="streams")
    await bus.publish("t", "a")
    redis_server.kill()
    await bus.flush()
    assert bus.stats.failed_flushes == 1 and bus.stats.acknowledged == 0
    await bus.publish("t", "b")
    redis_server.start()
    await bus.flush()
    assert bus.stats.acknowledged == 2
    assert [f["data"] for _, f in await client.xrange("nautilus:bus:t")] == ["a", "b"]
    await client.aclose()
