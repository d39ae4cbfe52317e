"""A three-node Redis Cluster carries probes for all nine engines with no errors."""

from __future__ import annotations

import subprocess

import pytest
import redis
import yaml

from prometheus_client import CollectorRegistry, generate_latest

from exporter.probes.messagebus import ProbeSpec
from exporter.metrics import build
from exporter.probes.backlog import BacklogProbe, BacklogSpec, build_metrics
from exporter.supervise import Supervisor
from nautilus_wire.redis_client import connect
from nautilus_wire import protocol
from nautilus_wire.protocol import ENGINE_OPERATIONS

from nautilus_testkit import RedisServer, wait_for
from nautilus_testkit.sentinel import cluster_port
from nautilus_testkit.exposition import value
from nautilus_testkit.probing import probing


@pytest.fixture
def redis_cluster():
    servers = [RedisServer(port, ("--cluster-enabled", "yes"))
               for port in (cluster_port() for _ in range(3))]
    ports = [s.port for s in servers]
    try:
        for server in servers:
            server.start()
        subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports],
                        "--cluster-replicas", "0", "--cluster-yes"], check=True,
                       capture_output=True, timeout=30)
        for port in ports:  # every node agrees the cluster is up
            wait_for(lambda port=port: "cluster_state:ok" in subprocess.run(
                ["redis-cli", "-p", str(port), "cluster", "info"], capture_output=True,
                text=True).stdout, 15)
        yield ports
    finally:
        for server in servers:
            server.remove()


async def test_nine_engines_over_a_cluster(redis_cluster, spawn, tmp_path) -> None:
    url = f"redis+cluster://127.0.0.1:{redis_cluster[0]}/0"
    cfg = tmp_path / "syn.yml"
    cfg.write_text(yaml.safe_dump({"redis_url": url, "report_interval": "1s"}))
    spawn("engines", "--config.file", str(cfg))
    cluster = redis.RedisCluster(host="127.0.0.1", port=redis_cluster[0], decode_responses=True)
    streams = [protocol.request_stream(protocol.DEFAULT_PREFIX, e, "low") for e in ENGINE_OPERATIONS]
    wait_for(lambda: all(cluster.exists(s) for s in streams), 15)  # every consumer group made
    probes = [ProbeSpec(e, ops[0], 50, 2.0, "normal", 16) for e, ops in ENGINE_OPERATIONS.items()]
    async with probing(url, probes, duration=3) as h:
        text = h.text()
    for engine in ENGINE_OPERATIONS:
        sent = value(text, "nautilus_probe_requests_total", engine=engine)
        assert sent >= 140, (engine, sent)
        assert value(text, "nautilus_probe_latency_seconds_count", engine=engine) == sent
    assert value(text, "nautilus_probe_failures_total") == 0
    assert value(text, "nautilus_probe_replies_malformed_total") == 0
    # The engines' request streams really live on all three masters: a key exists
    # only on the master that serves its slot, and each master holds some.
    holders = {}
    for port in redis_cluster:
        with redis.Redis(port=port, decode_responses=True) as node:
            holders[port] = [s for s in streams if node.execute_command(
                "CLUSTER", "COUNTKEYSINSLOT", node.execute_command("CLUSTER", "KEYSLOT", s))]
    assert sorted(s for found in holders.values() for s in found) == sorted(streams)
    assert all(holders.values()), holders
    # The backlog reader routes each stream's XINFO GROUPS to its own master.
    cluster.xadd(protocol.request_stream(protocol.DEFAULT_PREFIX, "risk", "critical"), {"n": "1"})
    reg = CollectorRegistry()
    client = connect(url)
    m = build(reg)
    await BacklogProbe(client, m, build_metrics(reg), BacklogSpec(
        protocol.DEFAULT_PREFIX, tuple(ENGINE_OPERATIONS), 1.0), Supervisor(m)).poll()
    await client.aclose()
    text = generate_latest(reg).decode()
    for engine in ENGINE_OPERATIONS:
        assert value(text, "nautilus_probe_messagebus_consumers", engine=engine) >= 1, engine
        assert value(text, "nautilus_probe_messagebus_pending_messages", engine=engine) == 0
    assert value(text, "nautilus_probe_messagebus_errors_total", operation="backlog") == 0
    cluster.close()
