"""The TCP connect probe kind (exporter/probes/tcp.py) against real sockets on loopback
with known behaviour: a listening port, a port nothing listens on, a listener whose
accept queue is full (connects hang), a name that does not resolve; through a running
exporter, and in process for the schedule."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import select
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from exporter.config import Config, parse
from exporter.listen import free_port
from exporter.metrics import build
from exporter.probes.base import Context
from exporter.probes.tcp import TcpFailure, TcpProbe, build_metrics, classify
from exporter.schedule import clock
from exporter.supervise import Supervisor
from nautilus_config.errors import ConfigError
from nautilus_testkit import eventually
from nautilus_testkit.exposition import value

from .conftest import Scrape

P = "nautilus_probe_tcp"
INTERVAL_S = 0.2  # the probing interval of test_each_outcome_is_measured_and_counted


@contextmanager
def listening() -> Iterator[int]:
    """A port that accepts connections (the kernel completes them; nobody reads)."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as s:
        yield s.getsockname()[1]


@contextmanager
def full_queue() -> Iterator[int]:
    """A listener that never accepts, its queue already full: a further connect's SYN
    is dropped and the connect hangs (Linux, tcp_abort_on_overflow off: the default)."""
    with socket.create_server(("127.0.0.1", 0), backlog=0) as s:
        port = s.getsockname()[1]
        fillers = []
        for _ in range(4):  # backlog 0 still queues one or two
            c = socket.socket()
            c.setblocking(False)
            c.connect_ex(("127.0.0.1", port))
            fillers.append(c)
        # Full once one of them is connected (in the queue; Linux takes one past a
        # backlog of 0): waited for, not assumed after a fixed pause.
        _, connected, _ = select.select([], fillers, [], 5)
        assert any(c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0 for c in connected), \
            "no connection reached the listener's queue"
        try:
            yield port
        finally:
            for c in fillers:
                c.close()


def config(tcp: object) -> dict:
    return {"engines": {}, "self_reports": {"engines": []}, "tcp": tcp}


def test_each_outcome_is_measured_and_counted(exporter, redis_url: str, tmp_path: Path) -> None:
    with listening() as up, full_queue() as hung:
        targets = {"risk": f"127.0.0.1:{up}", "analytics": f"127.0.0.1:{free_port()}",
                   "factor": f"127.0.0.1:{hung}", "ml": "nonexistent.invalid:7001"}
        cfg = tmp_path / "exporter.yml"
        cfg.write_text(yaml.safe_dump({"redis_url": redis_url, **config(
            {"interval": "200ms", "timeout": "150ms", "targets": targets})}))
        ex = exporter(cfg)

        def risk_sent(scrape: Scrape) -> float:
            return scrape.value(f"{P}_connects_total", engine="risk", target=targets["risk"])

        # Ten intervals: 2 s at 5/s; 2.7 s at the least rate judged below.
        first, last = ex.window(risk_sent, 10)
        start = risk_sent(first)  # every target's series exists from the start
        text = last.text

    def v(name: str, engine: str, **labels: str) -> float:
        return value(text, f"{P}_{name}", engine=engine, target=targets[engine], **labels)

    sent = v("connects_total", "risk")
    in_window = sent - start
    shortest, longest = first.to(last)
    # Open loop, one round per interval, never ahead of its schedule: at most one
    # connect per interval of the longest the window can be, +1 for its edges, +1 for
    # a round due before the first scrape and sent after it.
    assert in_window <= longest / INTERVAL_S + 2, (in_window, longest)
    # Each round waits for its slowest target (the full queue: the 150 ms timeout); a
    # timer firing late makes the next round late, and a round late by a whole interval
    # is sent once, not twice (targets.Every): on a loaded machine the rate can fall to
    # 1 / (150 ms + the timer's lateness). 3/4 of 5/s allows 116 ms late per round;
    # half the rate, or a round skipped in two, fails.
    assert in_window >= 0.75 * shortest / INTERVAL_S - 1, (in_window, shortest)
    assert v("up", "risk") == 1 and v("connect_duration_seconds_count", "risk") >= sent - 1
    # A loopback connect is well under a millisecond; under load, a few.
    mean = v("connect_duration_seconds_sum", "risk") / v("connect_duration_seconds_count", "risk")
    assert mean < 0.05, mean
    for engine, reason in (("analytics", "refused"), ("factor", "timeout"), ("ml", "dns")):
        assert v("up", engine) == 0, engine
        assert v("connect_duration_seconds_count", engine) == 0, engine
        failed = v("failures_total", engine, reason=reason)
        assert failed >= v("connects_total", engine) - 1 >= 8, (engine, reason)  # one in flight
        others = [r.value for r in TcpFailure if r.value != reason]
        assert all(v("failures_total", engine, reason=r) == 0 for r in others), engine
    assert value(text, "nautilus_probe_loop_restarts_total", loop="tcp") == 0


def test_the_connect_time_runs_from_the_scheduled_time() -> None:
    """A probe sent 200 ms after it was due (a stalled loop) reads 200 ms, not the
    connect alone: a late prober fills the tail."""
    async def scenario(port: int) -> tuple[float, float]:
        reg = CollectorRegistry()
        m = build(reg)
        spec = parse(config({"targets": {"risk": f"127.0.0.1:{port}"}})).specs["tcp"]
        probe = TcpProbe(spec, Context(m, Supervisor(m), build_metrics(reg)))
        labels = {"engine": "risk", "target": f"127.0.0.1:{port}"}
        try:
            await probe.probe(spec.targets[0], clock() - 0.2)
            return (reg.get_sample_value(f"{P}_connect_duration_seconds_sum", labels) or 0.0,
                    reg.get_sample_value(f"{P}_up", labels) or 0.0)
        finally:
            await probe.close()

    with listening() as port:
        took, up = asyncio.run(scenario(port))
    assert up == 1 and 0.2 <= took < 0.3, took


def test_an_interval_changed_by_a_reload_takes_effect_in_place() -> None:
    async def scenario(port: int) -> tuple[float, float, float, float]:
        reg = CollectorRegistry()
        m = build(reg)
        spec = parse(config({"targets": {"risk": f"127.0.0.1:{port}"},
                             "interval": "10s"})).specs["tcp"]
        probe = TcpProbe(spec, Context(m, Supervisor(m), build_metrics(reg)))
        labels = {"engine": "risk", "target": f"127.0.0.1:{port}"}
        stop = asyncio.Event()
        task = asyncio.create_task(probe.run(stop))

        def sent() -> float:
            return reg.get_sample_value(f"{P}_connects_total", labels) or 0.0
        await eventually(sent, 5)  # the first connect, due at once
        before = sent()
        applied = clock()
        assert probe.apply(dataclasses.replace(spec, interval=0.1))
        # The old 10 s interval would connect none for 10 s: the new one's ten connects
        # are waited for (one second at 0.1 s), and their rate judged on the time taken.
        await eventually(lambda: sent() - before >= 10, 5)
        after, took = sent(), clock() - applied
        waited = reg.get_sample_value(f"{P}_connect_duration_seconds_sum", labels) or 0.0
        stop.set()
        await task
        await probe.close()
        return before, after - before, took, waited

    with listening() as port:
        before, sent, took, waited = asyncio.run(scenario(port))
    assert before == 1
    # From the replan on, one connect per 0.1 s, never ahead of the schedule: at most
    # one per 0.1 s of the time taken, +2 for the window's ends. And no slower than the
    # rounds allow: a round starts when due or, if the last one's answer came later,
    # then; each connect's time from its due time (`waited`: the duration histogram's
    # sum) can delay two rounds, the rest of the time goes at 0.1 s a round. (A machine
    # loaded by two busy loops took 2.1 s for ten HTTP rounds; half the rate fails.)
    assert (took - 2 * waited) / 0.1 - 2 <= sent <= took / 0.1 + 2, (sent, took, waited)


def test_unreachable_and_other_errors_have_their_reasons() -> None:
    assert classify(OSError(errno.EHOSTUNREACH, "No route to host")) is TcpFailure.UNREACHABLE
    assert classify(OSError(errno.ENETUNREACH, "Network is unreachable")) is TcpFailure.UNREACHABLE
    assert classify(OSError(errno.ECONNRESET, "reset")) is TcpFailure.ERROR


@pytest.mark.parametrize("tcp, message", [
    ({"targets": {}}, "tcp.targets: must map at least one engine"),
    ({"targets": {"risk": "127.0.0.1"}}, "tcp.targets.risk: must be host:port"),
    ({"targets": {"risk": "127.0.0.1:0"}}, "tcp.targets.risk: must be host:port"),
    ({"targets": {"risk": "127.0.0.1:99999"}}, "tcp.targets.risk: must be host:port"),
    ({"targets": {"risk": "http://127.0.0.1:80/x"}}, "tcp.targets.risk: must be host:port"),
    ({"targets": {"risk": ["127.0.0.1:1", "127.0.0.1:1"]}}, r"tcp.targets.risk\[1\]: repeats"),
    ({"targets": {"risk": []}}, "tcp.targets.risk: must be host:port or a non-empty list"),
    ({"targets": {"Risk": "127.0.0.1:1"}}, "tcp.targets.Risk: must be"),
    ({"targets": {"risk": "127.0.0.1:1"}, "interval": "1s", "timeout": "2s"},
     "tcp.timeout: must not exceed tcp.interval"),
    ({"targets": {"risk": "127.0.0.1:1"}, "tiemout": "1s"}, "tcp.tiemout: unknown key"),
])
def test_bad_tcp_sections_name_the_key(tcp: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(config(tcp))


def test_tcp_targets_are_sharded_disjoint_and_complete(tmp_path: Path) -> None:
    targets = {f"e{i}": [f"127.0.0.1:{9000 + i}", f"[::1]:{9100 + i}"] for i in range(5)}
    whole = parse(config({"targets": targets}))
    shards = [whole.shard(i, 3) for i in (1, 2, 3)]
    seen = [t for s in shards for t in s.specs["tcp"].targets]
    assert sorted(seen, key=str) == sorted(whole.specs["tcp"].targets, key=str)
    assert len(set(seen)) == len(seen) == 10
    assert "[::1]:9100" in {t.label for t in seen}
    many = tmp_path / "many.yml"
    many.write_text(yaml.safe_dump(config({"targets": {
        f"e{i}": f"127.0.0.1:{1000 + i}" for i in range(600)}})))
    with pytest.raises(ConfigError, match="tcp.targets: names 600 targets; at most 500"):
        Config.load(str(many))
    assert [len(Config.load(str(many), shard=(i, 2)).specs["tcp"].targets)
            for i in (1, 2)] == [300, 300]
