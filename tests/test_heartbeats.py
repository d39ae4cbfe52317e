"""The I/O-free heartbeat tracker (exporter/probes/heartbeats.py), driven with
made-up times: every ack is answered, late or unknown exactly once; timeouts
come at their deadline; broadcast gaps and disconnect reasons as specified."""

from __future__ import annotations

import pytest

from exporter.probes.heartbeats import (AckKind, Disconnect, HeartbeatTracker, Loss,
                                        broadcast_gap, loss_reason)


def test_an_ack_in_time_has_its_latency_from_the_start() -> None:
    t: HeartbeatTracker[str] = HeartbeatTracker(timeout=2.0)
    hb = t.new_id()
    t.track(hb, "conn-a", start=10.0, due=10.0)
    assert len(t) == 1
    ack = t.ack(hb, 10.25)
    assert (ack.kind, ack.owner, ack.latency) == (AckKind.ANSWERED, "conn-a", 0.25)
    assert len(t) == 0
    assert t.ack(hb, 10.3).kind is AckKind.UNKNOWN  # a duplicate is not a second reply


def test_timeouts_come_at_the_deadline_from_the_scheduled_time() -> None:
    t: HeartbeatTracker[str] = HeartbeatTracker(timeout=1.0)
    ids = [t.new_id() for _ in range(3)]
    assert len(set(ids)) == 3
    # Sent late (start 5.4) for a heartbeat due at 5.0: the deadline is due + timeout.
    t.track(ids[0], "a", start=5.4, due=5.0)
    t.track(ids[1], "b", start=5.5, due=5.5)
    t.track(ids[2], "c", start=7.0, due=7.0)
    assert t.expire(5.99) == []
    assert t.expire(6.0) == ["a"]
    assert t.expire(6.6) == ["b"]
    assert len(t) == 1
    # Their acks, when they come, are late — once each.
    assert t.ack(ids[0], 6.7).kind is AckKind.LATE
    assert t.ack(ids[0], 6.8).kind is AckKind.UNKNOWN
    ack = t.ack(ids[2], 7.5)
    assert ack.kind is AckKind.ANSWERED and ack.latency == pytest.approx(0.5)
    assert t.expire(100.0) == []  # answered: never a timeout


def test_an_error_reply_is_neither_a_reply_nor_a_timeout() -> None:
    t: HeartbeatTracker[str] = HeartbeatTracker(timeout=1.0)
    hb = t.new_id()
    t.track(hb, "a", 0.0, 0.0)
    t.error(hb)
    assert len(t) == 0 and t.expire(5.0) == []
    assert t.ack(hb, 5.0).kind is AckKind.UNKNOWN
    t.error("never-sent")  # harmless


def test_remembered_late_ids_are_bounded() -> None:
    t: HeartbeatTracker[int] = HeartbeatTracker(timeout=0.1, max_late=10)
    ids = []
    for k in range(11):
        ids.append(t.new_id())
        t.track(ids[-1], k, 0.0, 0.0)
    assert t.expire(1.0) == list(range(11))
    # Past the bound the memory is let go: a very late ack is then unknown, not late.
    assert t.ack(ids[0], 2.0).kind is AckKind.UNKNOWN


def test_an_unknown_id_is_unknown() -> None:
    t: HeartbeatTracker[str] = HeartbeatTracker(timeout=1.0)
    assert t.ack("zz", 1.0) == t.ack("", 1.0)
    assert t.ack("zz", 1.0).kind is AckKind.UNKNOWN and t.ack("zz", 1.0).owner is None


@pytest.mark.parametrize(("last", "seq", "missed", "new_last"), [
    (0, 17, 0, 17),   # the first frame a subscription sees misses nothing
    (17, 18, 0, 18),
    (17, 21, 3, 21),  # 18, 19, 20
    (21, 21, 0, 21),  # a repeat
    (21, 5, 0, 21),   # an older frame does not move the mark back
])
def test_broadcast_gaps(last: int, seq: int, missed: int, new_last: int) -> None:
    assert broadcast_gap(last, seq) == (missed, new_last)


@pytest.mark.parametrize(("loss", "reason"), [
    (Loss(None, False), Disconnect.DROPPED),
    (Loss(1000, False), Disconnect.CLOSED),
    (Loss(1001, False), Disconnect.CLOSED),
    (Loss(4001, False), Disconnect.UNAUTHORIZED),
    (Loss(None, True), Disconnect.PROTOCOL_ERROR),
    (Loss(1002, True), Disconnect.PROTOCOL_ERROR),  # we closed it after a bad frame
    (Loss(4001, True), Disconnect.PROTOCOL_ERROR),
])
def test_disconnect_reasons(loss: Loss, reason: Disconnect) -> None:
    assert loss_reason(loss) is reason
