"""A synthetic engine: answers protocol-v1 probes with dial-in behaviour.

It embeds the same `Responder` a real engine would (with its built-in
self-report of `metrics:<engine>`), and takes knob changes at run time from the
Redis key `{prefix}:{<engine>}:knobs` (JSON: {"<op>" or "*": {knob: value}}), so a
demo or a test can inject a breach without a restart.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time

import redis.asyncio as aioredis

from nautilus_wire import protocol
from nautilus_wire.protocol import Request
from nautilus_wire.redis_client import BUS_ERRORS, describe
from nautilus_wire.handlers import Verdict
from nautilus_wire.responder import Responder
from nautilus_wire.self_report import SelfReport
from nautilus_config.checks import Node
from nautilus_config.errors import ConfigError

from .knobs import Knobs, parse_knobs
from .timing import CalibratedSleep

log = logging.getLogger(__name__)

# A reordered request is served this long after the next request of its operation
# has been answered: well past the prober's tolerance for concurrent overtaking.
REORDER_GAP_S = 0.05
# ... or after this long if no next request comes.
REORDER_WAIT_MAX_S = 1.0


def knobs_key(prefix: str, engine: str) -> str:
    return f"{prefix}:{{{engine}}}:knobs"


class SyntheticEngine:
    def __init__(self, client: aioredis.Redis, name: str, ops: dict[str, Knobs], *,
                 transport: str = "streams", prefix: str = protocol.DEFAULT_PREFIX,
                 concurrency: int = 256, report_interval: float = 2.0,
                 seed: int | None = None, consumer: str | None = None) -> None:
        self.name = name
        self.configured = dict(ops)
        self.ops = dict(ops)
        self.prefix = prefix
        self.report_interval = report_interval
        self.reordered = 0  # replies sent after the reply to a later request
        self._redis = client
        self._rng = random.Random(seed)
        self._started = time.monotonic()
        self._overrides_raw: str | None = None
        self._sleep = CalibratedSleep()
        self._waiting: dict[str, list[asyncio.Future[None]]] = {}
        self.responder = Responder(client, name, self.handle, transport=transport,
                                   prefix=prefix, concurrency=concurrency, consumer=consumer,
                                   self_report=SelfReport(interval=report_interval))

    async def handle(self, req: Request) -> Verdict:
        knobs = self.ops.get(req.op)
        if knobs is None:
            raise ValueError(f"unknown operation {req.op!r}")
        stall = knobs.stall_wait(time.monotonic() - self._started)
        if stall > 0:
            await asyncio.sleep(stall)  # not answering; not counted as service time
        rng = self._rng
        reorder = rng.random() < knobs.reorder_ratio
        if reorder and await self._after_next(req.op):
            self.reordered += 1
        started = time.perf_counter()
        delay = knobs.service_time.sample(rng)
        if delay > 0:
            await self._sleep(delay)
        service_us = int((time.perf_counter() - started) * 1e6)
        if not reorder:
            self._release(req.op)
        if rng.random() < knobs.drop_ratio:
            return Verdict(copies=0)
        return Verdict(
            error="synthetic error" if rng.random() < knobs.error_ratio else "",
            copies=2 if rng.random() < knobs.duplicate_ratio else 1,
            service_us=service_us)

    async def _after_next(self, op: str) -> bool:
        """Wait until the next request of `op` has been served (not FIFO: the fault
        the prober's out-of-order count catches). False if none came in time."""
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(op, []).append(waiter)
        try:
            await asyncio.wait_for(waiter, REORDER_WAIT_MAX_S)
        except TimeoutError:
            return False
        await asyncio.sleep(REORDER_GAP_S)
        return True

    def _release(self, op: str) -> None:
        waiters = self._waiting.pop(op, [])
        if waiters:
            # After this handler's reply is queued: the next loop turn at the earliest.
            def wake() -> None:
                for w in waiters:
                    if not w.done():
                        w.set_result(None)
            asyncio.get_running_loop().call_soon(wake)

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(self.responder.run(stop), self._knob_loop(stop))

    # -- run-time knobs ------------------------------------------------------------

    async def _knob_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._apply_overrides()
            except BUS_ERRORS as exc:
                self.responder.warn.failed("reading knobs", describe(exc))
            self.responder.report_extra["malformed_requests"] = self.responder.stats.malformed
            try:
                await asyncio.wait_for(stop.wait(), self.report_interval)
            except TimeoutError:
                pass

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
