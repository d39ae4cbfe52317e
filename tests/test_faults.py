"""Faults an operator would inject before paging on this exporter: Redis killed and
shut down, a peer that resets every connection, poison bytes on both streams,
signals in every state. All on loopback, each bounded in time."""

from __future__ import annotations

import json
import os

import signal
import socket
import struct
import threading
import time
from pathlib import Path

import pytest
import redis

from exporter.signals import EXIT_WITHIN_S
from nautilus_testkit import RedisServer, free_port, http_get, http_post, wait_for
from nautilus_testkit.exposition import value
from nautilus_wire import protocol

from .conftest import Running, write_config, write_engines

OK = "nautilus_probe_latency_seconds_count"
REPLY_STREAM = protocol.reply_key(protocol.DEFAULT_PREFIX, "exporter")


def accounted(ex: Running) -> tuple[float, float]:
    """(requests, answered + failed + in flight) from one scrape: always equal."""
    text = ex.metrics()
    return (value(text, "nautilus_probe_requests_total"),
            value(text, OK) + value(text, "nautilus_probe_failures_total")
            + value(text, "nautilus_probe_in_flight"))


def recovery_s(ex: Running, restart) -> float:
    """Seconds from Redis being back (restart() returned) to the next success."""
    restart()
    back = time.monotonic()
    before = ex.value(OK)
    wait_for(lambda: ex.value(OK) > before, 10, interval=0.02)
    return time.monotonic() - back


@pytest.fixture
def probed(spawn, exporter, tmp_path: Path):
    """A private Redis, one engine and an exporter probing it at 100/s."""
    server = RedisServer().start()
    spawn("engines", "--config.file", str(write_engines(
        tmp_path / "syn.yml", server.url, {"risk": {"limit_check": {"service_time": 0}}})))
    ex = exporter(write_config(tmp_path / "exp.yml", server.url,
                               {"risk": {"limit_check": {"rate": 100, "timeout": "500ms"}}}))
    wait_for(lambda: ex.value(OK) >= 50, 10)
    yield server, ex
    server.remove()


def test_redis_killed_three_times_and_shut_down(probed) -> None:
    server, ex = probed
    recoveries = []
    for fault in ("kill", "kill", "kill", "shutdown"):
        if fault == "kill":
            server.kill()
        else:
            with redis.Redis(port=server.port) as r:
                try:
                    r.shutdown(nosave=True)
                except redis.ConnectionError:
                    pass  # it went away mid-reply, as it should
            assert server.proc is not None
            server.proc.wait(10)
        failed = ex.value("nautilus_probe_failures_total")
        errors = ex.value("nautilus_probe_messagebus_errors_total", operation="send")
        wait_for(lambda failed=failed: ex.value("nautilus_probe_failures_total") >= failed + 20, 10)
        assert ex.value("nautilus_probe_messagebus_up") == 0
        # Sends back off (50-500 ms) after a failure: the next attempt, not every
        # probe, is the next Redis error.
        wait_for(lambda errors=errors: ex.value("nautilus_probe_messagebus_errors_total",
                                                operation="send") > errors, 5)
        recoveries.append(recovery_s(ex, server.start))
        assert ex.value("nautilus_probe_messagebus_up") == 1
        assert http_get(f"{ex.base}/-/healthy")[0] == 200 and ex.child.alive()
    assert max(recoveries) < 1.0, recoveries
    # No loop needed a restart: every fault was handled as a Redis error.
    assert ex.value("nautilus_probe_loop_restarts_total") == 0
    requests, settled = accounted(ex)
    assert requests == settled


class ResettingPeer:
    """Accepts connections on a port and resets each at once (SO_LINGER 0)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.resets = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()
            self.resets += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


def test_a_peer_resetting_connections_then_redis(probed) -> None:
    server, ex = probed
    server.kill()
    peer = ResettingPeer(server.port)
    try:
        wait_for(lambda: peer.resets >= 20, 10)
        before, started = peer.resets, time.monotonic()
        time.sleep(3)  # several seconds of churn on every loop
        rate = (peer.resets - before) / (time.monotonic() - started)
    finally:
        peer.close()
    # The exporter and the engine back off: ~280 connections/s before.
    print(f"connections to the resetting peer: {rate:.0f}/s")
    assert rate <= 60, rate
    assert recovery_s(ex, server.start) < 1.0
    assert http_get(f"{ex.base}/-/healthy")[0] == 200 and ex.child.alive()
    assert ex.value("nautilus_probe_loop_restarts_total") == 0
    # Self-reports come back too: the engine's responder survived the churn.
    wait_for(lambda: ex.value("nautilus_probe_engine_report_up", engine="risk") == 1, 10)
    before = ex.value(OK)
    wait_for(lambda: ex.value(OK) >= before + 100, 5)


def test_poison_bytes_on_both_streams(probed) -> None:
    server, ex = probed
    raw = redis.Redis(port=server.port)  # bytes in, bytes out
    bad = [{b"v": b"1", b"id": b"\xff\xfe", b"seq": b"1", b"engine": b"risk",
            b"op": b"limit_check", b"status": b"ok", b"service_us": b"1"},
           {b"v": b"1", b"id": b"abc", b"seq": b"\xff", b"engine": b"risk",
            b"op": b"limit_check", b"status": b"ok", b"service_us": b"1"},
           {b"\xff": b"\xff"}]
    malformed = ex.value("nautilus_probe_replies_malformed_total")
    for fields in bad:
        raw.xadd(REPLY_STREAM, fields)
    wait_for(lambda: ex.value("nautilus_probe_replies_malformed_total") == malformed + 3, 5)
    request_stream = protocol.request_stream(protocol.DEFAULT_PREFIX, "risk", "normal")
    for n in range(5):
        raw.xadd(request_stream, {b"v": b"1", b"id": b"x\xff%d" % n, b"engine": b"risk"})
    raw.xadd(request_stream, {b"\xc3\x28": b"\xa0\xa1"})
    # The engine counts them in its self-report and keeps answering.
    wait_for(lambda: json.loads(raw.get(protocol.report_key("risk")) or b"{}").get(
        "malformed_requests") == 6, 10)
    before = ex.value(OK)
    wait_for(lambda: ex.value(OK) >= before + 100, 5)
    assert ex.value("nautilus_probe_loop_restarts_total") == 0
    assert http_get(f"{ex.base}/-/healthy")[0] == 200
    raw.close()


def test_reply_keys_outside_the_protocol_are_never_written(probed) -> None:
    server, ex = probed
    raw = redis.Redis(port=server.port, decode_responses=True)
    request_stream = protocol.request_stream(protocol.DEFAULT_PREFIX, "risk", "normal")
    req = protocol.Request("evil1", "exporter", "risk", "limit_check", 1, "normal",
                           "victim:key", int((time.time() + 30) * 1000))
    raw.xadd(request_stream, req.fields())
    wait_for(lambda: json.loads(raw.get(protocol.report_key("risk")) or "{}").get(
        "malformed_requests") == 1, 10)
    assert raw.exists("victim:key") == 0
    raw.close()


def test_the_stop_budgets_fit_inside_the_exit_promise() -> None:
    """SIGTERM's promise is one figure (signals.EXIT_WITHIN_S); every stage's budget
    adds up below the hard deadline that enforces it."""
    from exporter import cli, runtime, web, workers

    assert (web.SHUTDOWN_TIMEOUT_S + runtime.STOP_GRACE_S + runtime.CLOSE_GRACE_S
            <= cli.STOP_BUDGET_S < cli.HARD_EXIT_S < EXIT_WITHIN_S)
    assert workers.STOP_GRACE_S < EXIT_WITHIN_S


def exits_within(child, sig: int, seconds: float) -> bool:
    child.proc.send_signal(sig)
    try:
        child.proc.wait(seconds)
        return True
    except Exception:
        return False


def test_sigterm_with_redis_down(spawn, exporter, tmp_path: Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    ex = exporter(write_config(tmp_path / "exp.yml", dead, {"risk": {"alert": {"rate": 200}}}))
    wait_for(lambda: ex.value("nautilus_probe_failures_total") >= 50, 10)
    engines = spawn("engines", "--config.file", str(write_engines(
        tmp_path / "syn.yml", dead, {"risk": {"alert": {}}})))
    time.sleep(1)
    started = time.monotonic()
    assert exits_within(ex.child, signal.SIGTERM, EXIT_WITHIN_S) and exits_within(
        engines, signal.SIGTERM, EXIT_WITHIN_S)
    assert time.monotonic() - started < 3


def test_sigterm_with_redis_frozen(redis_server, spawn, exporter, tmp_path: Path) -> None:
    """Redis SIGSTOPped: every call waits on its socket timeout (2 s), several in a
    row; the exporter still exits within EXIT_WITHIN_S of SIGTERM (docs/performance.md)."""
    spawn("engines", "--config.file", str(write_engines(
        tmp_path / "syn.yml", redis_server.url, {"risk": {"alert": {}}})))
    ex = exporter(write_config(tmp_path / "exp.yml", redis_server.url,
                               {"risk": {"alert": {"rate": 200}}}))
    wait_for(lambda: ex.value("nautilus_probe_latency_seconds_count") >= 100, 10)
    os.kill(redis_server.proc.pid, signal.SIGSTOP)
    try:
        time.sleep(1)
        started = time.monotonic()
        assert exits_within(ex.child, signal.SIGTERM, EXIT_WITHIN_S), "still running after SIGTERM"
        print(f"exited {time.monotonic() - started:.2f} s after SIGTERM")
    finally:
        os.kill(redis_server.proc.pid, signal.SIGCONT)


def test_a_reload_of_the_largest_file_keeps_the_probe_rate(redis_url: str, spawn, exporter,
                                                           tmp_path: Path) -> None:
    """Reloads of a file at the node limit (rejected, as it must be) parse on a worker
    thread: the probes keep their rate (±5 %) meanwhile, and a scrape is answered."""
    from nautilus_config.strict_yaml import MAX_NODES

    spawn("engines", "--config.file", str(write_engines(
        tmp_path / "syn.yml", redis_url, {"risk": {"alert": {}}})))
    cfg = write_config(tmp_path / "exp.yml", redis_url, {"risk": {"alert": {"rate": 200}}})
    ex = exporter(cfg)
    wait_for(lambda: ex.value("nautilus_probe_requests_total") >= 200, 10)
    big = tmp_path / "big.yml"
    big.write_text("engines:\n" + "".join(f"  e{i}: {{a: {{}}}}\n" for i in range(MAX_NODES)))
    big_text = big.read_text()

    def rate_over(seconds: float, reload: bool) -> float:
        before, started = ex.value("nautilus_probe_requests_total"), time.monotonic()
        while time.monotonic() - started < seconds:
            if reload:
                cfg.write_text(big_text)
                assert http_post(f"{ex.base}/-/reload", timeout=5)[0] == 500  # as Prometheus
        return (ex.value("nautilus_probe_requests_total") - before) / (time.monotonic() - started)

    def late() -> float:  # probes sent more than 100 ms after they were due
        text = ex.metrics()
        return (value(text, "nautilus_probe_schedule_lag_seconds_count")
                - value(text, "nautilus_probe_schedule_lag_seconds_bucket", le="0.1024"))

    quiet = rate_over(3, reload=False)
    late_before = late()
    busy = rate_over(3, reload=True)
    # Each window against the configured 200/s, the known truth (the two windows
    # compared with each other doubled the noise of reading a counter over 3 s on a
    # busy machine: a fresh-clone CI read 193.8/s quiet and 204.1/s while reloading).
    assert abs(quiet - 200) <= 0.05 * 200 and abs(busy - 200) <= 0.05 * 200, (quiet, busy)
    assert late() - late_before <= 5, late() - late_before  # the loop was never held
    assert ex.value("nautilus_probe_config_last_reload_successful") == 0


def test_sigterm_while_overloaded_and_mid_reload(redis_url: str, spawn, exporter,
                                                 tmp_path: Path) -> None:
    spawn("engines", "--config.file", str(write_engines(
        tmp_path / "syn.yml", redis_url, {"risk": {"alert": {"service_time": "50ms"}}})))
    cfg = write_config(tmp_path / "exp.yml", redis_url,
                       {"risk": {"alert": {"rate": 20000, "timeout": "5s"}}}, max_in_flight=50000)
    ex = exporter(cfg)
    wait_for(lambda: ex.value("nautilus_probe_in_flight") >= 10000, 10)
    write_config(cfg, redis_url, {"risk": {"alert": {"rate": 10}}})
    ex.child.proc.send_signal(signal.SIGHUP)
    assert exits_within(ex.child, signal.SIGTERM, EXIT_WITHIN_S)


def test_sigint_mid_http_reload(redis_url: str, exporter, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "exp.yml", redis_url, {"risk": {"alert": {"rate": 50}}})
    ex = exporter(cfg)
    write_config(cfg, redis_url, {"risk": {"alert": {"rate": 60}}})
    thread = threading.Thread(target=lambda: http_post(f"{ex.base}/-/reload", timeout=5))
    thread.start()
    assert exits_within(ex.child, signal.SIGINT, EXIT_WITHIN_S)
    thread.join(6)


def test_a_flood_of_health_checks_is_paced(redis_url: str, spawn, exporter, tmp_path: Path) -> None:
    """20 clients asking /-/healthy and /-/ready in a loop get at most ~200 answers a
    second between them (3,200/s and 75 % of a core before); the probes keep their rate."""
    spawn("engines", "--config.file", str(write_engines(
        tmp_path / "syn.yml", redis_url, {"risk": {"alert": {}}})))
    ex = exporter(write_config(tmp_path / "exp.yml", redis_url, {"risk": {"alert": {"rate": 200}}}))
    wait_for(lambda: ex.value("nautilus_probe_latency_seconds_count") >= 100, 10)
    answers: list[int] = []
    stop = threading.Event()

    def client(path: str) -> None:
        while not stop.is_set():
            answers.append(http_get(f"{ex.base}{path}", timeout=5)[0])

    sent_before = ex.value("nautilus_probe_requests_total")
    started = time.monotonic()
    threads = [threading.Thread(target=client, args=("/-/healthy" if i % 2 else "/-/ready",))
               for i in range(20)]
    for t in threads:
        t.start()
    time.sleep(3)
    stop.set()
    for t in threads:
        t.join(10)
    took = time.monotonic() - started
    probes = (ex.value("nautilus_probe_requests_total") - sent_before) / took
    assert set(answers) == {200}
    assert len(answers) / took <= 230, len(answers) / took
    assert abs(probes - 200) <= 10, probes
