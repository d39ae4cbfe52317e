"""--shard i/N: disjoint shards that together are the whole plan."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

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
    assert sum(s.trading_request.rate for s in shards) == pytest.approx(whole.trading_request.rate)
    assert sum(s.websocket.connections for s in shards) == whole.websocket.connections
    assert sum(s.websocket.heartbeat_rate for s in shards) == pytest.approx(whole.websocket.heartbeat_rate)
    assert [s.websocket.subscribe_connections for s in shards] == [1, 0, 0]
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
