"""The buffered MessageBus client the migration plan's benchmark imports.

`publish(topic, message, priority)` appends to a per-priority buffer; buffers are
flushed through one pipeline each when they reach their batch size or their
interval, highest priority first. Throughput counts messages Redis has
acknowledged, never buffer appends. A failed flush keeps the messages for the
next one (up to `max_buffered`, beyond which the oldest are dropped and counted).
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)


class Priority(enum.IntEnum):
    LOW = 0
    NORMAL = 1
    HIGH = 2
    CRITICAL = 3

    @classmethod
    def parse(cls, value: Priority | str | int) -> Priority:
        """Priority.HIGH, "HIGH", "high" or 2."""
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            try:
                return cls[value.upper()]
            except KeyError:
                raise ValueError(f"unknown priority {value!r}") from None
        return cls(value)


_BY_NAME: dict[Any, Priority] = {**{p.name: p for p in Priority},
                                  **{p.name.lower(): p for p in Priority}, **{p: p for p in Priority}}


@dataclass(frozen=True)
class BufferPolicy:
    batch_size: int  # flush when this many are buffered
    interval: float  # ... or when the oldest has waited this long (seconds)


@dataclass(frozen=True)
class BusConfig:
    policies: dict[Priority, BufferPolicy]
    max_buffered: int = 100_000  # per priority


def _config(critical: tuple[int, float], high: tuple[int, float], normal: tuple[int, float],
            low: tuple[int, float]) -> BusConfig:
    return BusConfig({p: BufferPolicy(*v) for p, v in zip(
        (Priority.CRITICAL, Priority.HIGH, Priority.NORMAL, Priority.LOW),
        (critical, high, normal, low), strict=True)})


PRESETS: dict[str, BusConfig] = {
    # Many small messages: big batches, short waits.
    "high_frequency": _config((1, 0.0), (100, 0.001), (500, 0.005), (1000, 0.02)),
    # Latency first: tiny batches.
    "low_latency": _config((1, 0.0), (1, 0.0), (10, 0.001), (50, 0.005)),
    # Throughput first.
    "bulk": _config((10, 0.001), (1000, 0.01), (5000, 0.05), (10000, 0.1)),
}


@dataclass
class BusStats:
    acknowledged: int = 0  # messages Redis confirmed
    flushes: int = 0
    failed_flushes: int = 0
    dropped: int = 0  # over max_buffered while Redis failed
    by_priority: dict[str, int] = field(default_factory=dict)


class BufferedMessageBus:
    def __init__(self, client: aioredis.Redis, *, config: BusConfig | str = "high_frequency",
                 prefix: str = "nautilus:bus", transport: str = "pubsub") -> None:
        self.config = PRESETS[config] if isinstance(config, str) else config
        self.prefix = prefix
        self.transport = transport
        self.stats = BusStats()
        self._redis = client
        self._buffers: dict[Priority, list[tuple[str, str]]] = {p: [] for p in Priority}
        self._oldest: dict[Priority, float] = {}
        self._wake = asyncio.Event()
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._keys: dict[str, str] = {}

    async def __aenter__(self) -> BufferedMessageBus:
        self._task = asyncio.create_task(self._flush_loop())
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def publish(self, topic: str, message: Any, priority: Priority | str | int = "NORMAL") -> None:
        prio = _BY_NAME.get(priority) or Priority.parse(priority)  # the hot path: a dict hit
        key = self._keys.get(topic)
        if key is None:
            key = self._keys[topic] = f"{self.prefix}:{topic}"
        buf = self._buffers[prio]
        if not buf:
            self._oldest[prio] = time.monotonic()
        buf.append((key, message if isinstance(message, str) else json.dumps(message)))
        if len(buf) > self.config.max_buffered:
            del buf[0]
            self.stats.dropped += 1
        if len(buf) >= self.config.policies[prio].batch_size:
            await self.flush(prio)
        elif len(buf) == 1:
            self._wake.set()  # a new oldest message: the flusher re-arms its timer

    async def flush(self, only: Priority | None = None) -> None:
        """Write buffered messages, highest priority first; one pipeline per priority."""
        async with self._lock:
            for prio in sorted(Priority, reverse=True):
                if only is not None and prio is not only:
                    continue
                batch = self._buffers[prio]
                if not batch:
                    continue
                self._buffers[prio] = []
                self._oldest.pop(prio, None)
                if not await self._write(prio, batch):
                    # Keep them, in order, ahead of anything published meanwhile.
                    self._buffers[prio] = batch + self._buffers[prio]
                    self._oldest[prio] = time.monotonic()

    async def _write(self, prio: Priority, batch: list[tuple[str, str]]) -> bool:
        pipe = self._redis.pipeline(transaction=False)
        for key, data in batch:
            if self.transport == "streams":
                pipe.xadd(key, {"priority": prio.name, "data": data}, maxlen=100_000,
                          approximate=True)
            else:
                pipe.publish(key, data)
        try:
            await pipe.execute()
        except (RedisError, OSError) as exc:
            self.stats.failed_flushes += 1
            log.warning("flushing %d %s messages failed: %s", len(batch), prio.name, exc)
            return False
        self.stats.flushes += 1
        self.stats.acknowledged += len(batch)
        self.stats.by_priority[prio.name] = self.stats.by_priority.get(prio.name, 0) + len(batch)
        return True

    async def _flush_loop(self) -> None:
        while not self._closed:
            now = time.monotonic()
            due = [p for p, t in self._oldest.items()
                   if now - t >= self.config.policies[p].interval]
            for prio in sorted(due, reverse=True):
                await self.flush(prio)
            waits = [self.config.policies[p].interval - (now - t) for p, t in self._oldest.items()]
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), max(min(waits, default=0.1), 0.001))
            except TimeoutError:
                pass

    async def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._task is not None:
            await self._task
        await self.flush()
