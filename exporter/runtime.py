"""The exporter runtime: owns the probing tasks and swaps configurations safely."""

from __future__ import annotations

import asyncio
import logging
import time

from prometheus_client import CollectorRegistry
from redis.exceptions import RedisError

from nautilus_wire.redis_client import connect, ready
from nautilus_wire.requester import make_transport

from .config import Config
from .metrics import Metrics, build
from .probes.messagebus import MessageBusProber, Plan
from .probes.self_report import ReportBridge
from .probes.trading_request import plan_trading_request
from .probes.websocket import WebSocketProber
from .schedule import clock
from .yamlcheck import ConfigError

log = logging.getLogger(__name__)

LOOP_LAG_INTERVAL_S = 0.1


class _Session:
    """Everything tied to one MessageBus connection."""

    def __init__(self, cfg: Config, metrics: Metrics) -> None:
        self.cfg = cfg
        self.redis = connect(cfg.redis_url)
        self.transport = make_transport(cfg.transport, self.redis, cfg.prefix, cfg.prober_id)
        self.prober = MessageBusProber(self.transport, metrics, cfg.prober_id, cfg.max_in_flight)
        self.bridge = ReportBridge(self.redis, metrics, cfg.self_report_engines,
                                   cfg.self_report_interval)
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    def apply(self, cfg: Config) -> None:
        self.cfg = cfg
        self.prober.max_in_flight = cfg.max_in_flight
        self.prober.set_plans(plans_for(self.prober, cfg))
        self.bridge.engines = cfg.self_report_engines
        self.bridge.interval = cfg.self_report_interval

    async def start(self) -> None:
        # Subscribing can fail while Redis is down; the receiver retries later.
        try:
            await ready(self.redis)
            await self.transport.start()
        except (RedisError, OSError) as exc:
            log.warning("subscribing to replies failed: %s", exc)
        self.apply(self.cfg)
        self.tasks = [asyncio.create_task(coro) for coro in (
            self.prober.run_scheduler(self.stop), self.prober.run_receiver(self.stop),
            self.bridge.run(self.stop))]
        for task in self.tasks:
            task.add_done_callback(_report_crash)

    async def close(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.transport.close()
        await self.redis.aclose()


def _report_crash(task: asyncio.Task[None]) -> None:
    """A probe loop must only end when asked to; if one dies, say so loudly
    (and /-/healthy turns 500, see Exporter.healthy)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("probe loop %s crashed", task.get_coro(), exc_info=task.exception())


def _crashed(task: asyncio.Task[None]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is not None


def plans_for(prober: MessageBusProber, cfg: Config) -> list[Plan]:
    plans = [prober.plan_probe(spec) for spec in cfg.probes]
    if cfg.trading_request is not None:
        plans.append(plan_trading_request(prober, cfg.trading_request))
    return plans


class Exporter:
    def __init__(self, config_path: str, registry: CollectorRegistry | None = None,
                 redis_url: str | None = None, shard: tuple[int, int] = (1, 1)) -> None:
        self.config_path = config_path
        self.redis_url = redis_url  # overrides the file's redis_url (--redis.url)
        self.shard = shard  # (i, N): this exporter runs shard i of N of the plan
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = build(self.registry)
        self.config: Config | None = None
        self._session: _Session | None = None
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._loop_lag_task: asyncio.Task[None] | None = None
        self._ws: tuple[WebSocketProber, asyncio.Event, asyncio.Task[None]] | None = None

    @property
    def ready(self) -> bool:
        return self._session is not None

    @property
    def healthy(self) -> bool:
        """False when a probe loop has died: the numbers would silently stop moving."""
        tasks = list(self._session.tasks) if self._session else []
        if self._ws is not None:
            tasks.append(self._ws[2])
        return not any(_crashed(t) for t in tasks)

    @property
    def prober(self) -> MessageBusProber:
        assert self._session is not None
        return self._session.prober

    async def start(self) -> None:
        """Load the configuration (raises ConfigError) and start probing."""
        await self.reload()
        self._loop_lag_task = asyncio.create_task(self._watch_loop_lag())

    async def reload(self) -> bool:
        """Apply the config file again; on error the running config stays. True if changed."""
        try:
            new = Config.load(self.config_path, redis_url=self.redis_url, shard=self.shard)
        except ConfigError:
            self.metrics.reload_ok.set(0)
            raise
        async with self._lock:
            self.metrics.reload_ok.set(1)
            self.metrics.reload_time.set(time.time())
            old = self.config
            if old is not None and old.checksum == new.checksum:
                return False
            self.config = new
            if self._session is not None and old is not None \
                    and old.connection() == new.connection():
                self._session.apply(new)
            else:
                session = _Session(new, self.metrics)
                await session.start()
                previous, self._session = self._session, session
                if previous is not None:
                    # Probes in flight on the old connection are abandoned.
                    await previous.close()
            if old is None or old.websocket != new.websocket:
                await self._replace_websocket(new)
            log.info("configuration loaded: %d probe streams, transport %s",
                     len(new.probes), new.transport)
            return True

    async def _replace_websocket(self, cfg: Config) -> None:
        """A changed WebSocket section reopens the pool from scratch."""
        if self._ws is not None:
            _, stop, task = self._ws
            stop.set()
            await task
            self._ws = None
        if cfg.websocket is not None:
            prober = WebSocketProber(cfg.websocket, self.metrics)
            stop = asyncio.Event()
            self._ws = (prober, stop, asyncio.create_task(prober.run(stop)))
            self._ws[2].add_done_callback(_report_crash)

    @property
    def websocket(self) -> WebSocketProber | None:
        return self._ws[0] if self._ws else None

    async def stop(self) -> None:
        self._stop.set()
        if self._ws is not None:
            self._ws[1].set()
            await self._ws[2]
        if self._loop_lag_task is not None:
            await self._loop_lag_task
        if self._session is not None:
            await self._session.close()

    async def _watch_loop_lag(self) -> None:
        while not self._stop.is_set():
            before = clock()
            await asyncio.sleep(LOOP_LAG_INTERVAL_S)
            self.metrics.loop_lag.observe(max(clock() - before - LOOP_LAG_INTERVAL_S, 0.0))
