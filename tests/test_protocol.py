"""Wire protocol v1: names and encodings exactly as docs/protocol.md states."""

from __future__ import annotations

import pytest

from nautilus_wire import protocol
from nautilus_wire.protocol import ProtocolError, Reply, Request

REQ = Request("ab12", "exporter", "risk", "limit_check", 7, "high",
              "nautilus:probe:{exporter}:reply", 1_800_000_000_000, "xx")


def test_key_names() -> None:
    assert protocol.request_stream("nautilus:probe", "risk", "high") == "nautilus:probe:{risk}:req:high"
    assert protocol.request_channel("nautilus:probe", "risk") == "nautilus:probe:{risk}:req"
    assert protocol.reply_key("nautilus:probe", "exporter") == "nautilus:probe:{exporter}:reply"
    assert protocol.report_key("ml") == "metrics:ml"
    assert protocol.PRIORITIES == ("critical", "high", "normal", "low")


def test_request_fields_round_trip() -> None:
    fields = REQ.fields()
    assert fields == {"v": "1", "id": "ab12", "prober": "exporter", "engine": "risk",
                      "op": "limit_check", "seq": "7", "prio": "high",
                      "reply_to": "nautilus:probe:{exporter}:reply",
                      "deadline_ms": "1800000000000", "payload": "xx"}
    assert Request.from_fields(fields) == REQ
    assert Request.from_fields({k.encode(): v.encode() for k, v in fields.items()}) == REQ
    assert Request.from_json(REQ.to_json()) == REQ


def test_reply_round_trip() -> None:
    ok = Reply.answering(REQ, service_us=120)
    assert ok.fields() == {"v": "1", "id": "ab12", "seq": "7", "engine": "risk",
                           "op": "limit_check", "status": "ok", "service_us": "120"}
    err = Reply.answering(REQ, error="limit breached", service_us=5)
    assert err.fields()["status"] == "error" and err.fields()["error"] == "limit breached"
    for reply in (ok, err):
        assert Reply.from_fields(reply.fields()) == reply
        assert Reply.from_json(reply.to_json()) == reply


@pytest.mark.parametrize(("change", "message"), [
    ({"v": "2"}, "unsupported protocol version '2'"),
    ({"seq": "seven"}, "field 'seq' is not a non-negative integer: 'seven'"),
    ({"status": "maybe"}, "unknown status 'maybe'"),
    ({"service_us": "-1"}, "field 'service_us' is not a non-negative integer: '-1'"),
    ({"id": None}, "missing field 'id'"),
    ({"status": "error"}, "missing field 'error'"),
    # Strict fields: only ASCII digits, only names, only printable ids, only UTF-8.
    ({"seq": "+7"}, "field 'seq' is not a non-negative integer"),
    ({"seq": " 7"}, "field 'seq' is not a non-negative integer"),
    ({"seq": "7_0"}, "field 'seq' is not a non-negative integer"),
    ({"seq": "\u0667"}, "field 'seq' is not a non-negative integer"),  # Arabic-Indic 7
    ({"seq": "9" * 20}, "field 'seq' is not a non-negative integer"),
    ({"engine": "Risk!"}, "field 'engine' is not a name"),
    ({"id": "a b"}, "field 'id' is not a correlation id"),
    ({"id": "x" * 65}, "field 'id' is not a correlation id"),
    ({"id": "ab\udcff12"}, "field 'id' is not UTF-8"),  # a byte 0xff, surrogate-escaped
    ({"op": b"limit\xffcheck"}, "field 'op' is not UTF-8"),
])
def test_bad_replies_are_rejected(change: dict, message: str) -> None:
    fields = {**Reply.answering(REQ, service_us=1).fields(), **change}
    fields = {k: v for k, v in fields.items() if v is not None}
    with pytest.raises(ProtocolError, match=message.replace("(", r"\(")):
        Reply.from_fields(fields)


def test_bad_requests_are_rejected() -> None:
    with pytest.raises(ProtocolError, match="unknown priority"):
        Request.from_fields({**REQ.fields(), "prio": "urgent"})
    with pytest.raises(ProtocolError, match="not JSON"):
        Request.from_json("{nope")
    with pytest.raises(ProtocolError, match="not an object"):
        Reply.from_json("[1]")


def test_json_messages_carry_integers_compactly() -> None:
    import json

    text = REQ.to_json()
    assert " " not in text
    obj = json.loads(text)
    assert obj["seq"] == 7 and obj["deadline_ms"] == REQ.deadline_ms and obj["v"] == "1"
    reply = Reply.answering(REQ, service_us=120).to_json()
    assert " " not in reply
    assert json.loads(reply)["seq"] == 7 and json.loads(reply)["service_us"] == 120
    # Integers given as JSON numbers, and a request without a payload, are read back.
    assert Request.from_fields({**json.loads(text), "payload": None} | {"seq": 7}).seq == 7
    fields = {k: v for k, v in REQ.fields().items() if k != "payload"}
    assert Request.from_fields(fields).payload == ""


@pytest.mark.parametrize(("change", "message"), [
    ({"seq": "x" * 60}, f"field 'seq' is not a non-negative integer: {'x' * 40!r}"),
    ({"engine": "E" * 60}, f"field 'engine' is not a name: {'E' * 40!r}"),
    ({"id": " " * 60}, f"field 'id' is not a correlation id: {' ' * 40!r}"),
    ({"v": "v" * 30}, f"unsupported protocol version {'v' * 10!r}"),
    ({"status": "s" * 30}, f"unknown status {'s' * 20!r}"),
    ({"seq": True}, "field 'seq' has type bool"),
])
def test_messages_are_exact_and_truncated(change: dict, message: str) -> None:
    with pytest.raises(ProtocolError) as info:
        Reply.from_fields({**Reply.answering(REQ).fields(), **change})
    assert str(info.value) == message


def test_limits() -> None:
    assert Reply.from_fields({**Reply.answering(REQ).fields(), "seq": "9" * 19}).seq == int("9" * 19)
    assert Reply.from_fields({**Reply.answering(REQ).fields(), "seq": 7}).seq == 7
    with pytest.raises(ProtocolError) as info:
        Request.from_fields({**REQ.fields(), "prio": "p" * 30})
    assert str(info.value) == f"unknown priority {'p' * 20!r}"
    with pytest.raises(ProtocolError) as info:
        Reply.from_json("[1]")
    assert str(info.value) == "JSON message is not an object"
