"""WebSocket probing against real WebSocket servers on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from exporter.probes.websocket import WsEndpoint, WsSpec, build_metrics
from exporter.supervise import Supervisor
from exporter.metrics import build
from exporter.probes.websocket import WebSocketProbe
from exporter.schedule import EARLY_S, MAX_TICK_S, clock
from nautilus_wire.ws_protocol import PATH
from synthetic.websocket_engine import WebSocketEngine, WsKnobs

from nautilus_testkit import free_port, wait_for
from nautilus_testkit.exposition import MissingSeries, bucket_delta, histogram_quantile, value


def url(port: int, scheme: str = "ws") -> str:
    return f"{scheme}://127.0.0.1:{port}{PATH}"


def spec(urls: list[str], connections: int, *, heartbeat_rate: float = 20.0,
         heartbeat_timeout: float = 2.0, topic: str | None = None, subscribers: int = 0,
         token: str | None = None, ca_file: str | None = None) -> WsSpec:
    eps = tuple(WsEndpoint(u + (f"?token={token}" if token else ""), u, ca_file) for u in urls)
    return WsSpec(eps, connections, connect_rate=2000, connect_timeout=5,
                  heartbeat_rate=heartbeat_rate, heartbeat_timeout=heartbeat_timeout,
                  compression=False, subscribe_topic=topic, subscribe_connections=subscribers)


class Probe:
    def __init__(self, prober: WebSocketProbe, registry: CollectorRegistry) -> None:
        self.prober, self.registry = prober, registry

    def text(self) -> str:
        return generate_latest(self.registry).decode()

    def value(self, name: str, **labels: str) -> float:
        return value(self.text(), name, **labels)

    async def until(self, predicate, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            try:
                if predicate():
                    return
            except MissingSeries:
                pass  # not exported yet
            assert loop.time() < end, f"not reached in {timeout}s:\n{self.summary()}"
            await asyncio.sleep(0.05)

    def summary(self) -> str:
        return "\n".join(line for line in self.text().splitlines()
                         if line.startswith("nautilus_probe_ws") and "bucket" not in line)


@contextlib.asynccontextmanager
async def ws_probing(ws: WsSpec) -> AsyncIterator[Probe]:
    registry = CollectorRegistry()
    prober = WebSocketProbe(ws, build_metrics(registry), Supervisor(build(registry)))
    stop = asyncio.Event()
    task = asyncio.create_task(prober.run(stop))
    try:
        yield Probe(prober, registry)
    finally:
        stop.set()
        await task


@contextlib.asynccontextmanager
async def ws_engines(*knobs: WsKnobs, ssl_context=None) -> AsyncIterator[list[tuple[WebSocketEngine, int]]]:
    """In-process engines on free ports (for exact counts from their stats)."""
    stop = asyncio.Event()
    out, tasks = [], []
    for k in knobs:
        engine = WebSocketEngine(k, seed=99)
        ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        tasks.append(asyncio.create_task(engine.run(stop, 0, ssl_context=ssl_context, ready=ready)))
        out.append((engine, await ready))
    try:
        yield out
    finally:
        stop.set()
        await asyncio.gather(*tasks)


@pytest.fixture
def ws_engine_process(spawn):
    """WebSocket engines in their own process, as deployed; returns their ports."""
    def start(count: int, *flags: str) -> list[int]:
        ports = [free_port() for _ in range(count)]
        spawn("ws-engine", *[a for p in ports for a in ("--port", str(p))], *flags)
        for p in ports:
            wait_for(lambda p=p: _listening(p), 10)
        return ports
    return start


def _listening(port: int) -> bool:
    import socket
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


OPEN = "nautilus_probe_ws_connections_open"


async def test_holds_1000_connections_evenly(ws_engine_process) -> None:
    ports = ws_engine_process(3)
    async with ws_probing(spec([url(p) for p in ports], 1000, heartbeat_rate=100)) as probe:
        await probe.until(lambda: probe.value(OPEN) == 1000, 30)
        await asyncio.sleep(1.0)
        text = probe.text()
    per_endpoint = [value(text, OPEN, endpoint=url(p)) for p in ports]
    assert sum(per_endpoint) == 1000
    assert all(abs(n - 1000 / 3) <= 1000 / 3 * 0.01 for n in per_endpoint), per_endpoint
    assert value(text, "nautilus_probe_ws_connect_duration_seconds_count") == 1000
    assert value(text, "nautilus_probe_ws_connect_failures_total") == 0
    assert value(text, "nautilus_probe_ws_messages_received_total") >= 80
    assert value(text, "nautilus_probe_ws_timeouts_total") == 0


async def test_dropped_connections_are_counted_and_reopened() -> None:
    async with ws_engines(WsKnobs(drop_ratio=0, drop_interval=0.5)) as [(engine, port)]:
        async with ws_probing(spec([url(port)], 300)) as probe:
            # The pool full first: with drops from the start, a slow machine's
            # reconnects may never catch up with them all at one instant (seen in CI).
            await probe.until(lambda: probe.value(OPEN) == 300, 20)
            engine.knobs.drop_ratio = 0.1
            await probe.until(lambda: engine.stats.dropped >= 40, 10)
            engine.knobs.drop_ratio = 0  # stop dropping: the pool must recover fully
            await asyncio.sleep(0.6)
            await probe.until(lambda: probe.value(OPEN) == 300, 10)
            dropped = probe.value("nautilus_probe_ws_disconnects_total", reason="dropped")
            assert dropped == engine.stats.dropped
            assert engine.stats.connections == 300
            assert probe.value("nautilus_probe_ws_connect_duration_seconds_count") == 300 + dropped


async def test_heartbeat_latency_with_reply_delay(ws_engine_process) -> None:
    [port] = ws_engine_process(1, "--reply-delay", "10ms")
    async with ws_probing(spec([url(port)], 50, heartbeat_rate=200)) as probe:
        await probe.until(lambda: probe.value(OPEN) == 50, 10)
        before = probe.text()
        await asyncio.sleep(4)
        after = probe.text()
    name = "nautilus_probe_ws_heartbeat_latency_seconds"
    delta = bucket_delta(before, after, name)
    assert delta[-1][1] >= 700
    median = histogram_quantile(0.5, delta)
    assert 0.010 <= median <= 0.012, median


async def test_error_frames_and_timeouts_are_failures() -> None:
    async with ws_engines(WsKnobs(error_ratio=0.25), WsKnobs(reply_delay=0.3)) as engines:
        (errs, p1), (slow, p2) = engines
        e1, e2 = url(p1), url(p2)
        async with ws_probing(spec([e1, e2], 20, heartbeat_rate=100,
                                   heartbeat_timeout=0.1)) as probe:
            await probe.until(lambda: probe.value(OPEN) == 20, 10)
            await asyncio.sleep(2.5)
            # One consistent snapshot: counters and what is still in flight.
            text = probe.text()
            in_flight = {e1: 0, e2: 0}
            for conn, _ in probe.prober.heartbeats.pending.values():
                in_flight[conn.ep.spec.label] += 1
            server_errors = errs.stats.errors
    sent1 = value(text, "nautilus_probe_ws_messages_sent_total", endpoint=e1)
    errors = value(text, "nautilus_probe_ws_error_replies_total", endpoint=e1)
    received = value(text, "nautilus_probe_ws_messages_received_total", endpoint=e1)
    assert server_errors - 2 <= errors <= server_errors and errors >= 0.15 * sent1
    assert received + errors + in_flight[e1] == sent1
    assert value(text, "nautilus_probe_ws_heartbeat_latency_seconds_count", endpoint=e1) == received
    # Every heartbeat to the slow engine timed out; its late acks are never replies.
    sent2 = value(text, "nautilus_probe_ws_messages_sent_total", endpoint=e2)
    timeouts = value(text, "nautilus_probe_ws_timeouts_total", endpoint=e2)
    assert sent2 >= 100
    assert timeouts + in_flight[e2] == sent2
    assert value(text, "nautilus_probe_ws_messages_received_total", endpoint=e2) == 0
    assert value(text, "nautilus_probe_ws_replies_late_total", endpoint=e2) >= timeouts * 0.6


async def test_refusing_endpoints_do_not_affect_the_others() -> None:
    dead = free_port()  # nothing listens here
    async with ws_engines(WsKnobs(), WsKnobs(refuse=True)) as [(_, good), (busy, bad)]:
        async with ws_probing(spec([url(good), url(bad), url(dead)], 30)) as probe:
            await probe.until(lambda: probe.value(OPEN, endpoint=url(good)) == 10, 10)
            await asyncio.sleep(1.5)
            text = probe.text()
    assert value(text, OPEN, endpoint=url(bad)) == 0 and value(text, OPEN, endpoint=url(dead)) == 0
    fails = "nautilus_probe_ws_connect_failures_total"
    assert value(text, fails, endpoint=url(bad), reason="handshake") == busy.stats.refused >= 2
    assert value(text, fails, endpoint=url(dead), reason="refused") >= 2
    assert value(text, fails, endpoint=url(good)) == 0
    assert value(text, "nautilus_probe_ws_timeouts_total") == 0
    assert value(text, "nautilus_probe_ws_messages_received_total", endpoint=url(good)) >= 20


async def test_token_is_required_when_configured() -> None:
    async with ws_engines(WsKnobs(tokens=frozenset({"s3cret"}))) as [(_, port)]:
        async with ws_probing(spec([url(port)], 5, token="wrong")) as probe:
            await probe.until(lambda: probe.value(
                "nautilus_probe_ws_disconnects_total", reason="unauthorized") >= 5, 10)
        async with ws_probing(spec([url(port)], 5, token="s3cret")) as probe:
            await probe.until(lambda: probe.value(OPEN) == 5, 10)
            await asyncio.sleep(0.5)
            assert probe.value("nautilus_probe_ws_disconnects_total") == 0


async def test_unauthorized_closes_back_off() -> None:
    """A server that accepts and closes with 4001 at once is retried with growing,
    jittered pauses (0.1 s doubling to 5 s), not at the connect rate (2,000/s here)."""
    async with ws_engines(WsKnobs(tokens=frozenset({"s3cret"}))) as [(engine, port)]:
        async with ws_probing(spec([url(port)], 5, token="wrong")) as probe:
            await asyncio.sleep(4)
            refused = probe.value("nautilus_probe_ws_disconnects_total", reason="unauthorized")
            ep = probe.prober.endpoints[0]
            assert ep.backoff >= 0.8 and ep.retry_at > 0
    # 5 at once, then one per pause: 0.1+0.2+0.4+0.8+1.6 s of pauses (x0.5-1.5) fit in 4 s.
    assert 5 <= refused <= 20, refused
    assert engine.stats.unauthorized == refused


async def test_oversized_and_binary_frames() -> None:
    from websockets.asyncio.server import serve

    async def handler(ws) -> None:
        await ws.send(b"\x00binary")
        await asyncio.sleep(0.2)
        await ws.send("x" * (2**16 + 1))  # over the probe's frame limit
        await asyncio.sleep(5)

    port = free_port()
    async with serve(handler, "127.0.0.1", port, max_size=None, compression=None):
        async with ws_probing(spec([url(port)], 1, heartbeat_rate=1)) as probe:
            await probe.until(lambda: probe.value(
                "nautilus_probe_ws_disconnects_total", reason="protocol_error") == 1, 5)
            assert probe.value("nautilus_probe_ws_invalid_frames_total") == 1


async def test_broadcast_frames_and_gaps() -> None:
    knobs = WsKnobs(broadcast_rate=50, broadcast_skip_ratio=0.2)
    async with ws_engines(knobs) as [(engine, port)]:
        async with ws_probing(spec([url(port)], 4, topic="market", subscribers=3)) as probe:
            await probe.until(lambda: probe.value("nautilus_probe_ws_broadcast_frames_total") >= 300, 10)
            knobs.broadcast_rate = 1000  # no more frames in practice: freeze the counts
            skipped = engine.stats.skipped_seqs["market"]
            text = probe.text()
    gaps = value(text, "nautilus_probe_ws_broadcast_gaps_total")
    # Each of the 3 subscribers sees every skipped number after its first frame.
    assert 3 * (skipped - 3) <= gaps <= 3 * skipped, (gaps, skipped)
    assert skipped >= 10


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory) -> tuple[str, str]:
    openssl = shutil.which("openssl")
    assert openssl, "openssl is missing"
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return str(cert), str(key)


async def test_wss_with_a_ca_file(tls_files) -> None:
    cert, key = tls_files
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    async with ws_engines(WsKnobs(), ssl_context=ctx) as [(_, port)]:
        async with ws_probing(spec([url(port, "wss")], 3, ca_file=cert)) as probe:
            await probe.until(lambda: probe.value(OPEN) == 3, 10)
            await probe.until(lambda: probe.value("nautilus_probe_ws_messages_received_total") >= 5, 5)
        async with ws_probing(spec([url(port, "wss")], 3)) as probe:  # CA not trusted
            await probe.until(lambda: probe.value(
                "nautilus_probe_ws_connect_failures_total", reason="tls") >= 1, 10)
            assert probe.value(OPEN) == 0


async def test_engine_speaks_the_protocol() -> None:
    import json

    from websockets.asyncio.client import connect

    async with ws_engines(WsKnobs()) as [(_, port)]:
        async with connect(url(port), compression=None) as ws:
            status = json.loads(await ws.recv())
            assert status["type"] == "engine_status"
            assert set(status["data"]) == {"state", "uptime", "memory_usage", "cpu_usage"}
            assert status["data"]["memory_usage"] > 1  # MiB of a real process
            await ws.send('{"type": "heartbeat", "id": "7"}')
            ack = json.loads(await ws.recv())
            assert (ack["type"], ack["id"]) == ("heartbeat_ack", "7")
            await ws.send('{"type": "get_stats", "id": "8"}')
            stats = json.loads(await ws.recv())
            assert (stats["type"], stats["id"], stats["data"]["connections"]) == ("connection_stats", "8", 1)
            await ws.send("hello")  # the migration plan's plain text: an error, not a reply
            assert json.loads(await ws.recv())["type"] == "error"
            await ws.send('{"type": "dance", "id": "9"}')
            err = json.loads(await ws.recv())
            assert (err["type"], err["id"]) == ("error", "9")


async def test_no_connection_means_skipped_heartbeats() -> None:
    """Heartbeats due while nothing is open are counted skipped: 20/s here, judged on
    the time measured around a second of it."""
    rate = 20
    dead = url(free_port())
    async with ws_probing(spec([dead], 1, heartbeat_rate=rate)) as probe:
        def skipped() -> float:
            return probe.value("nautilus_probe_ws_heartbeats_skipped_total")

        await probe.until(lambda: skipped() >= 1, 5)  # the heartbeat loop is running
        first, started = skipped(), clock()
        await asyncio.sleep(1.0)
        # A tick of the heartbeat loop already due runs before this read (after a stall,
        # this coroutine's timer may fire first).
        await asyncio.sleep(0)
        took, last = clock() - started, skipped()
        refused = probe.value("nautilus_probe_ws_connect_failures_total", reason="refused")
    # Every heartbeat due is counted, none sent: `rate` per second of the time measured.
    # Each read may be a tick behind (the loop ticks at least every MAX_TICK_S, counting
    # what is due EARLY_S ahead): a quarter of a heartbeat at 20/s; one more each way
    # for the window's ends, and one for a read held up between a tick and the clock.
    tolerance = 2 * (MAX_TICK_S + EARLY_S) * rate + 2 + 1
    assert abs((last - first) - rate * took) <= tolerance, (last - first, took)
    assert refused >= 1 and probe.value("nautilus_probe_ws_messages_sent_total") == 0


async def test_a_silent_server_is_a_connect_timeout() -> None:
    """TCP accepted, no handshake answer: a timeout after connect_timeout."""
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    port = silent.getsockname()[1]
    ws = spec([url(port)], 1)
    ws = WsSpec(ws.endpoints, 1, connect_rate=100, connect_timeout=0.3, heartbeat_rate=1,
                heartbeat_timeout=1, compression=False, subscribe_topic=None,
                subscribe_connections=0)
    try:
        async with ws_probing(ws) as probe:
            await probe.until(lambda: probe.value(
                "nautilus_probe_ws_connect_failures_total", reason="timeout") >= 1, 5)
            assert probe.value(OPEN) == 0
    finally:
        silent.close()


async def test_a_normal_close_by_the_server_is_closed() -> None:
    from websockets.asyncio.server import serve

    async def handler(ws) -> None:
        await asyncio.sleep(1.5)  # long enough not to count as a quick loss
        await ws.close(1001, "going away")

    port = free_port()
    async with serve(handler, "127.0.0.1", port, compression=None):
        async with ws_probing(spec([url(port)], 1, heartbeat_rate=1)) as probe:
            await probe.until(lambda: probe.value(
                "nautilus_probe_ws_disconnects_total", reason="closed") >= 1, 5)
            assert probe.value("nautilus_probe_ws_disconnects_total", reason="dropped") == 0
            # Not a quick loss: reconnected at once, without a pause.
            await probe.until(lambda: probe.value(OPEN) == 1, 2)


async def test_connect_rate() -> None:
    """Connections open at the configured rate (50/s here: 100 take about 2 s), never
    in a burst."""
    async with ws_engines(WsKnobs()) as [(_, port)]:
        ws = spec([url(port)], 100, heartbeat_rate=50)
        ws = WsSpec(ws.endpoints, 100, connect_rate=50, connect_timeout=5, heartbeat_rate=50,
                    heartbeat_timeout=2, compression=False, subscribe_topic=None,
                    subscribe_connections=0)
        async with ws_probing(ws) as probe:
            started = clock()  # the connector starts, with no token, once this yields
            await asyncio.sleep(1.0)
            opened, took = probe.value(OPEN), clock() - started
            await probe.until(lambda: probe.value(OPEN) == 100, 5)
            all_took = clock() - started
    # A token bucket of 50/s starting empty: the k-th connection starts no sooner than
    # k/50 s after the connector, so at most 50 per second of the time measured, and
    # the 100th not before 2 s however fast the handshakes.
    assert opened <= 50 * took, (opened, took)
    assert all_took >= 100 / 50, all_took
    # And not much slower: its bucket holds 0.1 s of tokens (5), so a tick late by more
    # loses some, and a handshake under way is not open yet. 3/4 of the rate, less a
    # bucket, allows a loaded machine those; half the rate fails.
    assert opened >= 0.75 * 50 * took - 5, (opened, took)


async def test_compression_is_negotiated_when_asked_for() -> None:
    from websockets.asyncio.server import serve

    async def handler(ws) -> None:
        await asyncio.sleep(5)

    port = free_port()
    async with serve(handler, "127.0.0.1", port):  # permessage-deflate offered
        for compression, expected in ((True, 3), (False, 0)):
            ws = spec([url(port)], 3)
            ws = WsSpec(ws.endpoints, 3, connect_rate=100, connect_timeout=5, heartbeat_rate=1,
                        heartbeat_timeout=2, compression=compression, subscribe_topic=None,
                        subscribe_connections=0)
            async with ws_probing(ws) as probe:
                await probe.until(lambda: probe.value(OPEN) == 3, 5)
                deflate = [c for c in probe.prober.open
                           if any(type(e).__name__ == "PerMessageDeflate" for e in c.proto.extensions)]
            assert len(deflate) == expected, compression


async def test_wss_with_a_client_certificate(tmp_path) -> None:
    """A server that requires a client certificate from its CA: the probe presents one."""
    from nautilus_testkit.pki import make_pki

    make_pki(tmp_path)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tmp_path / "ca.crt"))
    server.load_cert_chain(str(tmp_path / "server.crt"), str(tmp_path / "server.key"))
    server.verify_mode = ssl.CERT_REQUIRED
    ca = str(tmp_path / "ca.crt")
    async with ws_engines(WsKnobs(), ssl_context=server) as [(_, port)]:
        with_cert = WsEndpoint(url(port, "wss"), url(port, "wss"), ca,
                               str(tmp_path / "client.crt"), str(tmp_path / "client.key"))
        async with ws_probing(WsSpec((with_cert,), 2, connect_rate=100, connect_timeout=5,
                                     heartbeat_rate=10, heartbeat_timeout=2, compression=False,
                                     subscribe_topic=None, subscribe_connections=0)) as probe:
            await probe.until(lambda: probe.value(OPEN) == 2, 10)
            await probe.until(lambda: probe.value("nautilus_probe_ws_messages_received_total") >= 3, 5)
        async with ws_probing(spec([url(port, "wss")], 2, ca_file=ca)) as probe:  # no certificate
            await probe.until(lambda: probe.value("nautilus_probe_ws_connect_failures_total") >= 1, 10)
            assert probe.value(OPEN) == 0


def test_a_half_close_on_a_transport_uvloop_closed_raises_nothing() -> None:
    """The exporter runs uvloop, whose write_eof() raises RuntimeError on a transport
    that is already closed (asyncio's does not): an EOF handled on a transport that
    closed meanwhile must be taken quietly, as websockets itself does."""
    import uvloop

    async def scenario() -> None:
        async with ws_engines(WsKnobs()) as [(_, port)]:
            async with ws_probing(spec([url(port)], 1, heartbeat_rate=1)) as probe:
                await probe.until(lambda: probe.value(OPEN) == 1, 5)
                conn = probe.prober.open[0]
                assert conn.transport is not None
                conn.transport.abort()
                await probe.until(lambda: probe.value(
                    "nautilus_probe_ws_disconnects_total", reason="dropped") == 1, 5)
                conn.eof_received()  # the client answers EOF with EOF: write_eof()
                assert conn.proto.eof_sent

    uvloop.run(scenario())
