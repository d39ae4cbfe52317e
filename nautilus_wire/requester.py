"""The requesting side of protocol v1: send requests, receive and decode replies.

Two transports speak protocol v1 over Redis: `streams` (XADD / XREAD) and
`pubsub` (PUBLISH / SUBSCRIBE). Both decode replies with replies.py, so the prober
only sees `Reply` objects or `Malformed` records.
"""

from __future__ import annotations

import time
from typing import Any, Protocol, cast

import redis.asyncio as aioredis

from . import protocol
from .protocol import Reply, Request
from .replies import (decode, decode_json, Malformed, RECEIVE_BATCH, RECEIVE_BLOCK_S,
                      request_stream_maxlen)

class ProberTransport(Protocol):
    reply_key: str

    async def start(self) -> None: ...
    async def send(self, requests: list[Request]) -> None: ...
    async def receive(self) -> list[Reply | Malformed]: ...
    async def close(self) -> None: ...


class StreamsTransport:
    def __init__(self, client: aioredis.Redis, prefix: str, prober: str) -> None:
        self._redis = client
        self._prefix = prefix
        self.reply_key = protocol.reply_key(prefix, prober)
        # Only replies written after start-up: an id just below "now".
        self.last_id = f"{int(time.time() * 1000)}-0"

    async def start(self) -> None:
        pass

    async def send(self, requests: list[Request]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for req in requests:
            pipe.xadd(protocol.request_stream(self._prefix, req.engine, req.prio),
                      cast(Any, req.fields()),
                      maxlen=request_stream_maxlen(len(req.payload)), approximate=True)
        await pipe.execute()

    async def receive(self) -> list[Reply | Malformed]:
        resp = await self._redis.xread({self.reply_key: self.last_id},
                                       count=RECEIVE_BATCH, block=int(RECEIVE_BLOCK_S * 1000))
        out: list[Reply | Malformed] = []
        for _stream, entries in resp or ():
            for entry_id, fields in entries:
                self.last_id = entry_id
                out.append(decode(fields, entry_id))
        return out

    async def close(self) -> None:
        pass


class PubSubTransport:
    def __init__(self, client: aioredis.Redis, prefix: str, prober: str) -> None:
        self._redis = client
        self._prefix = prefix
        self.reply_key = protocol.reply_key(prefix, prober)
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)

    async def start(self) -> None:
        await self._pubsub.subscribe(self.reply_key)

    async def send(self, requests: list[Request]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for req in requests:
            pipe.publish(protocol.request_channel(self._prefix, req.engine), req.to_json())
        await pipe.execute()

    async def receive(self) -> list[Reply | Malformed]:
        if not self._pubsub.subscribed:
            await self._pubsub.subscribe(self.reply_key)
        out: list[Reply | Malformed] = []
        msg = await self._pubsub.get_message(timeout=RECEIVE_BLOCK_S)
        while msg is not None:
            if msg.get("type") == "message":
                out.append(decode_json(msg["data"]))
            if len(out) >= RECEIVE_BATCH:
                break
            msg = await self._pubsub.get_message(timeout=0)
        return out

    async def close(self) -> None:
        await cast(Any, self._pubsub).aclose()


def make_transport(kind: str, client: aioredis.Redis, prefix: str, prober: str,
                   thin: bool = True) -> ProberTransport:
    """The prober's transport. Streams go over the thin hiredis path
    (thin_streams.py) where it applies, unless `thin` is False; redis-py otherwise."""
    if kind == "streams":
        redis_py = StreamsTransport(client, prefix, prober)
        if thin:
            from .thin_streams import settings, ThinStreamsTransport

            if (where := settings(client)) is not None:
                return ThinStreamsTransport(where, prefix, prober, redis_py.last_id)
        return redis_py
    if kind == "pubsub":
        return PubSubTransport(client, prefix, prober)
    raise ValueError(f"unknown transport {kind!r}")
