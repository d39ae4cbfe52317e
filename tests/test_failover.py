"""The MessageBus fails over: kill -9 of a Sentinel-managed master, and of a Redis
Cluster master holding engines' slots, while the exporter probes nine engines.
Every scrape balances (requests = answered + failed + in flight), answers come back
within 10 s of the kill and then flow at the configured rate, the responders find
the new master by themselves, and the exporter says the master moved."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import yaml

from nautilus_config.errors import ConfigError
from nautilus_config.messagebus import redis_url_check
from nautilus_testkit import ROOT, wait_for
from nautilus_testkit.failover import OK, through_failover
from nautilus_testkit.sentinel import Cluster, MASTER, Sentinels
from nautilus_wire import protocol
from nautilus_wire.protocol import ENGINE_OPERATIONS
from nautilus_wire.redis_client import sentinel_address

from .conftest import write_config

RATE = 20  # per engine: 180 probes/s in all
WINDOW_S = 10.0


def nine_engines(tmp_path: Path, url: str, spawn) -> None:
    cfg = tmp_path / "syn.yml"
    cfg.write_text(yaml.safe_dump({"redis_url": url, "report_interval": "1s"}))
    spawn("engines", "--config.file", str(cfg))


def probe_all(tmp_path: Path, url: str, exporter):
    engines = {e: {ops[0]: {"rate": RATE, "timeout": "500ms"}} for e, ops in ENGINE_OPERATIONS.items()}
    ex = exporter(write_config(tmp_path / "exp.yml", url, engines))
    wait_for(lambda: ex.value(OK) >= 9 * RATE, 20)
    return ex


def check(run, masters_after: set[str]) -> None:
    assert run.unbalanced() == [], [(s.requests, s.answered, s.failed, s.in_flight)
                                    for s in run.unbalanced()]
    assert run.first_answer_s < 10.0, run.first_answer_s
    sent, answered = run.window_rate()
    # The following 10 s at the configured rate: sent on schedule, and answered or
    # still on their way at its end (a loaded machine leaves up to a timeout's worth
    # in flight: 90 probes at 500 ms); scrapes a few hundred ms apart bound how
    # exactly a rate can be read.
    span = run.after.at - run.back.at
    answering = answered + (run.after.in_flight - run.back.in_flight) / span
    assert sent >= 0.9 * 9 * RATE, sent
    assert answering >= 0.9 * 9 * RATE, (answered, answering)
    # What was lost during the failover is counted under a reason, never answered twice.
    assert set(run.lost()) <= {"send_failed", "timeout"}, run.lost()
    assert run.after.changes >= 1
    assert run.after.masters == masters_after


@pytest.fixture
def sentinels():
    group = Sentinels().start()
    yield group
    group.stop()


def test_a_sentinel_failover_is_probed_through(sentinels, spawn, exporter, tmp_path: Path) -> None:
    nine_engines(tmp_path, sentinels.url, spawn)
    ex = probe_all(tmp_path, sentinels.url, exporter)
    assert ex.value("nautilus_probe_messagebus_master_info",
                    address=f"127.0.0.1:{sentinels.master_port()}") == 1
    run = through_failover(ex.base, sentinels.kill_master, window=WINDOW_S)
    assert sentinels.master_port() == sentinels.replica.port
    check(run, {f"127.0.0.1:{sentinels.replica.port}"})
    assert run.after.changes == 1
    # The responders are on the new master by themselves: their groups are there.
    with redis.Redis(port=sentinels.replica.port, decode_responses=True) as new:
        for engine in ENGINE_OPERATIONS:
            stream = protocol.request_stream(protocol.DEFAULT_PREFIX, engine, "normal")
            groups = {g["name"]: g for g in new.xinfo_groups(stream)}
            assert groups[protocol.RESPONDER_GROUP]["consumers"] >= 1, engine
    # A promotion that lost a consumer group (the replica had not received it yet):
    # the responders recreate it, and risk is answered again.
    with redis.Redis(port=sentinels.replica.port, decode_responses=True) as new:
        stream = protocol.request_stream(protocol.DEFAULT_PREFIX, "risk", "normal")
        assert new.xgroup_destroy(stream, protocol.RESPONDER_GROUP) == 1
        answered = ex.value(OK, engine="risk")
        wait_for(lambda: ex.value(OK, engine="risk") >= answered + RATE, 10)
        assert protocol.RESPONDER_GROUP in {g["name"] for g in new.xinfo_groups(stream)}
    # The knobs command takes the same URL.
    knobs = subprocess.run([sys.executable, "-m", "nautilus_probe", "knobs", "risk", "--redis.url",
                            sentinels.url, "--clear"], cwd=ROOT, capture_output=True, text=True,
                           timeout=30)
    assert knobs.returncode == 0 and "risk: knobs cleared" in knobs.stdout, knobs.stderr
    print(f"sentinel failover: first answer {run.first_answer_s:.2f} s after the kill, "
          f"lost {run.lost()}")


def test_a_cluster_failover_is_probed_through(spawn, exporter, tmp_path: Path) -> None:
    cluster = Cluster(masters=3, replicas=1).start()
    try:
        nine_engines(tmp_path, cluster.url, spawn)
        ex = probe_all(tmp_path, cluster.url, exporter)
        risk = protocol.request_stream(protocol.DEFAULT_PREFIX, "risk", "normal")
        victim = cluster.master_of(risk)
        # The engines whose request streams (or the exporter's reply stream) it holds.
        replies = protocol.reply_key(protocol.DEFAULT_PREFIX, "exporter")
        hit = tuple(ENGINE_OPERATIONS) if cluster.master_of(replies) is victim else tuple(
            e for e in ENGINE_OPERATIONS if cluster.master_of(
                protocol.request_stream(protocol.DEFAULT_PREFIX, e, "normal")) is victim)
        before = {s.port for s in cluster.servers}

        def kill() -> float:
            victim.kill()
            return time.monotonic()

        run = through_failover(ex.base, kill, window=WINDOW_S, engines=hit)
        promoted = cluster.master_of(risk)
        assert promoted.port != victim.port and promoted.port in before
        wait_for(lambda: ex.value("nautilus_probe_messagebus_master_info",
                                  address=f"127.0.0.1:{promoted.port}") == 1, 5)
        check(run, run.after.masters)
        assert f"127.0.0.1:{victim.port}" not in run.after.masters
        print(f"cluster failover ({len(hit)} engines on the killed master): first answer "
              f"{run.first_answer_s:.2f} s after the kill, lost {run.lost()}")
    finally:
        cluster.stop()


@pytest.mark.parametrize("url, says", [
    ("redis+sentinel://", "at least one sentinel"),
    ("redis+sentinel://127.0.0.1/bus", "the port is required"),
    ("redis+sentinel://127.0.0.1:26379", "master's name"),
    ("redis+sentinel://127.0.0.1:26379/", "master's name"),
    ("redis+sentinel://127.0.0.1:70000/bus", "1-65535"),
    ("redis+sentinel://127.0.0.1:26379/bus/x", "database number"),
    ("redis+sentinel://127.0.0.1:26379/bus/0/1", "database number"),
    ("redis+sentinel://a:1,a:1/bus", "twice"),
    ("redis+sentinel://user:pw@127.0.0.1:26379/bus", "credentials"),
    ("redis+sentinel://127.0.0.1:26379/b us", "letters, digits"),
    ("redis+sentinel://127.0.0.1:26379,/bus", "host:port"),
])
def test_bad_sentinel_urls_are_refused_naming_the_key(url: str, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        redis_url_check("redis_url", url)
    assert "redis_url" in str(err.value) and says in str(err.value), str(err.value)


def test_sentinel_urls_parse() -> None:
    where = sentinel_address("rediss+sentinel://a.example:26379,[::1]:26380,10.0.0.3:1/bus/3")
    assert where.sentinels == (("a.example", 26379), ("::1", 26380), ("10.0.0.3", 1))
    assert (where.master, where.db, where.tls) == ("bus", 3, True)
    assert sentinel_address(f"redis+sentinel://h:1/{MASTER}").db == 0
    assert redis_url_check("k", "redis+sentinel://h:1/bus/0") == "redis+sentinel://h:1/bus/0"


def test_a_load_test_through_a_failover_reports_it(sentinels, spawn, tmp_path: Path) -> None:
    """`loadtest containerized` through a kill -9 of the master: it finishes, the
    requests the failover cost are counted as errors, and the result and summary
    say when it happened and during which phase."""
    nine_engines(tmp_path, sentinels.url, spawn)
    with redis.Redis(port=sentinels.master_port(), decode_responses=True) as r:
        wait_for(lambda: all(r.exists(protocol.request_stream(protocol.DEFAULT_PREFIX, e, "normal"))
                             for e in ENGINE_OPERATIONS), 15)
    out = tmp_path / "containerized.json"
    run = subprocess.Popen(
        [sys.executable, "-m", "nautilus_probe", "loadtest", "containerized", "--redis.url",
         sentinels.url, "--duration", "12", "--rate", "20", "--concurrency", "4",
         "--timeout", "1", "--quiet", "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    # Mid-run: once its first replies are in (a loaded machine starts it later).
    with redis.Redis(port=sentinels.master_port()) as r:
        wait_for(lambda: r.keys(protocol.reply_key(protocol.DEFAULT_PREFIX, "bench*")), 30,
                 interval=0.2)
    time.sleep(1)
    sentinels.kill_master()
    killed_at = time.time()
    stdout, stderr = run.communicate(timeout=60)
    assert run.returncode == 0, stderr
    result = json.loads(out.read_text())
    [failover] = result["failovers"]
    assert failover["to"] == [f"127.0.0.1:{sentinels.replica.port}"]
    assert failover["from"] == [f"127.0.0.1:{sentinels.master.port}"]
    assert 0 < failover["at_s"] <= 12 and abs(failover["at"] - killed_at) < 5, failover
    errors = (result["latency_benchmark"].get("errors", 0)
              + result["throughput_benchmark"].get("errors", 0)
              + sum(s["errors"] for s in result.get("sustained_benchmark", {}).get("steps", [])))
    engine_errors = [e.get("error_rate") or 0 for e in result["scalability_benchmark"].values()]
    assert errors > 0 or any(engine_errors), result  # the gap is counted, not left out
    assert "MessageBus failover 1" in stdout and failover["phase"] in stdout, stdout


async def test_sentinels_with_their_own_password(tmp_path: Path) -> None:
    """The master's password and the sentinels' own, each from its access setting
    (redis_password_file, redis_sentinel_password_file): both are needed, neither is
    in the URL."""
    from exporter.config import Config
    from nautilus_wire.redis_client import RedisAccess, connect

    group = Sentinels(password="master-pw", sentinel_password="sentinel-pw").start()
    try:
        (tmp_path / "pw").write_text("master-pw\n")
        (tmp_path / "spw").write_text("sentinel-pw\n")
        cfg = tmp_path / "exp.yml"
        cfg.write_text(yaml.safe_dump({
            "redis_url": group.url, "redis_password_file": str(tmp_path / "pw"),
            "redis_sentinel_password_file": str(tmp_path / "spw"),
            "engines": {"risk": {"limit_check": {}}}}))
        access = Config.load(str(cfg)).redis_access
        assert (access.password, access.sentinel_password) == ("master-pw", "sentinel-pw")
        client = connect(group.url, access)
        await client.set("k", "v")
        assert await client.get("k") == "v"
        await client.aclose()
        from redis.asyncio.sentinel import MasterNotFoundError
        from redis.exceptions import AuthenticationError

        for wrong, refused in ((RedisAccess(password="master-pw"), MasterNotFoundError),
                               (RedisAccess(password="nope", sentinel_password="sentinel-pw"),
                                AuthenticationError)):
            client = connect(group.url, wrong)
            with pytest.raises(refused):  # no sentinel answers; the master refuses
                await client.get("k")
            await client.aclose()
    finally:
        group.stop()
    # The sentinels' credentials need a Sentinel URL.
    cfg.write_text(yaml.safe_dump({"redis_url": "redis://127.0.0.1:6379/0",
                                   "redis_sentinel_password_file": str(tmp_path / "spw")}))
    with pytest.raises(ConfigError, match="redis_sentinel_password_file: needs a redis"):
        Config.load(str(cfg))
