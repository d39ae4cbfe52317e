"""Logs that name the cause of a MessageBus fault, with counts that match the
metrics: Redis out of memory says OutOfMemoryError and Redis's words, a wrong
password says AuthenticationError, and the "N failed" counts add up to the
probes counted send_failed."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest
import redis

from exporter.probes.messagebus import ProbeSpec
from nautilus_testkit import RedisServer
from nautilus_testkit.exposition import value
from nautilus_testkit.probing import probing
from nautilus_wire.redis_client import describe

SPEC = [ProbeSpec("risk", "limit_check", 200, 0.5, "normal", 16)]
FAILED = re.compile(r"MessageBus send failing: ([\d,]+) failed .*\(last error: (.*)\)")
AGAIN = re.compile(r"MessageBus send works again \(([\d,]+) more failed")


@pytest.mark.parametrize("thin", [True, False])
async def test_out_of_memory_is_named_and_counted(redis_url: str, thin: bool, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="exporter.probes.messagebus")
    port = int(redis_url.rsplit(":", 1)[1].split("/")[0])
    with redis.Redis(port=port) as r:
        r.config_set("maxmemory", 1)  # every write refused: OOM, for 1 s
        asyncio.get_running_loop().call_later(1.0, r.config_set, "maxmemory", 0)
        try:
            async with probing(redis_url, SPEC, duration=2, thin=thin, drain=1) as h:
                text = h.text()
        finally:
            r.config_set("maxmemory", 0)
    lines = [rec.getMessage() for rec in caplog.records]
    [first] = [FAILED.search(m) for m in lines if FAILED.search(m)]
    assert first[2].startswith("OutOfMemoryError: ") and \
        "command not allowed when used memory > 'maxmemory'" in first[2], first[2]
    failed = value(text, "nautilus_probe_failures_total", reason="send_failed")
    assert failed >= 150  # 1 s at 200/s
    # Every probe counted send_failed is in the log's counts: the first warning's
    # and the recovery's (no second warning within 10 s).
    again = [AGAIN.search(m) for m in lines if AGAIN.search(m)]
    logged = int(first[1].replace(",", "")) + sum(int(m[1].replace(",", "")) for m in again)
    assert logged == failed, (lines, failed)


async def test_a_wrong_password_is_named(caplog) -> None:
    caplog.set_level(logging.WARNING, logger="exporter.probes.messagebus")
    server = RedisServer(extra_args=("--requirepass", "right")).start()
    try:
        url = f"redis://:wrong@127.0.0.1:{server.port}/0"
        async with probing(url, SPEC, duration=0.5, drain=0.5):
            pass
    finally:
        server.remove()
    lines = [rec.getMessage() for rec in caplog.records]
    causes = {m[2] for line in lines if (m := FAILED.search(line))}
    assert causes and all(c.startswith("AuthenticationError: ") for c in causes), lines
    assert "wrong" not in " ".join(lines)  # the password is never printed


def test_describe() -> None:
    assert describe(redis.ConnectionError("Error 111 connecting")) == \
        "ConnectionError: Error 111 connecting"
    assert describe(TimeoutError()) == "TimeoutError"


async def test_websocket_faults_are_logged_by_kind(caplog) -> None:
    """docs/configuration.md: under faults the log says each kind of failure once per
    10 s with a count; WebSocket faults included (none were logged before)."""
    from nautilus_testkit import free_port
    from synthetic.websocket_engine import WsKnobs

    from .test_websocket_probe import OPEN, spec, url, ws_engines, ws_probing

    caplog.set_level(logging.WARNING, logger="exporter.probes.websocket")
    refused = url(free_port())
    async with ws_engines(WsKnobs(error_ratio=1.0)) as [(_, port)]:
        erring = url(port)
        async with ws_probing(spec([erring, refused], 4, heartbeat_rate=50)) as probe:
            await probe.until(lambda: probe.value(OPEN, endpoint=erring) == 2, 10)
            await probe.until(lambda: probe.value("nautilus_probe_ws_error_replies_total") >= 20, 10)
    lines = [rec.getMessage() for rec in caplog.records]
    connects = [m for m in lines if m.startswith(f"WebSocket connects to {refused} failing: ")]
    assert len(connects) == 1 and connects[0].endswith("(last error: refused)"), lines
    replies = [m for m in lines if m.startswith(f"WebSocket replies from {erring} failing: ")]
    assert len(replies) == 1 and replies[0].endswith("(last error: error replies)"), lines
    assert not any(erring in m and "connects" in m for m in lines), lines  # it connected
