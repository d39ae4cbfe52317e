"""A synthetic engine: answers protocol-v1 probes with dial-in behaviour.

It embeds the same `Responder` a real engine would, self-reports
`metrics:<engine>` like the migration plan's engines, and takes knob changes at run time
from the Redis key `{prefix}:{<engine>}:knobs` (JSON: {"<op>" or "*": {knob: value}}),
so a demo or a test can inject a breach without a restart.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time

import redis.asyncio as aioredis

from nautilus_wire import protocol
from nautilus_wire.protocol import Request
from nautilus_wire.redis_client import BUS_ERRORS
from nautilus_wire.responder import Responder, Verdict
from exporter.yamlcheck import ConfigError, Node

from .knobs import Knobs, parse_knobs
from .timing import CalibratedSleep

log = logging.getLogger(__name__)
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def knobs_key(prefix: str, engine: str) -> str:
    return f"{prefix}:{{{engine}}}:knobs"


class SyntheticEngine:
    def __init__(self, client: aioredis.Redis, name: str, ops: dict[str, Knobs], *,
                 transport: str = "streams", prefix: str = protocol.DEFAULT_PREFIX,
                 concurrency: int = 256, report_interval: float = 2.0,
                 seed: int | None = None) -> None:
        self.name = name
        self.configured = dict(ops)
        self.ops = dict(ops)
        self.prefix = prefix
        self.report_interval = report_interval
        self._redis = client
        self._rng = random.Random(seed)
        self._started = time.monotonic()
        self._overrides_raw: str | None = None
        self._sleep = CalibratedSleep()
        self.responder = Responder(client, name, self.handle, transport=transport,
                                   prefix=prefix, concurrency=concurrency)

    async def handle(self, req: Request) -> Verdict:
        knobs = self.ops.get(req.op)
        if knobs is None:
            raise ValueError(f"unknown operation {req.op!r}")
        stall = knobs.stall_wait(time.monotonic() - self._started)
        if stall > 0:
            await asyncio.sleep(stall)  # not answering; not counted as service time
        started = time.perf_counter()
        delay = knobs.service_time.sample(self._rng)
        if delay > 0:
            await self._sleep(delay)
        service_us = int((time.perf_counter() - started) * 1e6)
        rng = self._rng
        if rng.random() < knobs.drop_ratio:
            return Verdict(copies=0)
        return Verdict(
            error="synthetic error" if rng.random() < knobs.error_ratio else "",
            copies=2 if rng.random() < knobs.duplicate_ratio else 1,
            reorder=rng.random() < knobs.reorder_ratio,
            service_us=service_us)

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(self.responder.run(stop), self._report_loop(stop))

    # -- self-report and run-time knobs ------------------------------------------

    async def _report_loop(self, stop: asyncio.Event) -> None:
        stats = self.responder.stats
        last = (time.monotonic(), time.process_time(), stats.replies, stats.errors,
                stats.service_us_total)
        last_ops = dict(stats.by_op)
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.report_interval)
            except asyncio.TimeoutError:
                pass
            now = (time.monotonic(), time.process_time(), stats.replies, stats.errors,
                   stats.service_us_total)
            dt, dcpu, dreplies, derrors, dservice = (b - a for a, b in zip(last, now))
            last = now
            ops = {op: (n - last_ops.get(op, 0)) / dt if dt > 0 else 0.0
                   for op, n in stats.by_op.items()}
            last_ops = dict(stats.by_op)
            report = {
                "throughput": dreplies / dt if dt > 0 else 0.0,
                "latency": dservice / dreplies / 1000 if dreplies else 0.0,  # ms
                "cpu_usage": 100.0 * dcpu / dt if dt > 0 else 0.0,  # % of one core
                "memory_usage": rss_bytes() / 2**20,  # MiB
                "error_rate": derrors / dreplies if dreplies else 0.0,
                "timestamp": time.time(),
                "operations": ops,  # optional: ops/s per operation
                # optional, cumulative: requests that were not protocol data
                "malformed_requests": stats.malformed,
            }
            try:
                await self._redis.set(protocol.report_key(self.name), json.dumps(report))
                await self._apply_overrides()
            except BUS_ERRORS as exc:
                self.responder.warn.failed("self-report", repr(exc))

    async def _apply_overrides(self) -> None:
        raw = await self._redis.get(knobs_key(self.prefix, self.name))
        if raw == self._overrides_raw:
            return
        self._overrides_raw = raw
        try:
            self.ops = apply_overrides(self.configured, json.loads(raw) if raw else {})
            log.info("%s: knobs now %s", self.name, raw)
        except (ValueError, ConfigError, RecursionError) as exc:
            log.error("%s: ignoring bad knobs in %s: %s",
                      self.name, knobs_key(self.prefix, self.name), exc)


def apply_overrides(configured: dict[str, Knobs], overrides: object) -> dict[str, Knobs]:
    if not isinstance(overrides, dict):
        raise ValueError("knobs must be a JSON object")
    out = {}
    for op, knobs in configured.items():
        base = knobs
        for key in ("*", op):
            if key in overrides:
                base = parse_knobs(Node(overrides[key], key), base)
        out[op] = base
    return out


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return 0
