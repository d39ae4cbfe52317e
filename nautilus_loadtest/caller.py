"""Request/reply calls over protocol v1 for benchmark runs: every reply matched by id."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import redis.asyncio as aioredis
from nautilus_wire.protocol import Reply, Request
from nautilus_wire.redis_client import BUS_ERRORS, ready, reset_after
from nautilus_wire.replies import Malformed
from nautilus_wire.requester import make_transport


class Caller:
    def __init__(self, client: aioredis.Redis, transport: str, prefix: str, prober: str) -> None:
        self._client = client
        self.transport = make_transport(transport, client, prefix, prober)
        self.prober = prober
        self._waiting: dict[str, asyncio.Future[Reply]] = {}
        self._seq: dict[tuple[str, str], int] = {}
        self._token = os.urandom(4).hex()
        self._n = 0
        self._stop = asyncio.Event()
        self._rx: asyncio.Task[None] | None = None
        # Requests made in the same turn of the event loop (a trading request's legs,
        # closed-loop workers answered by one read) leave in one pipeline.
        self._outbox: list[Request] = []
        self._sent: asyncio.Future[None] | None = None
        self._flushes: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Caller:
        await ready(self._client)
        await self.transport.start()
        self._rx = asyncio.create_task(self._receive())
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._rx is not None:
            await self._rx
        await self.transport.close()

    @property
    def requests(self) -> int:
        """Requests made, sent or not: at least as many as this caller added to the
        engines' request streams (what a run subtracts to find other clients')."""
        return self._n

    async def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                replies = await self.transport.receive()
            except BUS_ERRORS as exc:  # Redis gone or failing over: its requests time out
                await reset_after(self._client, exc)
                await asyncio.sleep(0.1)
                continue
            for reply in replies:
                if isinstance(reply, Malformed):
                    fut = self._waiting.pop(reply.id or "", None)
                    if fut is not None and not fut.done():
                        fut.set_exception(ValueError(reply.reason))
                    continue
                fut = self._waiting.pop(reply.id, None)
                if fut is not None and not fut.done():
                    fut.set_result(reply)

    async def call(self, engine: str, op: str, timeout: float = 2.0, priority: str = "normal",
                   payload: str = "") -> Reply:
        """One request; its reply, TimeoutError, or the send's RedisError."""
        self._n += 1
        key = (engine, op)
        self._seq[key] = seq = self._seq.get(key, 0) + 1
        req = Request(f"{self._token}{self._n:x}", self.prober, engine, op, seq, priority,
                      self.transport.reply_key, int((time.time() + timeout) * 1000), payload)
        fut: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiting[req.id] = fut
        try:
            await self._send(req)
            async with asyncio.timeout(timeout):
                return await fut
        finally:
            self._waiting.pop(req.id, None)

    async def _send(self, req: Request) -> None:
        """Queue `req` for this turn's pipeline; returns when it is sent (or raises
        the send's error). Nothing waits longer than the turn it was asked in."""
        self._outbox.append(req)
        if self._sent is None:
            self._sent = asyncio.get_running_loop().create_future()
            # A send whose every caller gave up still has its error looked at.
            self._sent.add_done_callback(lambda f: f.cancelled() or f.exception())
            task = asyncio.create_task(self._flush())
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)
        await asyncio.shield(self._sent)

    async def _flush(self) -> None:
        batch, self._outbox = self._outbox, []
        sent, self._sent = self._sent, None
        assert sent is not None
        try:
            await self.transport.send(batch)
        except Exception as exc:  # the callers' to count, as each send's error was
            sent.set_exception(exc)
        else:
            sent.set_result(None)
        finally:
            if not sent.done():  # the flush itself was cancelled: so are its callers
                sent.cancel()
