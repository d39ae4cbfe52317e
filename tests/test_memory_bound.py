"""The exporter's memory is bounded by its configuration: `--config.check` prints
the bound, a configuration above `max_memory_mib` is refused, and the two edge
configurations (the most in flight, the biggest payloads) with nothing answering
stay under their printed bound — run under an address-space limit, so a regression
fails the test instead of hurting the machine."""

from __future__ import annotations

import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import yaml

from exporter.config import Config
from exporter.costs import MIB
from exporter.signals import EXIT_WITHIN_S
from nautilus_config.errors import ConfigError
from nautilus_testkit import ROOT, free_port, http_get, wait_for
from nautilus_testkit.exposition import value

ADDRESS_SPACE = 4 << 30


def test_the_audits_largest_config_is_refused_with_its_bound(tmp_path: Path) -> None:
    """500 series at 199/s, 60 s timeouts, max_in_flight 1e6, 100,000 WebSocket
    connections: 1.7-2.7 GB and rising when it was accepted."""
    data = {"max_in_flight": 1_000_000,
            "defaults": {"rate": 199, "timeout": "60s"},
            "engines": {f"e{i}": {f"op{j}": {} for j in range(50)} for i in range(10)},
            "trading_request": {"rate": 100, "timeout": "60s"},
            "websocket": {"endpoints": ["ws://127.0.0.1:9/ws"], "connections": 100_000}}
    path = tmp_path / "big.yml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"max_memory_mib: this configuration may hold up to "
                                          r"[\d,]+ MiB \(base 96, .*\), more than 1,024 MiB"):
        Config.load(str(path))
    with pytest.raises(ConfigError) as refused:
        Config.load(str(path))
    said = int(re.search(r"up to ([\d,]+) MiB", str(refused.value))[1].replace(",", ""))
    # The figure it says is the max_memory_mib that accepts it, and one less is refused.
    data["max_memory_mib"] = said - 1
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=f"up to {said:,} MiB"):
        Config.load(str(path))
    data["max_memory_mib"] = said
    path.write_text(yaml.safe_dump(data))
    assert Config.load(str(path)).memory.total <= said * MIB
    data["max_memory_mib"] = 8192  # an operator who has the memory says so
    path.write_text(yaml.safe_dump(data))
    assert 2048 < Config.load(str(path)).memory.total / MIB < 8192


def test_config_check_prints_the_bound() -> None:
    proc = subprocess.run([sys.executable, "-m", "nautilus_probe", "exporter", "--config.file",
                           "config/exporter.yml", "--config.check"], cwd=ROOT, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    bound = int(re.search(r"memory bound ([\d,]+) MiB of max_memory_mib 1,024", proc.stdout)
                .group(1).replace(",", ""))
    assert 100 <= bound <= 200, proc.stdout


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 1024


@pytest.mark.parametrize(("name", "probe", "extra", "seconds"), [
    # 20,000/s for 60 s timeouts: in flight reaches max_in_flight (200,000), then skips.
    ("most in flight", {"rate": 20_000, "timeout": "60s"}, {"max_in_flight": 200_000}, 14),
    # 50,000/s of 64 KiB payloads: more than Redis takes; one send holds at most 8 MiB.
    ("biggest payloads", {"rate": 50_000, "timeout": "2s", "payload_size": 65_536}, {}, 8),
])
def test_an_edge_config_with_nothing_answering_stays_under_its_bound(
        name, probe, extra, seconds, redis_server, tmp_path: Path) -> None:
    path = tmp_path / "edge.yml"
    path.write_text(yaml.safe_dump({"redis_url": redis_server.url, **extra,
                                    "engines": {"risk": {"limit_check": probe}}}))
    bound = Config.load(str(path)).memory.total / MIB
    port = free_port()

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))

    log = open(tmp_path / "exporter.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "nautilus_probe", "exporter", "--config.file",
                             str(path), "--web.listen-address", f"127.0.0.1:{port}"], cwd=ROOT,
                            preexec_fn=limited, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: http_get(f"http://127.0.0.1:{port}/-/ready")[0] == 200, 20)
        peak = 0.0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            peak = max(peak, rss_mib(proc.pid))
            time.sleep(0.25)
        text = http_get(f"http://127.0.0.1:{port}/metrics")[1]
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        stopped = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    print(f"{name}: peak RSS {peak:.0f} MiB of a {bound:.0f} MiB bound; SIGTERM {stopped:.2f} s")
    assert peak <= bound, (peak, bound)
    assert stopped < EXIT_WITHIN_S, stopped
    assert proc.returncode == 0, (tmp_path / "exporter.log").read_text()[-2000:]
    # Its own limits reached: skipped and counted, never blamed on the network.
    assert value(text, "nautilus_probe_probes_skipped_total") > 0
    assert value(text, "nautilus_probe_failures_total", reason="send_failed") == 0
    # Nor does Redis fill up with requests nobody reads (256 MiB a stream at most).
    with redis.Redis(port=redis_server.port) as r:
        assert r.info("memory")["used_memory"] < 400 * MIB
