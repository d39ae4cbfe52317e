"""Shared fixtures: real redis-server processes on free ports, stopped by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis
import yaml

from nautilus_testkit import ROOT, RedisServer, free_port, http_get, live, wait_for
from nautilus_testkit.exposition import value



# `./run test` runs two lanes at once: `pytest -m live` and `pytest -m "not live"`.
# The live tests spend minutes waiting on Prometheus's and Alertmanager's cadence
# (scrapes, rule evaluations, `for:`, group_wait): they run first in a lane of their
# own, beside everything else in the other. Every test that starts the local stack
# is in that lane (the stack's WebSocket engines listen on fixed ports). The tests
# that measure latency against a known truth come after them in the same lane, by
# when the other lane has finished and left them the machine.
LIVE = ("test_alerting_live.py", "test_live_prometheus.py", "test_review.py",
        "test_capacity_push.py", "test_stack.py", "test_notifications.py",
        "test_readme_flow.py")
TIMING = ("test_messagebus_probe.py", "test_websocket_probe.py", "test_http_probe.py",
          "test_examples.py", "test_benchmarks.py", "test_faults.py", "test_runtime.py",
          "test_kubernetes_pods.py")
# Heavy but judged by counts, not by latency: last in the other lane, beside the live
# lane's cadence waits, which leave a core free.
LAST = ("test_failover.py",)


@pytest.hookimpl(tryfirst=True)  # before -m selects by the marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def module(item: pytest.Item) -> str:
        return item.nodeid.removeprefix("tests/").split("::")[0]

    for item in items:
        if module(item) in LIVE + TIMING:
            item.add_marker(pytest.mark.live)
    items.sort(key=lambda item: (module(item) in TIMING, module(item) in LAST))


def sync_client(server: RedisServer) -> redis.Redis:
    return redis.Redis(port=server.port, decode_responses=True)


@pytest.fixture(scope="session")
def redis_session():
    server = RedisServer().start()
    yield server
    server.remove()


@pytest.fixture
def redis_url(redis_session: RedisServer) -> str:
    """A clean database on the session's redis-server."""
    with sync_client(redis_session) as c:
        c.flushall()
    return redis_session.url


@pytest.fixture
def redis_server():
    """A redis-server of this test's own (for tests that kill it)."""
    server = RedisServer().start()
    yield server
    server.remove()


class Child:
    """A `nautilus-probe` subcommand run as a child process, stopped by PID."""

    def __init__(self, *args: str, log: Path) -> None:
        self.log = log
        self._fh = open(log, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "nautilus_probe", *args], cwd=ROOT,
                                     stdout=self._fh, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._fh.close()
        return self.proc.returncode

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def spawn(tmp_path: Path):
    children: list[Child] = []

    def start(*args: str) -> Child:
        child = Child(*args, log=tmp_path / f"child{len(children)}.log")
        children.append(child)
        return child

    yield start
    for child in reversed(children):
        child.stop()


def write_config(path: Path, redis_url: str, engines: dict, **extra) -> Path:
    path.write_text(yaml.safe_dump({"redis_url": redis_url, "engines": engines,
                                    "self_reports": {"interval": "1s"}, **extra}))
    return path


def write_engines(path: Path, redis_url: str, engines: dict) -> Path:
    path.write_text(yaml.safe_dump({"redis_url": redis_url, "report_interval": "1s",
                                    "engines": engines}))
    return path


class Running:
    def __init__(self, child, port: int) -> None:
        self.child, self.base = child, f"http://127.0.0.1:{port}"

    def metrics(self) -> str:
        status, body = http_get(f"{self.base}/metrics")
        assert status == 200
        return body

    def value(self, name: str, **labels: str) -> float:
        return value(self.metrics(), name, **labels)


@pytest.fixture
def exporter(spawn, tmp_path):
    """Start `nautilus-probe exporter` on a config; every scrape renders afresh."""
    def start(config: Path, *flags: str) -> Running:
        port = free_port()
        child = spawn("exporter", "--config.file", str(config),
                      "--web.listen-address", f"127.0.0.1:{port}",
                      "--web.render-max-age", "0", "--web.enable-lifecycle", *flags)
        running = Running(child, port)
        wait_for(lambda: http_get(f"{running.base}/-/ready")[0] == 200, 15)
        return running
    return start


@pytest.fixture
def live_stack(tmp_path: Path):
    """The local stack (./run stack) and a real Prometheus scraping it every second
    with the generated rules (windows shortened for a test). Yields (Prometheus API,
    redis URL, exporter base URL)."""
    # The shipped burn-rate windows (the dashboards read their recorded series), rates
    # over 10 s and `for:` of seconds.
    with live.live_stack(tmp_path, alerting={"rate_window": "10s",
                                             "for": {"page": "2s", "ticket": "4s"}}) as running:
        yield running.api, running.redis_url, running.exporter


os.environ.setdefault("PYTHONUNBUFFERED", "1")
