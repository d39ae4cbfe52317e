"""The exporter runtime: starts, reloads, health-checks and stops every probe the
same way (probes/base.py), and swaps configurations safely."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector

from nautilus_wire.redis_client import connect
from nautilus_wire.requester import make_transport

from .bus_master import MasterWatch, WATCH_S
from .config import Config
from .metrics import build
from .probes.base import Context, Probe, ProbeKind
from .probes.bus import MessageBus
from .probes import registry
from .probes.registry import KINDS
from .schedule import clock
from .supervise import Supervisor

log = logging.getLogger(__name__)

LOOP_LAG_INTERVAL_S = 0.1
# Stopping within cli.STOP_BUDGET_S in every state (Redis frozen included): loops get
# this long to end by themselves, then they are cancelled; closing connections gets the rest.
STOP_GRACE_S = 0.8
CLOSE_GRACE_S = 0.3

@dataclass
class _Running:
    probe: Probe
    stop: asyncio.Event
    task: asyncio.Task[None]

    def crashed(self) -> bool:
        t = self.task
        return t.done() and not t.cancelled() and t.exception() is not None


def _report_crash(task: asyncio.Task[None]) -> None:
    """A probe loop must only end when asked to; if one dies, say so loudly
    (and /-/healthy turns 500, see Exporter.healthy)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("probe loop %s crashed", task.get_name(), exc_info=task.exception())


class Exporter:
    def __init__(self, config_path: str, registry: CollectorRegistry | None = None,
                 redis_url: str | None = None, shard: tuple[int, int] = (1, 1)) -> None:
        self.config_path = config_path
        self.redis_url = redis_url  # overrides the file's redis_url (--redis.url)
        self.shard = shard  # (i, N): this exporter runs shard i of N of the plan
        self.registry = registry if registry is not None else CollectorRegistry()
        # The exporter's own CPU, memory and open fds: process_* (per worker with --workers).
        ProcessCollector(registry=self.registry)
        self.metrics = build(self.registry)
        self.supervisor = Supervisor(self.metrics, (loop for k in KINDS for loop in k.loops))
        self.config: Config | None = None
        self.bus: MessageBus | None = None
        self._running: dict[str, _Running] = {}
        # Each kind's own metric group, registered the first time one of its probes is
        # built (an exporter that never runs a kind does not expose its families).
        self._groups: dict[str, Any] = {}
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._loop_lag_task: asyncio.Task[None] | None = None
        self._master_task: asyncio.Task[None] | None = None
        self._master_watch = MasterWatch(self.metrics)
        self.generation = 0  # counts (re)load attempts: /metrics renders afresh after one

    @property
    def ready(self) -> bool:
        return self.config is not None

    @property
    def healthy(self) -> bool:
        return self.health_problem() is None

    def health_problem(self) -> str | None:
        """What is wrong when a probe loop has died or keeps failing: the numbers would
        silently stop moving, or lie."""
        dead = [kind for kind, r in self._running.items() if r.crashed()]
        if dead:
            return f"probe loops ended: {', '.join(dead)}; see the log\n"
        troubled = self.supervisor.troubled()
        if troubled:
            return f"probe loops restarting repeatedly: {', '.join(troubled)}; see the log\n"
        return None

    def probe(self, kind: str) -> Any:
        """The running probe of a kind, or None (an unknown kind is an error)."""
        running = self._running.get(registry.kind(kind).name)
        return running.probe if running else None

    def load(self) -> Config:
        return Config.load(self.config_path, redis_url=self.redis_url, shard=self.shard)

    async def start(self, config: Config | None = None) -> None:
        """Start probing with `config` (already parsed), or the file's (raises ConfigError)."""
        await self.apply(config if config is not None else self.load())
        self._loop_lag_task = asyncio.create_task(self.supervisor.run(
            "event_loop_lag", self._watch_loop_lag, self._stop))
        self._master_task = asyncio.create_task(self.supervisor.run(
            "messagebus_master", self._watch_master, self._stop))

    async def reload(self) -> bool:
        """Apply the config file again; on error the running config stays. True if changed."""
        try:
            # Parsed on a worker thread: the probes keep their schedule meanwhile.
            return await self.apply(await asyncio.to_thread(self.load))
        except Exception:
            self.metrics.reload_ok.set(0)
            raise
        finally:
            self.generation += 1

    async def apply(self, new: Config) -> bool:
        async with self._lock:
            changed = await self._apply(new)
            self.metrics.reload_ok.set(1)
            self.metrics.reload_time.set(time.time())
            return changed

    async def _apply(self, new: Config) -> bool:
        old = self.config
        if old is not None and old.checksum == new.checksum:
            return False
        self.config = new
        if self.bus is None or old is None or old.connection() != new.connection():
            # Probes in flight on the old connection are abandoned.
            for kind in reversed(KINDS):
                if kind.bus:
                    await self._stop_probe(kind.name)
            if self.bus is not None:
                await self.bus.close()
            client = connect(new.redis_url, new.redis_access)
            self.bus = MessageBus(client, make_transport(new.transport, client, new.prefix,
                                                          new.prober_id,
                                                          thin=new.redis_client == "auto"),
                                  self.metrics, new.prober_id, supervisor=self.supervisor)
        self.bus.max_in_flight = new.max_in_flight
        for kind in KINDS:
            spec = new.spec(kind)
            running = self._running.get(kind.name)
            if running is not None and spec is not None and running.probe.apply(spec):
                continue
            await self._stop_probe(kind.name)
            if spec is not None:
                await self._start_probe(self._make(kind, spec))
        log.info("configuration loaded: %d probe series, transport %s",
                 len(new.probes), new.transport)
        return True

    def _make(self, kind: ProbeKind, spec: Any) -> Probe:
        if kind.metrics is not None and kind.name not in self._groups:
            self._groups[kind.name] = kind.metrics(self.registry)
        probe = kind.build(spec, Context(self.metrics, self.supervisor,
                                         self._groups.get(kind.name), self.bus))
        assert probe.kind == kind.name, (probe.kind, kind.name)  # health reports use it
        return probe

    async def _start_probe(self, probe: Probe) -> None:
        await probe.start()
        stop = asyncio.Event()
        task = asyncio.create_task(probe.run(stop), name=f"{probe.kind} probe")
        task.add_done_callback(_report_crash)
        self._running[probe.kind] = _Running(probe, stop, task)

    async def _stop_probe(self, kind: str) -> None:
        running = self._running.pop(kind, None)
        if running is None:
            return
        running.stop.set()
        await asyncio.gather(running.task, return_exceptions=True)
        await running.probe.close()

    async def stop(self) -> None:
        """Stop every loop and close every connection, in bounded time: a loop stuck
        on a frozen Redis (its socket timeout is 2 s, and a send can wait on several)
        is cancelled after STOP_GRACE_S, a close abandoned after CLOSE_GRACE_S."""
        self._stop.set()
        running = [self._running.pop(k.name) for k in reversed(KINDS) if k.name in self._running]
        for r in running:
            r.stop.set()
        tasks = [r.task for r in running]
        tasks.extend(t for t in (self._loop_lag_task, self._master_task) if t is not None)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=STOP_GRACE_S)
            for task in late:
                task.cancel()
            if late:
                log.warning("%d probe loop(s) did not stop within %.1f s; cancelled",
                            len(late), STOP_GRACE_S)
                await asyncio.wait(late, timeout=CLOSE_GRACE_S)
        closing = [r.probe.close() for r in running]
        if self.bus is not None:
            closing.append(self.bus.close())
        try:
            async with asyncio.timeout(CLOSE_GRACE_S):
                await asyncio.gather(*closing, return_exceptions=True)
        except TimeoutError:
            log.warning("closing connections took over %.1f s; leaving them to the exit",
                        CLOSE_GRACE_S)

    async def _watch_master(self) -> None:
        while not self._stop.is_set():
            if self.bus is not None:
                await self._master_watch.check(self.bus.client)
            try:
                await asyncio.wait_for(self._stop.wait(), WATCH_S)
            except TimeoutError:
                pass

    async def _watch_loop_lag(self) -> None:
        while not self._stop.is_set():
            before = clock()
            await asyncio.sleep(LOOP_LAG_INTERVAL_S)
            self.metrics.loop_lag.observe(max(clock() - before - LOOP_LAG_INTERVAL_S, 0.0))
