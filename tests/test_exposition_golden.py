"""The exposition of a fixed sequence of events, sample by sample, against a file
recorded before the metric children became typed: behaviour and exposition stay
exactly as they were. Every kind of event the exporter counts happens at least once."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from redis.exceptions import RedisError

from exporter.probes.self_report import SelfReportSpec
from exporter.probes.trading_request import CompositeSpec
from exporter.metrics import build
from exporter.probes import registry
from exporter.probes.websocket import ConnectFailure, Disconnect
from exporter.supervise import Supervisor
from exporter.probes.bus import MessageBus
from exporter.probes.self_report import SelfReportProbe
from exporter.probes.trading_request import TradingRequestProbe
from nautilus_wire.protocol import TRADING_REQUEST_LEGS, Reply
from nautilus_wire.replies import Malformed

GOLDEN = Path(__file__).parent / "data" / "exposition_golden.txt"
EP = "ws://127.0.0.1:1/ws"


class RecordingTransport:
    """Sends nothing; fails on demand (the exposition is all that is checked)."""

    reply_key = "r"
    fail = False

    async def send(self, requests: list) -> None:
        if self.fail:
            raise RedisError("down")


class ReportStore:
    async def mget(self, keys: list[str]) -> list[str | None]:
        good = json.dumps({"throughput": 1200, "latency": 12.5, "cpu_usage": 40,
                           "memory_usage": 256, "error_rate": 0.002, "timestamp": 4e9,
                           "operations": {"limit_check": 900.0}})
        return [good, "{not json", None]


async def test_exposition_of_a_fixed_event_sequence_is_unchanged() -> None:
    reg = CollectorRegistry()
    m = build(reg)
    # The kinds' own groups (the families the file was recorded with; http came later).
    groups = {k: registry.kind(k).metrics(reg)  # type: ignore[misc]  # these kinds have one
              for k in ("self_report", "backlog", "websocket")}
    transport = RecordingTransport()
    # As the runtime supervises: every kind's loops declared from the start.
    sup = Supervisor(m, (loop for k in registry.KINDS for loop in k.loops))
    bus = MessageBus(None, transport, m, "golden", supervisor=sup)  # type: ignore[arg-type]  # never connects
    tr = bus.tracker
    risk, ana = tr.series("risk", "limit_check"), tr.series("analytics", "calculation")

    async def send(s, due: float):
        req, pending = tr.request(s, due, 1.0, "normal", "")
        await bus.send([(req, pending)])
        return req

    def reply(req, now: float, us: int = 500, status: str = "ok", seq: int | None = None) -> None:
        tr.on_reply(Reply(req.id, req.seq if seq is None else seq, req.engine, req.op, status, us,
                          "boom" if status == "error" else ""), now)

    reply(await send(risk, 100.0), 100.012)                      # answered
    reply(await send(risk, 100.1), 100.12, status="error")       # error
    reply(await send(ana, 100.2), 100.21, seq=999)               # invalid
    r4 = await send(ana, 100.3)
    reply(r4, 100.303, us=80)
    reply(r4, 100.304)                                           # duplicate
    r5, _r6 = await send(risk, 100.4), await send(risk, 100.5)
    tr.expire(101.55)                                            # both time out
    reply(r5, 101.6)                                             # late
    tr.expire(102.6)                                             # r6 lost
    r7, r8 = await send(ana, 103.0), await send(ana, 103.01)
    reply(r8, 103.02, us=12000)  # began 20.5 ms before r7 (REORDER_TOLERANCE_S)
    reply(r7, 103.03, us=1500)                                   # out of order
    tr.on_reply(Reply("nope", 1, "risk", "limit_check", "ok", 1), 103.1)  # unmatched
    tr.on_malformed(Malformed("bad", None), 103.2)               # malformed, unattributed
    tr.on_malformed(Malformed("bad", (await send(risk, 103.3)).id), 103.31)  # invalid
    transport.fail = True
    await send(risk, 104.0)                                      # send_failed
    await send(ana, 104.0)                                       # failed in the backoff: not dialled
    transport.fail = False
    bus._retry_at = 0.0  # Redis is back, and the send backoff has passed
    await send(risk, 104.5)                                      # never answered
    trading = TradingRequestProbe(bus, CompositeSpec(1.0, 1.0, "high", 0, TRADING_REQUEST_LEGS))
    for due, status in ((105.0, "ok"), (106.0, "error")):
        batch: list = []
        trading.plans[0].fire(due, batch)
        await bus.send(batch)
        for k, (req, _) in enumerate(batch):
            reply(req, due + 0.01 * (k + 1), status=status if k == 2 else "ok")
    tr.expire(110.0)
    risk.m.skipped.inc()
    risk.m.skipped.inc()
    m.schedule_lag.observe(0.003)
    m.loop_lag.observe(0.001)
    ep = groups["websocket"].init_endpoint(EP)
    ep.open.inc()
    ep.open.inc()
    ep.open.dec()
    ep.connect_duration.observe(0.004)
    ep.heartbeat_latency.observe(0.002)
    ep.sent.inc(3)
    ep.received.inc(2)
    ep.timeouts.inc()
    ep.late.inc()
    ep.invalid.inc()
    ep.error_replies.inc()
    ep.broadcast_frames.inc(5)
    ep.broadcast_gaps.inc(2)
    ep.connect_failures[ConnectFailure.REFUSED].inc()
    ep.disconnects[Disconnect.DROPPED].inc()
    groups["websocket"].skipped.inc()
    reports = SelfReportProbe(ReportStore(), m,  # type: ignore[arg-type]  # a stand-in store
                              groups["self_report"],
                              SelfReportSpec(("risk", "analytics", "factor"), 5.0), Supervisor(m))
    await reports.poll()
    m.reload_ok.set(1)
    m.master_info.labels("127.0.0.1:6379").set(1)
    m.master_changes.inc()

    text = generate_latest(reg).decode()
    if os.environ.get("NP_WRITE_GOLDEN"):  # after an intended change: review the diff
        GOLDEN.write_text(text.replace(f'python_version="{platform.python_version()}"',
                                       'python_version="PYTHON"'))
    want = GOLDEN.read_text().replace('python_version="PYTHON"',
                                      f'python_version="{platform.python_version()}"')
    # Family by family, sample by sample: a family's place in the exposition follows
    # when its group was registered, which Prometheus does not read.
    got, wanted = families(text), families(want)
    assert sorted(got) == sorted(wanted)
    for name, lines in wanted.items():
        assert len(got[name]) == len(lines), name
        for line_no, (g, w) in enumerate(zip(got[name], lines, strict=True), 1):
            assert g == w, f"{name}, line {line_no}"


def families(text: str) -> dict[str, list[str]]:
    """Exposition lines by family, in their order within it."""
    out: dict[str, list[str]] = {}
    name = ""
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
        out.setdefault(name, []).append(line)
    return out
