"""Shared fixtures: real redis-server processes on free ports, stopped by PID."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis
import yaml

from nautilus_testkit import ROOT, RedisServer, free_port, http_get, wait_for
from nautilus_testkit.exposition import value



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
    with the generated rules (windows shortened for a test). Yields (api, redis_url)."""
    port = free_port()
    log = tmp_path / "stack.log"
    out = open(log, "wb")
    stack = subprocess.Popen([sys.executable, "-m", "nautilus_probe", "stack", "--duration", "240",
                              "--web.listen-address", f"127.0.0.1:{port}"], cwd=ROOT,
                             stdout=out, stderr=subprocess.STDOUT)
    prometheus = None
    try:
        wait_for(lambda: "Metrics: " in log.read_text(), 40)
        redis_url = re.search(r"Redis at (redis://\S+)", log.read_text()).group(1)
        # The generated rules, from thresholds.yml with windows short enough for a test.
        data = yaml.safe_load((ROOT / "thresholds.yml").read_text())
        data["alerting"].update({"rate_window": "10s", "for": {"warning": "4s", "critical": "2s"}})
        (tmp_path / "thresholds.yml").write_text(yaml.safe_dump(data))
        rules = tmp_path / "rules"
        rules.mkdir()
        from alerts.__main__ import render
        from alerts.thresholds import Thresholds

        for name, text in render(Thresholds.load(str(tmp_path / "thresholds.yml"))).items():
            (rules / name).write_text(text)
        prom_port = free_port()
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules / "recording.yml"), str(rules / "alerts.yml")],
            "scrape_configs": [{"job_name": "nautilus-probe",
                                "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}]}))
        binary = shutil.which("prometheus")
        assert binary, "prometheus is missing: run ./run setup"
        prometheus = subprocess.Popen(
            [binary, f"--config.file={tmp_path / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        api = f"http://127.0.0.1:{prom_port}"
        wait_for(lambda: http_get(f"{api}/-/ready")[0] == 200, 30)
        yield api, redis_url
    finally:
        for proc in (prometheus, stack):
            if proc is not None:
                proc.terminate()
                proc.wait(20)
        out.close()


os.environ.setdefault("PYTHONUNBUFFERED", "1")
