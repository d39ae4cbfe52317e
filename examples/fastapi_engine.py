"""A FastAPI "risk" engine that answers nautilus-probe's probes.

The responder starts and stops with the app (FastAPI's lifespan): it serves probes
in the background of uvicorn's event loop and leaves the consumer group on shutdown.

    pip install ./wire fastapi uvicorn
    NAUTILUS_REDIS_URL=redis://127.0.0.1:6379/0 uvicorn --app-dir examples fastapi_engine:app
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI

from nautilus_wire import Request, Responder, SelfReport, connect, current_probe, is_probe


class RiskEngine:
    """Stands in for the team's real engine: a limit check takes 2-20 ms, 2 % of them
    200 ms, 1 % fail. Each operation's time goes to RISK_TIMING_LOG (JSON lines) when
    set: the engine's own account, to compare with what the prober measured."""

    def __init__(self) -> None:
        self.rng = random.Random()
        # Real work (not probes) since the last self-report.
        self.real_ok: dict[str, int] = {}  # operation -> successful ones
        self.real_failed = 0
        self.real_ok_seconds = 0.0
        log = os.environ.get("RISK_TIMING_LOG")
        self.timing = open(log, "a") if log else None

    def figures(self, interval: float) -> dict[str, Any]:
        """The engine's own figures (real work), for the self-report: the responder
        calls it every report with the seconds since the last call. The four work
        figures together, so the report describes one population (its `from_engine`
        names them)."""
        ok, failed = sum(self.real_ok.values()), self.real_failed
        out = {"throughput": ok / interval,
               "operations": {op: n / interval for op, n in self.real_ok.items()},
               "latency": 1000 * self.real_ok_seconds / ok if ok else 0.0,
               "error_rate": failed / (ok + failed) if ok + failed else 0.0}
        self.real_ok, self.real_failed, self.real_ok_seconds = {}, 0, 0.0
        return out

    async def check_limits(self, account: str, *, dry_run: bool) -> bool:
        started, ok = time.perf_counter(), False
        try:
            if self.rng.random() < 0.01:
                raise RuntimeError(f"limit table for {account!r} unavailable")
            await asyncio.sleep(0.2 if self.rng.random() < 0.02 else self.rng.uniform(0.002, 0.02))
            ok = True
            return True
        finally:
            self._log("limit_check", started, ok)
            if not dry_run:
                self._count("limit_check", started, ok)

    async def detect_breaches(self, *, dry_run: bool) -> list[str]:
        await asyncio.sleep(0.001)
        return []

    async def raise_alert(self, text: str, *, dry_run: bool) -> None:
        if dry_run or is_probe():
            return  # a probe pages nobody: everything up to the pager, then stop
        ...  # page the desk

    def _count(self, op: str, started: float, ok: bool) -> None:
        if not ok:
            self.real_failed += 1
            return
        self.real_ok[op] = self.real_ok.get(op, 0) + 1
        self.real_ok_seconds += time.perf_counter() - started

    def _log(self, op: str, started: float, ok: bool) -> None:
        if self.timing is None:
            return
        probe = current_probe()  # None for real work
        self.timing.write(json.dumps({"op": op, "ok": ok, "probe": probe.id if probe else None,
                                      "ms": (time.perf_counter() - started) * 1e3}) + "\n")
        self.timing.flush()


engine = RiskEngine()


# Probe handlers: a dry run of each operation, never a side effect.
async def limit_check(req: Request) -> None:
    # A fixed test account: the probe's payload is filler, not an account or an order.
    await engine.check_limits("PROBE-ACCOUNT", dry_run=True)  # raise -> "error"


async def breach_detection(req: Request) -> None:
    await engine.detect_breaches(dry_run=True)


async def alert(req: Request) -> None:
    await engine.raise_alert("probe", dry_run=True)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    client = connect(os.environ.get("NAUTILUS_REDIS_URL", "redis://127.0.0.1:6379/0"))
    handlers = {"limit_check": limit_check, "breach_detection": breach_detection, "alert": alert}
    async with Responder(client, "risk", handlers, self_report=SelfReport(figures=engine.figures)):
        yield
    await client.aclose()


app = FastAPI(lifespan=lifespan)


@app.get("/limits/{account}")
async def limits(account: str) -> dict[str, object]:
    """The engine's real API."""
    ok = await engine.check_limits(account, dry_run=False)
    return {"account": account, "ok": ok}
