"""The requesting side of protocol v1: send requests, receive and decode replies.

Two transports speak protocol v1 over Redis: `streams` (XADD / XREAD) and
`pubsub` (PUBLISH / SUBSCRIBE). Both decode replies here, so the prober only
sees `Reply` objects or `Malformed` records.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol, cast

import redis.asyncio as aioredis

from . import protocol
from .protocol import ProtocolError, Reply, Request

# Read at most this long per receive call: redis-py ignores cancellation during
# a blocking XREAD, so readers block briefly and check their stop flag instead.
RECEIVE_BLOCK_S = 0.1
RECEIVE_BATCH = 4096
# Approximate cap on request streams, so a missing responder cannot fill Redis: at
# most this many entries, and at most about REQUEST_STREAM_MAX_BYTES of them (64 KiB
# payloads: ~4,000 entries, not 6.5 GB).
REQUEST_STREAM_MAXLEN = 100_000
REQUEST_STREAM_MAX_BYTES = 256 << 20


def request_stream_maxlen(payload_bytes: int) -> int:
    return max(100, min(REQUEST_STREAM_MAXLEN, REQUEST_STREAM_MAX_BYTES // (payload_bytes + 400)))


@dataclass(slots=True)
class Malformed:
    """A reply that broke the protocol; `id` is its correlation id when readable."""

    reason: str
    id: str | None


def _decode(fields: Any, entry_id: str | bytes | None = None) -> Reply | Malformed:
    """A reply's fields; `entry_id`, its stream entry's id, says when it entered the bus."""
    try:
        reply = Reply.from_fields(fields)
    except ProtocolError as exc:
        raw_id = fields.get("id") if isinstance(fields, dict) else None
        return Malformed(str(exc), raw_id if isinstance(raw_id, str) else None)
    if entry_id is not None:
        if isinstance(entry_id, bytes):  # a client without decode_responses
            entry_id = entry_id.decode("ascii", "replace")
        ms = entry_id.partition("-")[0]
        reply.bus_ms = int(ms) if ms.isascii() and ms.isdigit() else None
    return reply


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
                out.append(_decode(fields, entry_id))
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
                out.append(_decode_json(msg["data"]))
            if len(out) >= RECEIVE_BATCH:
                break
            msg = await self._pubsub.get_message(timeout=0)
        return out

    async def close(self) -> None:
        await cast(Any, self._pubsub).aclose()


def _decode_json(data: str | bytes) -> Reply | Malformed:
    """A pubsub reply: parsed once, then decoded like a stream entry's fields."""
    try:
        fields = protocol.json_object(data)
    except ProtocolError as exc:
        return Malformed(str(exc), None)
    return _decode(fields)


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
