"""Wire protocol v1: the contract between the prober and the engines' responders.

I/O-free: key names, message encoding and validation only. The prober
(`exporter.probes.messagebus`), the responder library (`nautilus_wire.responder`) and
the synthetic engines all use this module, so they cannot drift apart.
See docs/protocol.md.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Mapping

VERSION = "1"
DEFAULT_PREFIX = "nautilus:probe"
RESPONDER_GROUP = "responders"
# Highest first: responders serve them in this order.
PRIORITIES: tuple[str, ...] = ("critical", "high", "normal", "low")
TRANSPORTS: tuple[str, ...] = ("streams", "pubsub")
STATUS_OK = "ok"
STATUS_ERROR = "error"

# The nine Nautilus engines and the operations the migration plan names for them.
ENGINE_OPERATIONS: dict[str, tuple[str, ...]] = {
    "analytics": ("calculation", "pnl_update", "report"),
    "risk": ("limit_check", "breach_detection", "alert"),
    "factor": ("factor_calculation", "cross_correlation", "full_cycle"),
    "ml": ("process",),
    "features": ("process",),
    "websocket": ("process",),
    "strategy": ("process",),
    "marketdata": ("process",),
    "portfolio": ("process",),
}
ENGINES: tuple[str, ...] = tuple(ENGINE_OPERATIONS)
# The containerized "trading request" fans out to these (engine, op) legs in parallel.
TRADING_REQUEST_LEGS: tuple[tuple[str, str], ...] = (
    ("risk", "limit_check"), ("analytics", "calculation"),
    ("factor", "factor_calculation"), ("ml", "process"))
# The serial pre-migration service (the synthetic monolith): measured, never judged
# against the containerized targets.
BASELINE_ENGINE = "monolith"

# Engine, operation and prober names become Redis keys and label values. \A..\Z:
# `$` would also match before a trailing newline ("risk\n").
NAME_RE = re.compile(r"\A[a-z][a-z0-9_]{0,62}\Z")
# Correlation ids: printable ASCII without spaces, at most 64 characters.
ID_RE = re.compile(r"\A[!-~]{1,64}\Z")
# Key prefixes: what Redis key names and ACL patterns handle plainly (no braces:
# they would change the Cluster hash tags; no spaces or control characters).
PREFIX_RE = re.compile(r"\A[A-Za-z0-9_.:-]{1,64}\Z")


class ProtocolError(ValueError):
    """A message that does not follow protocol v1."""


def request_stream(prefix: str, engine: str, priority: str) -> str:
    """Stream a responder reads; the braces are a Redis Cluster hash tag."""
    return f"{prefix}:{{{engine}}}:req:{priority}"


def request_channel(prefix: str, engine: str) -> str:
    return f"{prefix}:{{{engine}}}:req"


def reply_key(prefix: str, prober: str) -> str:
    """The prober's reply stream (streams) or channel (pubsub)."""
    return f"{prefix}:{{{prober}}}:reply"


def report_key(engine: str) -> str:
    """Key under which an engine self-reports its metrics as JSON (the migration plan's format)."""
    return f"metrics:{engine}"


# A self-report's optional "operations" field: at most this many, each named like an
# operation (the exporter turns them into label values, so they stay bounded).
MAX_REPORT_OPERATIONS = 32


def _text(fields: Mapping[Any, Any], name: str, *, required: bool = True) -> str:
    value = fields.get(name)
    if value is None:  # a client without decode_responses gives bytes keys
        value = fields.get(name.encode())
    if value is None:
        if required:
            raise ProtocolError(f"missing field {name!r}")
        return ""
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError as exc:
            raise ProtocolError(f"field {name!r} is not UTF-8") from exc
    if isinstance(value, str):
        # Clients decode with surrogateescape (redis_client.py): a lone surrogate
        # is a byte that was not UTF-8.
        if not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:
                raise ProtocolError(f"field {name!r} is not UTF-8") from None
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ProtocolError(f"field {name!r} has type {type(value).__name__}")


def _int(fields: Mapping[Any, Any], name: str) -> int:
    """A non-negative integer in plain ASCII digits (no sign, space or underscore)."""
    text = _text(fields, name)
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        raise ProtocolError(f"field {name!r} is not a non-negative integer: {text[:40]!r}")
    return int(text)


def _name(fields: Mapping[Any, Any], name: str) -> str:
    text = _text(fields, name)
    if not NAME_RE.match(text):
        raise ProtocolError(f"field {name!r} is not a name: {text[:40]!r}")
    return text


def _id(fields: Mapping[Any, Any]) -> str:
    text = _text(fields, "id")
    if not ID_RE.match(text):
        raise ProtocolError(f"field 'id' is not a correlation id: {text[:40]!r}")
    return text


def _check_version(fields: Mapping[Any, Any]) -> None:
    version = _text(fields, "v")
    if version != VERSION:
        raise ProtocolError(f"unsupported protocol version {version[:10]!r}")


def json_object(data: str | bytes) -> dict[str, Any]:
    """A pubsub message's JSON object, or ProtocolError."""
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("JSON message is not an object")
    return obj


@dataclass(slots=True)
class Request:
    id: str
    prober: str
    engine: str
    op: str
    seq: int
    prio: str
    reply_to: str
    deadline_ms: int
    payload: str = ""

    def fields(self) -> dict[str, str]:
        """Flat string fields for XADD."""
        return {
            "v": VERSION, "id": self.id, "prober": self.prober, "engine": self.engine,
            "op": self.op, "seq": str(self.seq), "prio": self.prio,
            "reply_to": self.reply_to, "deadline_ms": str(self.deadline_ms),
            "payload": self.payload,
        }

    def to_json(self) -> str:
        obj: dict[str, Any] = self.fields()
        obj["seq"], obj["deadline_ms"] = self.seq, self.deadline_ms
        return json.dumps(obj, separators=(",", ":"))

    @classmethod
    def from_fields(cls, fields: Mapping[Any, Any]) -> Request:
        _check_version(fields)
        prio = _text(fields, "prio")
        if prio not in PRIORITIES:
            raise ProtocolError(f"unknown priority {prio[:20]!r}")
        return cls(
            id=_id(fields), prober=_name(fields, "prober"),
            engine=_name(fields, "engine"), op=_name(fields, "op"),
            seq=_int(fields, "seq"), prio=prio, reply_to=_text(fields, "reply_to"),
            deadline_ms=_int(fields, "deadline_ms"),
            payload=_text(fields, "payload", required=False),
        )

    @classmethod
    def from_json(cls, data: str | bytes) -> Request:
        return cls.from_fields(json_object(data))


@dataclass(slots=True)
class Reply:
    id: str
    seq: int
    engine: str
    op: str
    status: str
    service_us: int
    error: str = ""
    # Not a field of the protocol: when the reply entered the bus, in milliseconds of
    # Redis' clock (its stream entry id), where the transport knows it. A prober's own
    # delays in reading it do not move this.
    bus_ms: int | None = field(default=None, compare=False)

    @classmethod
    def answering(cls, req: Request, *, error: str = "", service_us: int = 0) -> Reply:
        status = STATUS_ERROR if error else STATUS_OK
        return cls(req.id, req.seq, req.engine, req.op, status, service_us, error)

    def fields(self) -> dict[str, str]:
        out = {
            "v": VERSION, "id": self.id, "seq": str(self.seq), "engine": self.engine,
            "op": self.op, "status": self.status, "service_us": str(self.service_us),
        }
        if self.status == STATUS_ERROR:
            out["error"] = self.error
        return out

    def to_json(self) -> str:
        obj: dict[str, Any] = self.fields()
        obj["seq"], obj["service_us"] = self.seq, self.service_us
        return json.dumps(obj, separators=(",", ":"))

    @classmethod
    def from_fields(cls, fields: Mapping[Any, Any]) -> Reply:
        _check_version(fields)
        status = _text(fields, "status")
        if status not in (STATUS_OK, STATUS_ERROR):
            raise ProtocolError(f"unknown status {status[:20]!r}")
        service_us = _int(fields, "service_us")
        return cls(
            id=_id(fields), seq=_int(fields, "seq"), engine=_name(fields, "engine"),
            op=_name(fields, "op"), status=status, service_us=service_us,
            error=_text(fields, "error", required=status == STATUS_ERROR),
        )

    @classmethod
    def from_json(cls, data: str | bytes) -> Reply:
        return cls.from_fields(json_object(data))
