"""A requester's reading of replies, shared by both streams transports (redis-py's in
requester.py, the thin one in thin_streams.py): how much one read takes, and a reply's
fields decoded into a `Reply` or a `Malformed` record. A leaf: protocol.py only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .protocol import json_object, ProtocolError, Reply

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


def decode(fields: Any, entry_id: str | bytes | None = None) -> Reply | Malformed:
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


def decode_json(data: str | bytes) -> Reply | Malformed:
    """A pubsub reply: parsed once, then decoded like a stream entry's fields."""
    try:
        fields = json_object(data)
    except ProtocolError as exc:
        return Malformed(str(exc), None)
    return decode(fields)
