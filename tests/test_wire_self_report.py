"""The responder's self-report as an engine team uses it: `figures=` given the
interval, sync or async, its failures logged once with the report still sent; a
second writer of `metrics:<engine>` named with what to do. And the logs of a
steady error rate: one summary line a minute per operation, a new kind of error's
traceback at once."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import re
import subprocess
import time
from typing import Any

import pytest
import redis

from nautilus_testkit import ROOT, eventually
from nautilus_wire import Request, Responder, SelfReport, connect, failure_log, protocol
from nautilus_wire.handlers import HandlerTable

from .test_wire_package import VENVS

KEY = "metrics:risk"


async def reports(client: Any, count: int, spec: SelfReport, reader: Any = None,
                  **options: Any) -> tuple[list[dict[str, Any]], Responder]:
    """Run a responder until `count` distinct reports were written; them, and it."""
    reader = reader or client
    responder = Responder(client, "risk", lambda req: None, self_report=spec, **options)
    seen: list[dict[str, Any]] = []
    async with responder:
        deadline = time.monotonic() + 10
        while len(seen) < count and time.monotonic() < deadline:
            raw = await reader.get(KEY)
            if raw is not None and (not seen or json.loads(raw)["timestamp"] != seen[-1]["timestamp"]):
                seen.append(json.loads(raw))
            await asyncio.sleep(0.02)
    assert len(seen) == count, seen
    return seen, responder


async def test_figures_get_the_seconds_since_their_last_call(redis_url: str) -> None:
    client = connect(redis_url)
    intervals: list[float] = []
    calls: list[float] = []

    def figures(interval: float) -> dict[str, Any]:
        calls.append(time.monotonic())
        intervals.append(interval)
        time.sleep(0.1)  # a slow meter: the next interval counts this time too
        return {"throughput": 63.0, "operations": {"limit_check": 63}}

    started = time.monotonic()
    seen, responder = await reports(client, 3, SelfReport(interval=0.4, figures=figures),
                                    consumer="risk-0")
    # Each interval is the time since the last call, as the caller's own clock read it
    # (a few statements apart: 50 ms is a loaded machine preempting between them):
    # the 0.4 s between reports and the meter's 0.1 s, and a late timer's delay.
    assert 0.4 - 0.05 <= intervals[0] <= calls[0] - started + 0.05, (intervals, calls)
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert all(g >= 0.5 for g in gaps) and all(
        abs(i - g) <= 0.05 for i, g in zip(intervals[1:], gaps, strict=True)), (intervals, gaps)
    assert [r["source"] for r in seen] == ["engine"] * 3
    assert (seen[-1]["throughput"], seen[-1]["operations"]) == (63.0, {"limit_check": 63.0})
    assert seen[-1]["responder"] == "risk-0"
    assert seen[-1]["from_engine"] == ["operations", "throughput"]  # the rest: the responder's
    assert responder.stats.figures_failures == 0
    await client.aclose()


async def test_figures_may_be_async_or_take_no_argument(redis_url: str) -> None:
    client = connect(redis_url)

    intervals: list[float] = []

    async def figures(interval: float) -> dict[str, float]:
        intervals.append(interval)
        await asyncio.sleep(0.01)
        return {"throughput": 1000 / interval}

    seen, _ = await reports(client, 2, SelfReport(interval=0.5, figures=figures))
    # The awaited figure as it returned it, for the interval it was given: 0.5 s and
    # what a loaded machine adds (the interval itself: the test above).
    assert seen[-1]["source"] == "engine"
    assert any(seen[-1]["throughput"] == pytest.approx(1000 / i) for i in intervals), (
        seen[-1]["throughput"], intervals)
    assert all(0.5 - 0.05 <= i for i in intervals), intervals
    seen, _ = await reports(client, 1, SelfReport(interval=0.5, figures=lambda: {"latency": 7}))
    assert (seen[0]["source"], seen[0]["latency"]) == ("engine", 7.0)
    await client.aclose()


async def test_failing_figures_are_logged_once_and_the_report_still_goes_out(
        redis_url: str, caplog) -> None:
    """Raising, a bad field, a value that is not a finite number, not a mapping, an
    async one too slow: each report is sent with the responder's own figures, one
    traceback per kind of failure, the rest summed up, every one counted."""
    client = connect(redis_url)
    outcomes: list[Any] = [RuntimeError("meter unavailable"), {"thruput": 5},
                           {"throughput": math.nan}, None, "slow", RuntimeError("again")]
    calls = 0

    async def figures(interval: float) -> Any:
        nonlocal calls
        outcome = outcomes[min(calls, len(outcomes) - 1)]
        calls += 1
        if isinstance(outcome, Exception):
            raise outcome
        if outcome == "slow":
            await asyncio.sleep(interval * 2)
        return outcome

    with caplog.at_level(logging.WARNING, logger="nautilus_wire"):
        seen, responder = await reports(client, 7, SelfReport(interval=0.3, figures=figures))
    assert [(r["source"], r["from_engine"]) for r in seen] == [("probes", [])] * 7
    assert responder.stats.figures_failures >= 7
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    kinds = [r.exc_info[0].__name__ for r in errors if r.exc_info]
    assert kinds == ["RuntimeError", "ValueError", "TimeoutError"], kinds  # one each, at once
    messages = " ".join(str(r.exc_info[1]) for r in errors if r.exc_info)
    assert "'thruput'" in messages
    summaries = [r.getMessage() for r in caplog.records if r.name == failure_log.SUMMARY_LOGGER]
    # The repeats are summed up a full minute after the first traceback, not sooner.
    assert summaries == [], summaries
    await client.aclose()


async def test_a_second_writer_of_the_report_is_named_with_what_to_do(
        redis_url: str, caplog) -> None:
    """The engine's own code still writes metrics:risk (the old way) while the
    built-in report is on: one warning naming the key, the writer and the fix."""
    client = connect(redis_url)
    responder = Responder(client, "risk", lambda req: None, self_report=SelfReport(interval=0.5))

    async def old_writer() -> None:
        await asyncio.sleep(0.25)
        while True:
            await client.set(KEY, json.dumps({"throughput": 63, "latency": 1, "cpu_usage": 1,
                                              "memory_usage": 1, "error_rate": 0,
                                              "timestamp": time.time()}), ex=15)
            await asyncio.sleep(0.5)

    with caplog.at_level(logging.WARNING, logger="nautilus_wire"):
        async with responder:
            writer = asyncio.create_task(old_writer())
            await eventually(lambda: responder.stats.report_overwrites >= 3, timeout=8)
            writer.cancel()
    warnings = [r.getMessage() for r in caplog.records if "second writer" in r.getMessage()]
    assert len(warnings) == 1, warnings  # at once, then at most every 10 minutes
    assert "metrics:risk has a second writer: something other than nautilus_wire" in warnings[0]
    assert "SelfReport(figures=...)" in warnings[0] and "self_report=None" in warnings[0]
    # The page shows it word for word.
    doc = (ROOT / "docs" / "engines.md").read_text()
    shown = doc[doc.index("    risk: metrics:risk has a second writer"):]
    shown = shown[:shown.index("\n\n")]
    assert " ".join(shown.split()) == warnings[0]
    await client.aclose()


async def test_a_new_second_writer_is_warned_about_at_once(redis_url: str, caplog) -> None:
    """The warning is rate-limited per writer: a different second writer (here a
    process under this one's consumer name) is named at once, not 10 minutes on."""
    client = connect(redis_url)
    responder = Responder(client, "risk", lambda req: None, consumer="risk-0",
                          self_report=SelfReport(interval=0.3))
    with caplog.at_level(logging.WARNING, logger="nautilus_wire"):
        async with responder:
            # Past its first report (a loaded machine makes it later than its 0.3 s):
            # a write of someone else's over it is then a second writer.
            started = time.monotonic()
            while json.loads(await client.get(KEY) or "{}").get("responder") != "risk-0":
                assert time.monotonic() - started < 10, "no first report within 10 s"
                await asyncio.sleep(0.02)
            for writer in ("{}", "{}", json.dumps({"responder": "risk-0", "timestamp": 1})):
                before = responder.stats.report_overwrites
                await client.set(KEY, writer, ex=15)
                await eventually(lambda b=before: responder.stats.report_overwrites > b, timeout=3)
    warnings = [r.getMessage() for r in caplog.records if "second writer" in r.getMessage()]
    assert len(warnings) == 2, warnings
    assert "something other than nautilus_wire" in warnings[0]
    assert "this one's consumer name ('risk-0')" in warnings[1]
    assert "NAUTILUS_WIRE_CONSUMER" in warnings[1]
    assert responder.stats.report_standbys == 0
    await client.aclose()


async def test_replicas_of_one_engine_agree_which_one_reports(redis_url: str, caplog) -> None:
    """Two responders of one engine, started together, no configuration: exactly one
    writes metrics:risk, the other stands by without a warning; when the writer
    stops, the other takes over within the report's expiry (a clean stop deletes
    the report: the next interval; a crash leaves it to expire)."""
    client = connect(redis_url)
    spec = SelfReport(interval=0.3, expire=1.0)

    def responder(name: str) -> Responder:
        return Responder(client, "risk", lambda req: None, consumer=name, self_report=spec)

    async def writers(seconds: float) -> set[str]:
        seen: set[str] = set()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            raw = await client.get(KEY)
            if raw is not None:
                seen.add(json.loads(raw)["responder"])
            await asyncio.sleep(0.02)
        return seen

    async def took_over(name: str) -> float:
        started = time.monotonic()
        while json.loads(await client.get(KEY) or "{}").get("responder") != name:
            assert time.monotonic() - started < spec.ttl + spec.interval + 0.5
            await asyncio.sleep(0.02)
        return time.monotonic() - started

    responders = {name: responder(name) for name in ("web-1", "web-2", "web-3")}
    first, second = responders["web-1"], responders["web-2"]
    with caplog.at_level(logging.INFO, logger="nautilus_wire"):
        first.start()
        second.start()
        # Both may write at first (at most three intervals, by the order of their
        # writes); then exactly one writes, over five intervals in a row. Judged by
        # windows, not a fixed sleep: a loaded machine delays the intervals.
        started = time.monotonic()
        while len(holders := await writers(5 * spec.interval)) != 1:
            assert time.monotonic() - started < 20 * spec.interval, holders
        holder = responders[holders.pop()]
        standby = second if holder is first else first
        assert standby.stats.report_standbys >= 1
        await holder.stop()
        # A clean stop deletes the report: the other writes at its next interval,
        # well before the report would have expired.
        assert await took_over(standby.consumer) < spec.ttl
        third = responders["web-3"]
        third.start()
        await asyncio.sleep(0.7)
        assert await writers(1.0) == {standby.consumer}  # the holder keeps it
        last = await client.get(KEY)
        await standby.stop()
        await client.set(KEY, last, ex=spec.ttl)  # as a crash leaves it
        assert await took_over("web-3") <= spec.ttl + spec.interval + 0.2
        await third.stop()
    assert standby.stats.report_standbys >= 3 and third.stats.report_standbys >= 2
    assert [r.stats.report_overwrites for r in responders.values()] == [0, 0, 0]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.records
    await client.aclose()


async def test_one_writer_reads_no_warning_across_a_restart(redis_url: str, caplog) -> None:
    """A restart finds its previous run's report: that is not a second writer."""
    client = connect(redis_url)
    with caplog.at_level(logging.WARNING, logger="nautilus_wire"):
        for _ in range(2):
            seen, responder = await reports(client, 3, SelfReport(interval=0.2))
            await client.set(KEY, json.dumps(seen[-1]))  # as a kill would leave it
            assert responder.stats.report_overwrites == 0
    assert not [r for r in caplog.records if "second writer" in r.getMessage()]
    await client.aclose()


async def test_a_write_only_acl_keeps_the_report_and_says_the_check_is_off(
        redis_server, caplog) -> None:
    admin = redis.Redis.from_url(redis_server.url)
    admin.execute_command("ACL", "SETUSER", "engine", "on", ">pw", "~nautilus:probe:*",
                          "%W~metrics:*", "+@all")
    host_port = redis_server.url.split("//")[1]
    client = connect(f"redis://engine:pw@{host_port}")
    reader = connect(redis_server.url)
    with caplog.at_level(logging.WARNING, logger="nautilus_wire"):
        seen, responder = await reports(client, 3, SelfReport(interval=0.2), reader)
    await reader.aclose()
    assert len(seen) == 3
    refused = [r.getMessage() for r in caplog.records if "cannot read" in r.getMessage()]
    assert len(refused) == 1 and "%RW~metrics:*" in refused[0], refused
    await client.aclose()
    admin.close()


async def test_a_steady_error_rate_logs_one_summary_line_a_minute_per_operation(
        monkeypatch, caplog) -> None:
    """22 minutes of a handler failing every second on each of two operations (the
    clock of the log is moved by hand): a traceback per operation at once, then at
    most one line a minute per operation that sums them all up; a new kind of error
    logs its traceback at once."""
    now = [0.0]
    monkeypatch.setattr(failure_log, "monotonic", lambda: now[0])
    new_kind = False

    async def handler(req: Request) -> None:
        if new_kind:
            raise KeyError("account")
        raise RuntimeError("limit table unavailable")

    table = HandlerTable("risk", {"limit_check": handler, "alert": handler})
    with caplog.at_level(logging.INFO, logger="nautilus_wire"):
        for second in range(22 * 60):
            now[0] = float(second)
            for op in ("limit_check", "alert"):
                await table.call(Request(f"r{second}", "t", "risk", op, second, "normal",
                                         "r", 0))
        new_kind = True
        await table.call(Request("new", "t", "risk", "alert", 0, "normal", "r", 0))
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert [(r.exc_info[0].__name__, "'alert'" in r.getMessage()) for r in tracebacks] == [
        ("RuntimeError", False), ("RuntimeError", True), ("KeyError", True)]
    assert caplog.records[-1] is tracebacks[-1]  # at once
    for op in ("limit_check", "alert"):
        lines = [r for r in caplog.records
                 if r.name == failure_log.SUMMARY_LOGGER and f"'{op}'" in r.getMessage()]
        assert 20 <= len(lines) <= 22, len(lines)  # one a minute, not one per 10 s
        # The first a full minute after the traceback, each worded as the page shows.
        assert lines[0].getMessage().startswith(
            f"risk handler of '{op}' failing: 60 failed in the last 60 s (last error: ")
        assert all(re.search(r"failing: [\d,]+ failed in the last 60 s \(last error: ",
                             r.getMessage()) for r in lines), [r.getMessage() for r in lines]
        counted = sum(int(r.getMessage().split("failing: ")[1].split(" ")[0]) for r in lines)
        assert 22 * 60 - 1 - 60 <= counted <= 22 * 60 - 1  # all but the last minute's
        assert all(r.levelno == logging.WARNING for r in lines)


SCRIPT = """
import asyncio, json, sys, time
from nautilus_wire import Responder, SelfReport, connect

async def main() -> None:
    client = connect(sys.argv[1])
    intervals, calls = [], []
    def figures(interval):
        calls.append(time.monotonic())
        intervals.append(interval)
        return {"throughput": 5.0}
    responder = Responder(client, "risk", lambda req: None,
                          self_report=SelfReport(interval=0.2, figures=figures))
    async with responder:
        for _ in range(5):
            await asyncio.sleep(0.2)
            await client.set("metrics:risk", "{}")  # another writer
    print(json.dumps({"overwrites": responder.stats.report_overwrites, "calls": calls,
                      "intervals": intervals, "failures": responder.stats.figures_failures}))
    await client.aclose()

asyncio.run(main())
"""


@pytest.mark.parametrize("which", ["oldest", "newest"])
def test_second_writers_and_figures_on_each_supported_redis_py(which: str, redis_url: str) -> None:
    python = VENVS[which] / "bin" / "python"
    out = subprocess.run([str(python), "-c", SCRIPT, redis_url], capture_output=True, text=True,
                         timeout=60, cwd="/")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["overwrites"] >= 2 and got["failures"] == 0, got
    # The seconds since the last call, as the engine's clock read them (50 ms: a loaded
    # machine preempting between the two reads), every 0.2 s or a late timer's more.
    intervals, calls = got["intervals"], got["calls"]
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert len(intervals) >= 4 and all(i >= 0.2 - 0.05 for i in intervals), got
    assert all(abs(i - g) <= 0.05 for i, g in zip(intervals[1:], gaps, strict=True)), (intervals, gaps)
    assert "second writer" in out.stderr  # logging's last resort prints the warning


async def test_what_figures_may_return_and_the_errors_that_name_the_field() -> None:
    from nautilus_wire.self_report import engine_figures

    ok = await engine_figures(lambda: {"throughput": 5, "operations": {"limit_check": 2}}, 5.0, 1)
    assert ok == {"throughput": 5.0, "operations": {"limit_check": 2.0}}
    for returned, named in [({"thruput": 1}, "'thruput'"), ({"latency": "3"}, "latency"),
                            ({"error_rate": True}, "error_rate"),
                            ({"operations": {"Limit Check": 1}}, "'Limit Check'"),
                            ({"operations": {f"op{i}": 1 for i in range(33)}}, "at most 32"),
                            ({"operations": {"limit_check": math.inf}}, "'limit_check'"),
                            ([("throughput", 1)], "not a mapping")]:
        with pytest.raises(ValueError, match=re.escape(named)):
            await engine_figures(lambda interval, returned=returned: returned, 5.0, 1)


async def test_an_error_the_handler_returns_is_counted_not_logged(redis_url: str, caplog) -> None:
    """Verdict(error=...) is the engine's own answer: replied 'error', counted in
    stats.errors, never logged (the Logging section of the page says so)."""
    from nautilus_wire import Verdict

    client = connect(redis_url)
    sent = 0
    with caplog.at_level(logging.DEBUG, logger="nautilus_wire"):
        async with Responder(client, "risk", lambda req: Verdict(error="limit exceeded"),
                             self_report=None) as responder:
            for seq in range(50):
                await client.xadd(protocol.request_stream(protocol.DEFAULT_PREFIX, "risk",
                                                          "normal"), Request(
                    f"v{seq}", "t", "risk", "limit_check", seq, "normal",
                    protocol.reply_key(protocol.DEFAULT_PREFIX, "t"),
                    int((time.time() + 10) * 1000)).fields())
                sent += 1
            await eventually(lambda: responder.stats.replies == sent, timeout=5)
    assert responder.stats.errors == sent
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    doc = " ".join((ROOT / "docs" / "engines.md").read_text().split())
    assert "`Verdict(error=…)` is counted in `stats.errors` and never logged" in doc
    await client.aclose()


async def test_a_responder_that_cannot_read_the_report_back_is_named(redis_server, caplog) -> None:
    """A responder under a write-only ACL cannot stand by: it writes every interval.
    The responder that holds the key names it after three overwrites in a row."""
    admin = redis.Redis.from_url(redis_server.url)
    admin.execute_command("ACL", "SETUSER", "blind", "on", ">pw", "~nautilus:probe:*",
                          "%W~metrics:*", "+@all")
    host_port = redis_server.url.split("//")[1]
    blind_client = connect(f"redis://blind:pw@{host_port}")
    client = connect(redis_server.url)
    spec = SelfReport(interval=0.3)
    holder = Responder(client, "risk", lambda req: None, consumer="web-1", self_report=spec)
    blind = Responder(blind_client, "risk", lambda req: None, consumer="web-2", self_report=spec)
    with caplog.at_level(logging.WARNING, logger="nautilus_wire"):
        async with holder:
            await asyncio.sleep(0.5)  # holds the key
            async with blind:
                await eventually(lambda: holder.stats.report_overwrites >= 1, timeout=5)
    warnings = [r.getMessage() for r in caplog.records if "has a second writer" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "the responder of another process (consumer 'web-2')" in warnings[0]
    assert "%RW~metrics:*" in warnings[0]
    assert blind.stats.report_standbys == 0
    await client.aclose()
    await blind_client.aclose()
    admin.close()


async def test_a_report_left_without_expiry_does_not_hold_the_key(redis_url: str) -> None:
    """Another responder's report older than the expiry (left there without one, by
    hand or a restore) is not a live holder: the responder writes at once."""
    client = connect(redis_url)
    await client.set(KEY, json.dumps({"responder": "web-0", "timestamp": time.time() - 3600}))
    started = time.monotonic()
    seen, responder = await reports(client, 2, SelfReport(interval=0.3), consumer="web-1")
    assert [r["responder"] for r in seen] == ["web-0", "web-1"]  # the old one, then its own
    assert time.monotonic() - started < 1.5  # its first report, 0.3 s after the start
    assert responder.stats.report_standbys == 0
    await client.aclose()
