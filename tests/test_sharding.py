"""--shard i/N: disjoint shards that together are the whole plan."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from exporter.config import Config, parse_shard
from nautilus_config.errors import ConfigError

from nautilus_testkit import ROOT

SHIPPED = str(ROOT / "config" / "exporter.yml")


def test_shards_are_disjoint_and_complete() -> None:
    whole = Config.load(SHIPPED)
    shards = [Config.load(SHIPPED, shard=(i, 3)) for i in (1, 2, 3)]
    seen = [(p.engine, p.op) for s in shards for p in s.probes]
    assert sorted(seen) == sorted((p.engine, p.op) for p in whole.probes)
    assert len(seen) == len(set(seen))
    assert {len(s.probes) for s in shards} == {5}  # 15 streams over 3 shards
    assert sum(s.specs["trading_request"].rate for s in shards) == pytest.approx(
        whole.specs["trading_request"].rate)
    ws = [s.specs["websocket"] for s in shards]
    assert sum(w.connections for w in ws) == whole.specs["websocket"].connections
    assert sum(w.heartbeat_rate for w in ws) == pytest.approx(whole.specs["websocket"].heartbeat_rate)
    assert [w.subscribe_connections for w in ws] == [1, 0, 0]
    assert len({s.prober_id for s in shards}) == 3  # each its own reply stream


@pytest.mark.parametrize("text", ["0/3", "4/3", "x", "1/0"])
def test_bad_shard(text: str) -> None:
    with pytest.raises(ConfigError, match="--shard"):
        parse_shard(text)
    proc = subprocess.run([sys.executable, "-m", "nautilus_probe", "exporter", "--config.file", SHIPPED,
                           "--shard", text, "--config.check"], cwd=ROOT, capture_output=True,
                          text=True)
    assert proc.returncode == 2 and "--shard" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(("host", "shard"), [("nautilus-probe-0", "1/3"), ("nautilus-probe-2", "3/3"),
                                             ("probe-x-10", "11/12")])
def test_the_shard_from_a_statefulset_pods_ordinal(host: str, shard: str) -> None:
    from exporter.cli import shard_from_ordinal

    n = shard.split("/")[1]
    assert shard_from_ordinal(f"ordinal/{n}", host) == shard
    assert shard_from_ordinal("2/3", host) == "2/3"  # i/N is left alone


def test_an_ordinal_without_a_pod_or_past_the_shards_is_refused() -> None:
    env = {**os.environ, "HOSTNAME": "nautilus-probe-3"}
    proc = subprocess.run([sys.executable, "-m", "nautilus_probe", "exporter", "--config.file", SHIPPED,
                           "--shard", "ordinal/3", "--config.check"], cwd=ROOT, capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "ordinal 3, past the 3 shards" in proc.stderr and "replicas" in proc.stderr
    from exporter.cli import shard_from_ordinal
    with pytest.raises(ConfigError, match="host name 'laptop' has none"):
        shard_from_ordinal("ordinal/3", "laptop")


def test_a_plan_over_the_limits_runs_when_sharded_as_its_error_advises(tmp_path) -> None:
    """The limit errors say "shard the rest: --shard": the limits are one process's, so
    each shard's part is checked, not the whole file (which refused every shard)."""
    engines = {f"e{i}": {f"op{j}": {"rate": 1} for j in range(60)} for i in range(10)}
    targets = {f"h{i}": f"http://127.0.0.1:{9000 + i}/health" for i in range(1_100)}
    series, http = tmp_path / "series.yml", tmp_path / "http.yml"
    series.write_text(yaml.safe_dump({"engines": engines, "max_memory_mib": 65_536}))
    http.write_text(yaml.safe_dump({"http": {"targets": targets}}))
    with pytest.raises(ConfigError, match="engines: names 600 engine × op series; at most 500 "
                                          r"per exporter \(shard the rest: --shard\)"):
        Config.load(str(series))
    assert [len(Config.load(str(series), shard=(i, 2)).probes) for i in (1, 2)] == [300, 300]
    with pytest.raises(ConfigError, match="http.targets: names 1100 targets; at most 500"):
        Config.load(str(http))
    with pytest.raises(ConfigError, match="http.targets: shard 2/2 names 550 targets"):
        Config.load(str(http), shard=(2, 2))
    assert [len(Config.load(str(http), shard=(i, 3)).specs["http"].targets)
            for i in (1, 2, 3)] == [367, 367, 366]
    proc = subprocess.run([sys.executable, "-m", "nautilus_probe", "exporter", "--config.file",
                           str(series), "--workers", "2", "--config.check"], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "300 probe series" in proc.stdout
