"""The load test's request path (nautilus_loadtest/caller.py): requests made in one
turn of the event loop leave in one pipeline, every reply still matched by id, and a
failed send reaches every caller in it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from nautilus_loadtest.caller import Caller
from nautilus_testkit import free_port
from nautilus_wire.protocol import DEFAULT_PREFIX, TRADING_REQUEST_LEGS
from nautilus_wire.redis_client import connect

from .conftest import write_engines


def counting(caller: Caller) -> list[int]:
    """The size of each batch the caller's transport is asked to send."""
    sizes: list[int] = []
    send = caller.transport.send

    async def counted(requests: list) -> None:
        sizes.append(len(requests))
        await send(requests)

    caller.transport.send = counted  # type: ignore[method-assign]  # a spy on the real send
    return sizes


async def test_a_trading_requests_legs_leave_in_one_pipeline(redis_url: str, spawn,
                                                             tmp_path: Path) -> None:
    engines = {e: {op: {"service_time": "1ms"}} for e, op in TRADING_REQUEST_LEGS}
    spawn("engines", "--config.file", str(write_engines(tmp_path / "syn.yml", redis_url, engines)))
    client = connect(redis_url)
    async with Caller(client, "streams", DEFAULT_PREFIX, "caller_test") as caller:
        for _ in range(30):  # the engines are up when every leg is answered
            try:
                await asyncio.gather(*(caller.call(e, op, timeout=0.5)
                                       for e, op in TRADING_REQUEST_LEGS))
                break
            except TimeoutError:
                continue
        sizes = counting(caller)
        for _ in range(20):
            replies = await asyncio.gather(*(caller.call(e, op) for e, op in TRADING_REQUEST_LEGS))
            assert [(r.engine, r.op, r.status) for r in replies] == \
                [(e, op, "ok") for e, op in TRADING_REQUEST_LEGS]
        assert sizes == [4] * 20
        # Sixteen closed-loop workers started together: one pipeline of 64.
        await asyncio.gather(*(caller.call(e, op) for _ in range(16)
                               for e, op in TRADING_REQUEST_LEGS))
        assert sizes[20:] == [64]
    await client.aclose()


async def test_a_failed_send_fails_every_request_in_it() -> None:
    client = connect(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens
    async with Caller(client, "streams", DEFAULT_PREFIX, "caller_test") as caller:
        sizes = counting(caller)
        results = await asyncio.gather(*(caller.call(e, op, timeout=1.0)
                                         for e, op in TRADING_REQUEST_LEGS),
                                       return_exceptions=True)
        assert sizes == [4]
        assert all(isinstance(r, RedisConnectionError) for r in results), results
        # The next turn's requests get a send of their own.
        with pytest.raises(RedisConnectionError):
            await caller.call("risk", "limit_check", timeout=1.0)
        assert sizes == [4, 1]
    await client.aclose()
