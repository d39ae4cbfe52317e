"""The reply classifier, pure: explicit `now` values, a fresh registry, no Redis.
Each case checks every counter of the series, so a reply counted twice (or as
the wrong thing) fails."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from exporter.metrics import Failure, build
from exporter.probes.replies import ReplyTracker
from exporter.schedule import clock
from nautilus_wire.protocol import Reply, Request
from nautilus_wire.replies import decode, Malformed

RISK = {"engine": "risk", "op": "limit_check"}
COUNTERS = ("requests_total", "replies_lost_total", "replies_late_total",
            "replies_duplicate_total", "replies_out_of_order_total")


class Case:
    def __init__(self) -> None:
        self.reg = CollectorRegistry()
        self.tracker = ReplyTracker(build(self.reg), "tester", "reply-key")
        self.series = self.tracker.series("risk", "limit_check")
        self.done: list[tuple[Failure | None, float]] = []

    def send(self, due: float, timeout: float = 1.0) -> Request:
        req, pending = self.tracker.request(self.series, due, timeout, "normal", "",
                                            lambda f, lat: self.done.append((f, lat)))
        self.tracker.sent(req, pending)
        return req

    def reply(self, req: Request, now: float, *, status: str = "ok", seq: int | None = None,
              service_us: int = 250, bus_ms: int | None = None) -> None:
        self.tracker.on_reply(Reply(req.id, req.seq if seq is None else seq, req.engine, req.op,
                                    status, service_us, "boom" if status == "error" else "",
                                    bus_ms), now)

    def value(self, name: str, **labels: str) -> float:
        got = self.reg.get_sample_value(f"nautilus_probe_{name}", {**RISK, **labels} if
                                        name not in ("replies_malformed_total",
                                                     "replies_unmatched_total") else labels)
        assert got is not None, f"{name} is not exported"
        return got

    def counts(self) -> dict[str, float]:
        out = {name: self.value(name) for name in COUNTERS}
        out.update({f"fail_{r.value}": self.value("failures_total", reason=r.value)
                    for r in Failure})
        out["ok"] = self.value("latency_seconds_count")
        out["in_flight"] = self.value("in_flight")
        out["malformed"] = self.value("replies_malformed_total")
        out["unmatched"] = self.value("replies_unmatched_total")
        return {k: v for k, v in out.items() if v}


def test_answered_in_time() -> None:
    c = Case()
    c.reply(c.send(due=10.0), now=10.004, service_us=1500)
    assert c.counts() == {"requests_total": 1, "ok": 1}
    assert c.value("latency_seconds_sum") == pytest.approx(0.004)  # from the scheduled time
    assert c.value("service_seconds_sum") == pytest.approx(0.0015)
    assert c.done == [(None, pytest.approx(0.004))]
    assert c.tracker.settled()


def test_error_reply_is_a_failure_with_its_latency() -> None:
    c = Case()
    c.reply(c.send(due=10.0), now=10.02, status="error")
    assert c.counts() == {"requests_total": 1, "fail_error": 1}
    assert c.done == [(Failure.ERROR, pytest.approx(0.02))]


def test_reply_for_another_sequence_is_invalid() -> None:
    c = Case()
    c.reply(c.send(due=10.0), now=10.01, seq=99)
    assert c.counts() == {"requests_total": 1, "fail_invalid": 1}


def test_malformed_reply_with_our_id_is_invalid_without_one_is_malformed() -> None:
    c = Case()
    req = c.send(due=10.0)
    c.tracker.on_malformed(Malformed("missing field 'seq'", req.id), 10.01)
    c.tracker.on_malformed(Malformed("not JSON", None), 10.02)
    assert c.counts() == {"requests_total": 1, "fail_invalid": 1, "malformed": 1}


def test_unanswered_times_out_then_is_late_and_then_duplicate() -> None:
    c = Case()
    req = c.send(due=10.0, timeout=1.0)
    c.tracker.expire(10.999)
    assert c.counts() == {"requests_total": 1, "in_flight": 1}
    c.tracker.expire(11.0)
    assert c.counts() == {"requests_total": 1, "fail_timeout": 1}
    assert c.done == [(Failure.TIMEOUT, 0.0)]
    c.reply(req, now=11.5)
    assert c.counts() == {"requests_total": 1, "fail_timeout": 1, "replies_late_total": 1}
    c.reply(req, now=11.6)
    assert c.counts() == {"requests_total": 1, "fail_timeout": 1, "replies_late_total": 1,
                          "replies_duplicate_total": 1}
    c.tracker.expire(20.0)  # answered late: never lost
    assert "replies_lost_total" not in c.counts()


def test_never_answered_is_lost_after_a_grace_window_as_long_as_the_timeout() -> None:
    c = Case()
    c.send(due=10.0, timeout=2.0)
    c.tracker.expire(12.0)
    assert not c.tracker.settled()
    c.tracker.expire(13.999)
    assert "replies_lost_total" not in c.counts()
    c.tracker.expire(14.0)
    assert c.counts() == {"requests_total": 1, "fail_timeout": 1, "replies_lost_total": 1}
    assert c.tracker.settled()


def test_duplicate_in_time_counts_once_as_answered() -> None:
    c = Case()
    req = c.send(due=10.0)
    c.reply(req, now=10.01)
    c.reply(req, now=10.02)
    c.reply(req, now=10.03)
    assert c.counts() == {"requests_total": 1, "ok": 1, "replies_duplicate_total": 2}


def test_out_of_order_is_counted_and_still_answered() -> None:
    c = Case()
    first, second = c.send(due=10.0), c.send(due=10.1)
    c.reply(second, now=10.11)
    c.reply(first, now=10.14)  # began 30 ms after the later one
    assert c.counts() == {"requests_total": 2, "ok": 2, "replies_out_of_order_total": 1}


def test_a_reorder_within_the_reply_paths_jitter_is_not_counted() -> None:
    c = Case()
    first, second = c.send(due=10.0), c.send(due=10.1)
    c.reply(second, now=10.11)
    c.reply(first, now=10.125)  # 15 ms: within REORDER_TOLERANCE_S (20 ms)
    assert c.counts() == {"requests_total": 2, "ok": 2}


def test_a_reply_is_judged_by_when_it_entered_the_bus_not_when_it_was_read() -> None:
    """Stream replies carry Redis' time of their XADD: a prober slow to read them
    (a stalled loop) does not make a correct engine's replies look begun late."""
    c = Case()
    first, second = c.send(due=10.0), c.send(due=10.001)
    # first took 50 ms, second 5 ms: second overtook first, as a concurrent engine does.
    c.reply(second, now=10.007, service_us=5000, bus_ms=5_000_006)
    # first entered Redis at 5,000.051 s (Redis' clock): begun at 5,000.001 s, as
    # second was: in order, though read 60 ms late.
    c.reply(first, now=10.111, service_us=50000, bus_ms=5_000_051)
    assert c.counts() == {"requests_total": 2, "ok": 2}
    # The same replies timed at their reading: first looks begun 59 ms after second.
    c = Case()
    first, second = c.send(due=10.0), c.send(due=10.001)
    c.reply(second, now=10.007, service_us=5000)
    c.reply(first, now=10.111, service_us=50000)
    assert c.counts() == {"requests_total": 2, "ok": 2, "replies_out_of_order_total": 1}
    # And a real reorder still counts by the bus's clock: first began after second ended.
    c = Case()
    first, second = c.send(due=10.0), c.send(due=10.001)
    c.reply(second, now=10.007, service_us=5000, bus_ms=5_000_006)
    c.reply(first, now=10.111, service_us=5000, bus_ms=5_000_080)
    assert c.counts() == {"requests_total": 2, "ok": 2, "replies_out_of_order_total": 1}


def test_a_stream_entry_id_gives_the_replys_time_on_the_bus() -> None:
    fields = {"v": "1", "id": "a1", "seq": "3", "engine": "risk", "op": "limit_check",
              "status": "ok", "service_us": "250"}
    assert decode(fields, "1764567890123-4").bus_ms == 1764567890123
    assert decode(fields, b"1764567890123-0").bus_ms == 1764567890123
    # An id Redis would not write (a proxy's, garbage) gives no time, and no error.
    for odd in ("²-0", "-1", "abc", ""):
        assert decode(fields, odd).bus_ms is None
    assert decode(fields).bus_ms is None  # pub/sub: no entry id
    assert isinstance(decode({**fields, "seq": "x"}, "1-0"), Malformed)


def test_unknown_id_is_unmatched() -> None:
    c = Case()
    c.tracker.on_reply(Reply("not-ours", 1, "risk", "limit_check", "ok", 5), 10.0)
    assert c.counts() == {"unmatched": 1}


def test_answered_ids_are_forgotten_after_twice_the_timeout() -> None:
    c = Case()
    req = c.send(due=10.0, timeout=1.0)
    c.reply(req, now=10.01)
    c.tracker.expire(12.0)  # 10.01 + 2 s is still ahead
    c.reply(req, now=12.0)
    assert c.counts()["replies_duplicate_total"] == 1
    c.tracker.expire(12.02)
    c.reply(req, now=12.03)
    assert c.counts()["unmatched"] == 1


def test_send_failure_settles_the_probe() -> None:
    c = Case()
    req = c.send(due=10.0)
    c.tracker.send_failed(req)
    c.tracker.expire(20.0)
    assert c.counts() == {"requests_total": 1, "fail_send_failed": 1}
    assert c.done == [(Failure.SEND_FAILED, 0.0)]
    assert c.tracker.settled()


def test_each_request_carries_what_the_engine_needs() -> None:
    import time as _time

    c = Case()
    before = _time.time()
    first, _ = c.tracker.request(c.series, due=clock(), timeout=2.0, priority="high", payload="xyz")
    second, _ = c.tracker.request(c.series, due=clock(), timeout=2.0, priority="low", payload="")
    after = _time.time()
    assert (first.prober, first.engine, first.op, first.prio, first.reply_to, first.payload) == \
        ("tester", "risk", "limit_check", "high", "reply-key", "xyz")
    assert (first.seq, second.seq) == (1, 2)  # one more per request of the series
    # The engine's deadline is the probe's: now + timeout, in unix milliseconds.
    assert before * 1000 + 2000 - 1 <= first.deadline_ms <= after * 1000 + 2000 + 1
    # Ids: an 8-hex-digit token per tracker and a counter from 1, in hex.
    assert first.id[:8] == second.id[:8] and len(first.id[:8]) == 8
    assert (first.id[8:], second.id[8:]) == ("1", "2")
    other = ReplyTracker(build(CollectorRegistry()), "tester", "reply-key")
    assert other.request(other.series("risk", "limit_check"), 1.0, 1.0, "normal", "")[0].id[:8] \
        != first.id[:8]
    assert c.tracker.series("risk", "limit_check") is c.series  # one series per engine × op
    s = c.tracker.series("ml", "process")
    assert (s.engine, s.op) == ("ml", "process")


def test_invalid_and_malformed_replies_settle_with_no_latency() -> None:
    c = Case()
    c.reply(c.send(due=10.0), now=10.5, seq=77)
    c.tracker.on_malformed(Malformed("bad", c.send(due=11.0).id), 11.5)
    assert c.done == [(Failure.INVALID, 0.0), (Failure.INVALID, 0.0)]


def test_a_copy_after_a_malformed_reply_is_a_duplicate() -> None:
    c = Case()
    req = c.send(due=10.0)
    c.tracker.on_malformed(Malformed("bad", req.id), 10.01)
    c.reply(req, now=10.02)  # a well-formed copy of the same reply
    assert c.counts() == {"requests_total": 1, "fail_invalid": 1, "replies_duplicate_total": 1}


def test_id_memory_is_bounded(monkeypatch) -> None:
    from exporter.probes import replies

    monkeypatch.setattr(replies, "MAX_REMEMBERED", 3)
    c = Case()
    reqs = [c.send(due=10.0, timeout=100.0) for _ in range(4)]
    for k, req in enumerate(reqs):
        c.reply(req, now=10.01 + k / 100)
    # The oldest answered id was let go (only 3 are kept): its copy is now a stray.
    c.reply(reqs[0], now=10.1)
    c.reply(reqs[1], now=10.1)
    assert c.counts()["unmatched"] == 1 and c.counts()["replies_duplicate_total"] == 1
    # Timed-out ids too: the 4th beyond 3 is counted lost at once.
    d = Case()
    for _ in range(4):
        d.send(due=10.0, timeout=100.0)
    d.tracker.expire(110.0)
    assert d.counts()["replies_lost_total"] == 1 and d.counts()["fail_timeout"] == 4


def test_a_send_failure_of_a_settled_probe_is_ignored() -> None:
    c = Case()
    req = c.send(due=10.0)
    c.reply(req, now=10.01)
    c.tracker.send_failed(req)  # already answered: nothing more to count
    assert c.counts() == {"requests_total": 1, "ok": 1}


def test_an_answered_id_is_kept_exactly_twice_its_timeout() -> None:
    c = Case()
    req = c.send(due=10.0, timeout=2.0)
    c.reply(req, now=10.0)
    c.tracker.expire(13.999)
    c.reply(req, now=13.999)  # still remembered: a duplicate
    c.tracker.expire(14.0)  # 10.0 + 2 × 2 s: forgotten
    c.reply(req, now=14.0)
    assert c.counts() == {"requests_total": 1, "ok": 1, "replies_duplicate_total": 1,
                          "unmatched": 1}


def test_replies_carry_the_service_time_given() -> None:
    from nautilus_wire.protocol import Reply as R

    assert R.answering(Request("a", "p", "risk", "x", 1, "normal", "k", 0)).service_us == 0


def test_a_malformed_reply_with_an_unknown_id_is_counted_malformed() -> None:
    c = Case()
    c.tracker.on_malformed(Malformed("missing field 'seq'", "not-pending"), 10.0)
    assert c.counts() == {"malformed": 1}
