"""The open-loop schedule and its skip rule, pure: explicit times, no clock."""

from __future__ import annotations

import pytest

from exporter.schedule import MAX_TICK_S, MIN_TICK_S, Schedule, sendable, sleep_for


def test_probe_k_is_due_at_start_plus_k_over_rate() -> None:
    s = Schedule(rate=10.0, start=100.0)
    assert s.take_due(100.0) == [100.0]
    assert s.take_due(100.099) == []
    assert s.take_due(100.1) == [pytest.approx(100.1)]
    assert s.next_due() == pytest.approx(100.2)


def test_after_a_stall_every_missed_probe_is_due_with_its_own_time() -> None:
    s = Schedule(rate=100.0, start=0.0)
    assert s.take_due(0.0) == [0.0]
    due = s.take_due(0.5)  # stalled for half a second
    assert len(due) == 50
    assert due == pytest.approx([k / 100 for k in range(1, 51)])
    assert s.take_due(0.5) == []  # nothing is handed out twice
    assert s.next_due() == pytest.approx(0.51)


def test_the_schedule_does_not_drift_with_rounding() -> None:
    s = Schedule(rate=3.0, start=0.0)
    total = sum(len(s.take_due(t / 1000)) for t in range(0, 100_000, 7))
    assert total == 300  # probes 0..299 are due by t = 99.995 s, each exactly once
    assert s.take_due(100.0) == [pytest.approx(100.0)]


def test_skip_rule() -> None:
    # Older than the timeout: skipped; within it (late or early): sent.
    assert sendable([7.0, 8.5, 9.9, 10.001], now=10.0, timeout=1.0, room=10) == \
        ([9.9, 10.001], 2)
    assert sendable([9.0], now=10.0, timeout=1.0, room=10) == ([9.0], 0)  # exactly 1 s late
    # max_in_flight reached: nothing is sent, everything due is skipped.
    assert sendable([9.9, 10.0], now=10.0, timeout=1.0, room=0) == ([], 2)
    assert sendable([], now=10.0, timeout=1.0, room=0) == ([], 0)
    # Room for some: the oldest go, the rest are skipped; never more than the room.
    assert sendable([9.7, 9.8, 9.9, 10.0], now=10.0, timeout=1.0, room=3) == ([9.7, 9.8, 9.9], 1)
    assert sendable([9.9], now=10.0, timeout=1.0, room=-5) == ([], 1)


def test_ticks_are_bounded() -> None:
    assert sleep_for(next_due=10.0005, now=10.0) == MIN_TICK_S  # uvloop busy-spins below
    assert sleep_for(next_due=10.005, now=10.0) == pytest.approx(0.005)
    assert sleep_for(next_due=60.0, now=10.0) == MAX_TICK_S  # timeouts checked every tick
    assert sleep_for(next_due=9.0, now=10.0) == MIN_TICK_S


def test_a_reload_continues_the_schedule() -> None:
    s = Schedule(rate=10.0, start=100.0)
    s.take_due(100.35)  # probes 0..3 handed out
    assert s.continued(10.0) is s  # same rate: nothing dropped, nothing repeated
    faster = s.continued(20.0)
    assert faster.next_due() == pytest.approx(100.4)  # from the next due probe on
    assert faster.take_due(100.5) == pytest.approx([100.4, 100.45, 100.5])


def test_take_sendable_is_sendable_of_take_due_without_the_list() -> None:
    """Same probes sent, same count skipped, on random stalls, rates, timeouts and room."""
    import random

    rng = random.Random(7)
    for _ in range(600):
        rate, timeout = rng.choice([0.5, 3.0, 10.0, 997.0, 20_000.0]), rng.choice([0.001, 0.3, 2.0])
        start, now = 100.0, 100.0
        a, b = Schedule(rate, start), Schedule(rate, start)
        for _ in range(5):
            now += rng.choice([0.0, 0.002, 0.7, 3.1])
            room = rng.choice([0, 1, 5, 10_000, -3])
            expected = sendable(a.take_due(now), now, timeout, room)
            got = b.take_sendable(now, timeout, room)
            assert got[1] == expected[1] and got[0] == pytest.approx(expected[0]), (rate, timeout, now)


def test_take_sendable_after_a_long_stall_lists_only_what_it_sends() -> None:
    s = Schedule(50_000.0, 0.0)
    send, skipped = s.take_sendable(60.0, timeout=60.0, room=100)
    assert len(send) == 100 and skipped == 3_000_001 - 100  # 3 M due, a list of 100
