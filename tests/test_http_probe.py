"""The HTTP health probe kind (exporter/probes/http.py) against real HTTP servers on
loopback with known behaviour: an 80 ms answer, a 503, one slower than the timeout,
a refused port, garbage instead of HTTP, an untrusted and a trusted certificate."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from exporter.config import parse
from exporter.listen import free_port
from nautilus_config.errors import ConfigError
from nautilus_testkit import eventually, http_post, wait_for
from nautilus_testkit.exposition import buckets, histogram_quantile, samples, value
from nautilus_testkit.pki import make_pki

from .conftest import Scrape

# Long against a loaded machine's HTTP overhead (up to 15 ms seen in CI), so the
# 1.4x bound below tests the measurement, not the machine.
DELAY_S = 0.08
# The probing interval and timeout of test_each_outcome_is_measured_and_counted: the
# timeout leaves the 80 ms answer 200 ms for a loaded machine (this process serves it).
INTERVAL_S, TIMEOUT = 0.3, "280ms"
P = "nautilus_probe_http"


class Handler(BaseHTTPRequestHandler):
    healthy = threading.Event()  # /flaky answers 200 while set, 503 otherwise

    def do_GET(self) -> None:
        status = 200
        if self.path == "/ok":
            time.sleep(DELAY_S)
        elif self.path == "/down":
            status = 503
        elif self.path == "/slow":
            time.sleep(1.0)
        elif self.path == "/flaky":
            status = 200 if self.healthy.is_set() else 503
        elif self.path == "/dribble":  # the body's second half comes DELAY_S later
            self.send_response(200)
            self.send_header("Content-Length", "8")
            self.end_headers()
            self.wfile.write(b"half")
            self.wfile.flush()
            time.sleep(DELAY_S)
            self.wfile.write(b"done")
            return
        body = b"ok\n" if status == 200 else b"no\n"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serving(tls: ssl.SSLContext | None = None) -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def garbage_server() -> Iterator[int]:
    """Answers every connection with bytes that are not HTTP, then closes it."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.sendall(b"\x00\xffNOT HTTP AT ALL\r\n\r\n")
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(2)
        listener.close()


def test_each_outcome_is_measured_and_counted(exporter, redis_url: str, tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(pki["server_crt"], pki["server_key"])
    Handler.healthy.clear()
    with serving() as port, serving(tls) as tls_port, garbage_server() as junk:
        base = f"http://127.0.0.1:{port}"
        targets = {"risk": f"{base}/ok", "analytics": f"{base}/down", "factor": f"{base}/slow",
                   "ml": f"http://127.0.0.1:{free_port()}/health",  # nothing listens
                   "features": f"http://127.0.0.1:{junk}/health",
                   "strategy": f"https://127.0.0.1:{tls_port}/ok",  # not trusted: no ca_file
                   "portfolio": f"{base}/flaky"}
        cfg = tmp_path / "exporter.yml"
        cfg.write_text(yaml.safe_dump({
            "redis_url": redis_url, "engines": {}, "self_reports": {"engines": []},
            "http": {"interval": f"{INTERVAL_S:g}s", "timeout": TIMEOUT, "targets": targets}}))
        ex = exporter(cfg)

        def risk_sent(scrape: Scrape) -> float:
            return scrape.value(f"{P}_requests_total", engine="risk", target=targets["risk"])

        # Ten intervals: 3 s; 4 s at the least rate judged below.
        first, last = ex.window(risk_sent, 10)
        start = risk_sent(first)  # every target's series exists from the start
        text = last.text

        def v(name: str, engine: str, **labels: str) -> float:
            return value(text, f"{P}_{name}", engine=engine, target=targets[engine].split("?")[0],
                         **labels)

        sent = v("requests_total", "risk")
        in_window = sent - start
        shortest, longest = first.to(last)
        # Open loop, one round per interval, never ahead of its schedule: at most one
        # probe per interval of the longest the window can be, +1 for its edges, +1 for
        # a round due before the first scrape and sent after it.
        assert in_window <= longest / INTERVAL_S + 2, (in_window, longest)
        # Each round waits for its slowest target (/slow: the 280 ms timeout); a timer
        # firing late makes the next round late, and a round late by a whole interval is
        # sent once, not twice (targets.Every): on a loaded machine the rate can fall to
        # 1 / (280 ms + the timer's lateness). 3/4 of the rate allows 120 ms late per
        # round; half the rate, or a round skipped in two, fails.
        assert in_window >= 0.75 * shortest / INTERVAL_S - 1, (in_window, shortest)
        # The healthy target: every probe answered, 80 ms read within a bucket (19 %).
        assert v("up", "risk") == 1 and v("status_code", "risk") == 200
        answered = v("duration_seconds_count", "risk")
        assert answered >= sent - 1  # one may be in flight at the scrape
        p50 = histogram_quantile(0.5, buckets(text, f"{P}_duration_seconds", engine="risk",
                                              target=targets["risk"]))
        assert DELAY_S * 0.95 <= p50 <= DELAY_S * 1.4, p50
        for reason in ("refused", "timeout", "status", "tls", "error"):
            assert v("failures_total", "risk", reason=reason) == 0
        # Each failing target: every probe failed, for its own reason, and nothing else.
        for engine, reason, status in (("analytics", "status", 503), ("factor", "timeout", 0),
                                       ("ml", "refused", 0), ("features", "error", 0),
                                       ("strategy", "tls", 0), ("portfolio", "status", 503)):
            requests = v("requests_total", engine)
            assert requests >= 8, engine
            failed = {r: v("failures_total", engine, reason=r)
                      for r in ("refused", "timeout", "status", "tls", "error")}
            assert requests - 1 <= failed[reason] <= requests, (engine, failed)
            assert sum(failed.values()) == failed[reason], (engine, failed)
            assert v("up", engine) == 0 and v("status_code", engine) == status, engine
            assert v("duration_seconds_count", engine) == 0, engine

        # A target that comes back is up again at its next probe, and counted as such.
        Handler.healthy.set()
        wait_for(lambda: value(ex.metrics(), f"{P}_up", engine="portfolio",
                               target=targets["portfolio"]) == 1, 3, interval=0.1)
        text = ex.metrics()
        assert value(text, f"{P}_duration_seconds_count", engine="portfolio",
                     target=targets["portfolio"]) >= 1

        # The loop never restarted: every failure above was counted, not raised.
        assert value(text, "nautilus_probe_loop_restarts_total", loop="http") == 0

        # A reload that drops a target drops its series (a stale `up` would lie).
        del targets["analytics"]
        cfg.write_text(yaml.safe_dump({
            "redis_url": redis_url, "engines": {}, "self_reports": {"engines": []},
            "http": {"interval": f"{INTERVAL_S:g}s", "timeout": TIMEOUT, "targets": targets}}))
        assert http_post(f"{ex.base}/-/reload")[0] == 200
        after = samples(ex.metrics())
        assert not [k for k in after if dict(k[1]).get("engine") == "analytics"]
        assert any(dict(k[1]).get("engine") == "risk" and k[0] == f"{P}_up" for k in after)


def test_a_trusted_certificate_is_a_success(exporter, redis_url: str, tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(pki["server_crt"], pki["server_key"])
    with serving(tls) as port:
        url = f"https://127.0.0.1:{port}/health"
        cfg = tmp_path / "exporter.yml"
        cfg.write_text(yaml.safe_dump({
            "redis_url": redis_url, "engines": {}, "self_reports": {"engines": []},
            "http": {"interval": "200ms", "targets": {"risk": url},
                     "ca_file": str(pki["ca_crt"])}}))
        ex = exporter(cfg)
        wait_for(lambda: value(ex.metrics(), f"{P}_duration_seconds_count", engine="risk",
                               target=url) >= 3, 5, interval=0.1)
        assert value(ex.metrics(), f"{P}_failures_total", engine="risk", target=url,
                     reason="tls") == 0


def config(http: object) -> dict:
    return {"engines": {}, "http": http}


@pytest.mark.parametrize(("http", "message"), [
    ({"targets": {"risk": "ftp://127.0.0.1/x"}},
     "http.targets.risk: must be an http:// or https:// URL"),
    ({"targets": {"risk": ["http://127.0.0.1:1/h", 7]}},
     r"http.targets.risk\[1\]: must be a non-empty string, got 7"),
    ({"targets": {"risk": ["http://127.0.0.1:1/h", "http://127.0.0.1:1/h"]}},
     r"http.targets.risk\[1\]: repeats http://127.0.0.1:1/h"),
    ({"targets": {"risk": []}}, "http.targets.risk: must be a URL or a non-empty list"),
    ({"targets": {}}, "http.targets: must map at least one engine"),
    ({"targets": {"bad name!": "http://127.0.0.1:1/h"}}, "http.targets.bad name!: "),
    ({"targets": {"risk": "http://127.0.0.1:1/h"}, "interval": "1s", "timeout": "2s"},
     r"http.timeout: must not exceed http.interval \(1s\), got 2s"),
    ({"targets": {"risk": "http://127.0.0.1:1/h"}, "ca_file": "/nope.pem"},
     "http.ca_file: needs at least one https:// target"),
    ({"targets": {"risk": "https://127.0.0.1:1/h"}, "ca_file": "/nope.pem"},
     "http.ca_file: cannot load the TLS files"),
    ({"targets": {"risk": "https://127.0.0.1:1/h"}, "cert_file": "/a.pem"},
     "http.cert_file: cert_file and key_file go together"),
    ({"targets": {"risk": "http://127.0.0.1:1/h"}, "intervall": "1s"}, "http.intervall: unknown key"),
    ({"targets": {"risk": "http://127.0.0.1:1/h"}, "interval": "2h"}, "http.interval: must be at most"),
])
def test_bad_http_sections_name_the_key(http: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(config(http))


def test_http_targets_are_sharded_disjoint_and_complete() -> None:
    urls = {f"e{i}": [f"http://127.0.0.1:{9000 + i}/h", f"http://127.0.0.1:{9100 + i}/h"]
            for i in range(5)}
    whole = parse(config({"targets": urls}))
    shards = [whole.shard(i, 3) for i in (1, 2, 3)]
    seen = [t for s in shards for t in s.specs["http"].targets]
    assert sorted(seen, key=str) == sorted(whole.specs["http"].targets, key=str)
    assert len(set(seen)) == len(seen) == 10
    assert [len(s.specs["http"].targets) for s in shards] == [4, 3, 3]
    lonely = parse(config({"targets": {"risk": "http://127.0.0.1:1/h"}}))
    assert "http" not in lonely.shard(2, 2).specs  # nothing to probe: no probe at all


def test_the_target_label_carries_no_secret() -> None:
    cfg = parse(config({"targets": {"risk": "http://probe:s3cret@127.0.0.1:1/h?token=abc"}}))
    [target] = cfg.specs["http"].targets
    assert target.label == "http://probe:xxxxx@127.0.0.1:1/h"
    assert target.url.endswith("?token=abc")  # dialled as written


def test_an_interval_changed_by_a_reload_takes_effect_in_place() -> None:
    """apply() accepts a new interval in place; the running schedule must follow it
    (it kept the old one until a restart)."""
    import asyncio
    import dataclasses

    from prometheus_client import CollectorRegistry

    from exporter.metrics import build
    from exporter.probes.base import Context
    from exporter.probes.http import HttpProbe, build_metrics
    from exporter.schedule import clock
    from exporter.supervise import Supervisor

    async def scenario(port: int) -> tuple[float, float, float, float]:
        reg = CollectorRegistry()
        m = build(reg)
        spec = parse(config({"targets": {"risk": f"http://127.0.0.1:{port}/flaky"},
                             "interval": "10s", "timeout": "1s"})).specs["http"]
        probe = HttpProbe(spec, Context(m, Supervisor(m), build_metrics(reg)))
        await probe.start()
        stop = asyncio.Event()
        task = asyncio.create_task(probe.run(stop))
        labels = {"engine": "risk", "target": spec.targets[0].label}

        def sent() -> float:
            return reg.get_sample_value(f"{P}_requests_total", labels) or 0.0
        await eventually(sent, 5)  # the first probe, due at once
        before = sent()
        applied = clock()
        assert probe.apply(dataclasses.replace(spec, interval=0.1))
        # The old 10 s interval would send none for 10 s: the new one's ten probes are
        # waited for (one second at 0.1 s), and their rate judged on the time they took.
        await eventually(lambda: sent() - before >= 10, 5)
        after, took = sent(), clock() - applied
        waited = reg.get_sample_value(f"{P}_duration_seconds_sum", labels) or 0.0
        stop.set()
        await task
        await probe.close()
        return before, after - before, took, waited

    Handler.healthy.set()
    with serving() as port:
        before, sent, took, waited = asyncio.run(scenario(port))
    assert before == 1
    # From the replan on, one probe per 0.1 s, never ahead of the schedule: at most
    # one per 0.1 s of the time taken, +2 for the window's ends. And no slower than the
    # rounds allow: a round starts when due or, if the last one's answer came later,
    # then; each probe's time from its due time (`waited`: the duration histogram's
    # sum) can delay two rounds, the rest of the time goes at 0.1 s a round. (A machine
    # loaded by two busy loops took 2.1 s for ten HTTP rounds; half the rate fails.)
    assert (took - 2 * waited) / 0.1 - 2 <= sent <= took / 0.1 + 2, (sent, took, waited)


def test_latency_runs_to_the_end_of_the_body() -> None:
    """An answer whose body arrives in two parts DELAY_S apart is timed to its last
    byte (one read() returned the first part only)."""
    import asyncio

    from prometheus_client import CollectorRegistry

    from exporter.metrics import build
    from exporter.probes.base import Context
    from exporter.probes.http import HttpProbe, build_metrics
    from exporter.schedule import clock
    from exporter.supervise import Supervisor

    async def scenario(port: int) -> float:
        reg = CollectorRegistry()
        m = build(reg)
        spec = parse(config({"targets": {"risk": f"http://127.0.0.1:{port}/dribble"},
                             "timeout": "1s"})).specs["http"]
        probe = HttpProbe(spec, Context(m, Supervisor(m), build_metrics(reg)))
        await probe.start()
        try:
            await probe.probe(spec.targets[0], clock())
            labels = {"engine": "risk", "target": spec.targets[0].label}
            assert reg.get_sample_value(f"{P}_duration_seconds_count", labels) == 1
            return reg.get_sample_value(f"{P}_duration_seconds_sum", labels) or 0.0
        finally:
            await probe.close()

    with serving() as port:
        took = asyncio.run(scenario(port))
    assert DELAY_S <= took < DELAY_S * 4, took
