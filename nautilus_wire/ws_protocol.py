"""The engine-status WebSocket protocol: frames and their validation, no I/O.

Shared by the WebSocket probe (`exporter.probes.websocket`) and the synthetic
WebSocket engine (`synthetic.websocket_engine`). See docs/protocol.md.
"""

from __future__ import annotations

import json
from datetime import datetime, UTC
from typing import Any

PATH = "/ws/engine/status"
# Where the three WebSocket engines of the migration plan listen (config/exporter.yml's
# targets): the local stack's default and `loadtest websocket`'s when no stack is found.
DEFAULT_PORTS = (8080, 8081, 8082)
UNAUTHORIZED = 4001  # close code for a missing or wrong ?token=

# client frame type -> the server's reply type
REPLIES = {
    "heartbeat": "heartbeat_ack",
    "subscribe": "subscription_confirmed",
    "unsubscribe": "unsubscription_confirmed",
    "get_stats": "connection_stats",
}
STATUS = "engine_status"
BROADCAST = "broadcast"
ERROR = "error"


def local_url(port: int) -> str:
    """The engine-status endpoint of a WebSocket engine on this machine."""
    return f"ws://127.0.0.1:{port}{PATH}"


class WsProtocolError(ValueError):
    """A frame that does not follow the engine-status protocol."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def encode(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"))


def client_frame(kind: str, *, id: str | None = None, topic: str | None = None) -> str:
    obj: dict[str, Any] = {"type": kind}
    if id is not None:
        obj["id"] = id
    if topic is not None:
        obj["topic"] = topic
    return encode(obj)


def parse(data: str | bytes) -> dict[str, Any]:
    """A frame as a dict with a string `type`, or WsProtocolError."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise WsProtocolError("frame is not JSON") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise WsProtocolError("frame is not an object with a string type")
    return obj


def reply_to(frame: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """The server's reply to a valid client frame, echoing its id."""
    out: dict[str, Any] = {"type": REPLIES[frame["type"]], **fields, "timestamp": now_iso()}
    if "id" in frame:
        out["id"] = frame["id"]
    if "topic" in frame:
        out["topic"] = frame["topic"]
    return out


def error(message: str, id: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": ERROR, "message": message, "timestamp": now_iso()}
    if id is not None:
        out["id"] = id
    return out
