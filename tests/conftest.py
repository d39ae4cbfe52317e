"""Shared fixtures: real redis-server processes on free ports, stopped by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import yaml

from nautilus_testkit import ROOT, RedisServer, free_port, http_get, live, wait_for
from nautilus_testkit.exposition import value



# `./run test` runs the suite in lanes, each a `pytest -m LANE` (run_tests in ./run), in
# two phases, so that work that takes the CPU never runs beside tests that need it
# quiet. First the busy phase, three lanes at once: `rest` (every test not named here),
# `checks` (linters, promtool, schemas, package builds: CPU-bound tools) and `loads`
# (load tests, failovers and other work judged by counts). Then, when those are done,
# the quiet phase: `timing`, the tests that measure latency against a known truth,
# beside `stacks`, live stacks whose tests assert that nothing but the injected fault
# alerts (a starved CPU makes probes late, which reads as a latency burn, so they run
# one at a time; pinned to one core, a stack starved itself), and `idle`, tests that
# mostly wait; last, `alone`. Every stack a test starts listens on free ports (`stack
# --websocket.port`), so any lane may start one. The lanes are balanced by their
# durations on a 2-core machine (`./run test --durations=40` prints them).
LANES = {
    "checks": ("test_alerts.py", "test_lint.py", "test_config_faults.py", "test_wire_package.py",
               "test_compose.py", "test_kubernetes.py", "test_dashboards.py", "test_backlog.py"),
    "loads": ("test_review.py", "test_readme_flow.py", "test_capacity_push.py",
              "test_failover.py", "test_cluster.py",
              # The stack's tests that judge neither alerts nor latency (the others: `stacks`).
              "test_stack.py::test_a_second_sigterm_while_stopping_leaves_no_child",
              "test_stack.py::test_a_bad_engines_file_is_refused_before_anything_starts",
              "test_stack.py::test_free_ports_lie_outside_the_kernels_ephemeral_range",
              "test_stack.py::test_a_taken_websocket_port_is_named_with_the_flag_that_moves_it",
              "test_stack.py::test_the_websocket_ports_flag"),
    "timing": ("test_messagebus_probe.py", "test_websocket_probe.py", "test_http_probe.py",
               "test_examples.py", "test_benchmarks.py", "test_faults.py",
               "test_kubernetes_pods.py"),
    "stacks": ("test_alerting_live.py", "test_stack.py", "test_live_prometheus.py"),
    "idle": ("test_notifications.py", "test_wire_self_report.py", "test_fault_logs.py",
             "test_responder.py", "test_tcp_probe.py", "test_engines_doc.py"),
    # The exporter in the test's own event loop, its schedule lag judged over a second
    # or so around a reload: a live stack's start beside it read as lag. Last, alone.
    "alone": ("test_runtime.py",),
}
# A plain `pytest` (one process) runs the busy lanes first.
ORDER = ("rest", "checks", "loads", "stacks", "idle", "timing", "alone")


def lane_of(nodeid: str) -> tuple[str, int]:
    """(lane, place in it) of a test: its own entry in LANES, else its module's, else
    `rest`."""
    test = nodeid.removeprefix("tests/").split("[")[0]
    for key in (test, test.split("::")[0]):
        for lane, entries in LANES.items():
            if key in entries:
                return lane, entries.index(key)
    return "rest", 0


@pytest.hookimpl(tryfirst=True)  # before -m selects by the marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    lanes = {item.nodeid: lane_of(item.nodeid) for item in items}
    for item in items:
        lane = lanes[item.nodeid][0]
        item.add_marker(getattr(pytest.mark, lane))
        if lane in ("timing", "alone"):
            # Latency and loop lag judged in milliseconds on a shared 2-core machine: a
            # test that failed runs once more (pytest-rerunfailures; the summary counts
            # it as "rerun"). A fault of the prober fails both runs; a neighbour's burst
            # of CPU seldom lands on both (a fresh-clone CI read one 0.5 s stall in
            # `alone`'s schedule lag, a mean of 11 ms over 45 probes).
            item.add_marker(pytest.mark.flaky(reruns=1))
    # Stable: within a lane, the order of LANES, then the file's own.
    items.sort(key=lambda item: (ORDER.index(lanes[item.nodeid][0]), lanes[item.nodeid][1]))


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


@dataclass(frozen=True)
class Scrape:
    """An exposition with the monotonic times just before its request and just after
    its answer: the exporter rendered it somewhere in between. A count over wall time
    is judged against the time that really passed between two of them, never against
    a sleep's nominal length (a loaded machine oversleeps, and answers late)."""

    text: str
    before: float
    after: float

    def value(self, name: str, **labels: str) -> float:
        return value(self.text, name, **labels)

    def to(self, last: Scrape) -> tuple[float, float]:
        """The least and the most time that can have passed between this render and
        `last`'s."""
        return last.before - self.after, last.after - self.before


class Running:
    def __init__(self, child, port: int) -> None:
        self.child, self.base = child, f"http://127.0.0.1:{port}"

    def metrics(self) -> str:
        status, body = http_get(f"{self.base}/metrics")
        assert status == 200
        return body

    def scrape(self) -> Scrape:
        before = time.monotonic()
        text = self.metrics()
        return Scrape(text, before, time.monotonic())

    def value(self, name: str, **labels: str) -> float:
        return value(self.metrics(), name, **labels)

    def window(self, count: Callable[[Scrape], float], more: float,
               timeout: float = 15) -> tuple[Scrape, Scrape]:
        """Two scrapes, the second the first (read every half second: parsing an
        exposition takes the CPU of servers in the test's own process) whose `count`
        is at least `more` above the first's: a window of measured length to judge a
        rate over, not the exporter's start (it may probe before /-/ready answers) nor a
        sleep's nominal length."""
        first = self.scrape()
        start = count(first)

        def more_counted() -> Scrape | None:
            scrape = self.scrape()
            return scrape if count(scrape) - start >= more else None
        return first, wait_for(more_counted, timeout, interval=0.5)


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
