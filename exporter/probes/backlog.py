"""MessageBus backlog: each probed engine's consumer-group state -> gauges.

On the self-report interval it runs `XINFO GROUPS` on the engine's request
streams (one per priority) and exposes, summed over them, the requests handed
to the engine's responders and not yet acknowledged (`pending`), those not yet
handed out (`lag`) and how many responders are in the group. A stalled engine
then shows a growing backlog before its probes time out. One key per command,
so it is Redis Cluster safe (each stream is routed by its hash tag).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from nautilus_wire import protocol
from nautilus_wire.redis_client import BUS_ERRORS, reset_after

from .polling import PollingProbe


@dataclass(frozen=True)
class BacklogSpec:
    """Whose request streams are read, and how often (streams transport only)."""

    prefix: str
    engines: tuple[str, ...]
    interval: float


@dataclass
class Backlog:
    pending: int = 0
    lag: int = 0
    consumers: int = 0


def responders(groups: Any) -> dict[str, Any] | None:
    """The responders' group in one stream's XINFO GROUPS answer."""
    return next((g for g in groups or () if g.get("name") == protocol.RESPONDER_GROUP), None)


def group_state(group: dict[str, Any] | None, length: int) -> Backlog:
    """Without the group (no responder ever started) every entry of the stream is
    waiting. A `lag` Redis cannot tell (after deletions: None) counts as the whole
    stream, an upper bound."""
    if group is None:
        return Backlog(lag=length)
    lag = group.get("lag")
    return Backlog(pending=int(group.get("pending") or 0),
                   lag=length if lag is None else int(lag),
                   consumers=int(group.get("consumers") or 0))


class BacklogProbe(PollingProbe):
    """Reads the engines' request-stream backlog at a fixed interval."""

    kind = "backlog"
    what = "MessageBus backlog"

    def apply(self, spec: BacklogSpec) -> bool:
        if spec.engines != self.spec.engines or spec.prefix != self.spec.prefix:
            return False  # replaced: series of engines no longer probed must go
        self.spec = spec
        return True

    async def close(self) -> None:
        for engine in self.spec.engines:
            for gauge in (self._m.backlog_pending, self._m.backlog_lag, self._m.backlog_consumers):
                try:
                    gauge.remove(engine)
                except KeyError:
                    pass

    async def _stream(self, key: str) -> Backlog | None:
        try:
            groups = await self._redis.xinfo_groups(key)
        except ResponseError as exc:
            if "no such key" in str(exc).lower():
                return Backlog()  # nothing was ever sent at this priority
            # Not a stream (WRONGTYPE): this engine's backlog is unknown, the others' are not.
            self.warn.failed(f"read {key}", str(exc))
            self._m.bus_errors.labels("backlog").inc()
            return None
        group = responders(groups)
        need_length = group is None or group.get("lag") is None
        return group_state(group, await self._redis.xlen(key) if need_length else 0)

    async def poll(self) -> None:
        spec = self.spec
        keys = [[protocol.request_stream(spec.prefix, e, p) for p in protocol.PRIORITIES]
                for e in spec.engines]
        try:
            if isinstance(self._redis, aioredis.RedisCluster):
                # One at a time: redis-py's cluster client can hand a connection that is
                # still being opened to a concurrent first command (AttributeError).
                per_engine = [[await self._stream(k) for k in ks] for ks in keys]
            else:
                per_engine = await asyncio.gather(*(
                    asyncio.gather(*(self._stream(k) for k in ks)) for ks in keys))
        except BUS_ERRORS as exc:
            self.warn.failed("read", repr(exc))
            self._m.bus_errors.labels("backlog").inc()
            await reset_after(self._redis, exc)
            return
        self.warn.recovered("read")
        for engine, streams in zip(spec.engines, per_engine):
            if any(s is None for s in streams):
                continue
            self._m.backlog_pending.labels(engine).set(sum(s.pending for s in streams))
            self._m.backlog_lag.labels(engine).set(sum(s.lag for s in streams))
            # Every responder joins every priority's group: the most of any stream.
            self._m.backlog_consumers.labels(engine).set(max(s.consumers for s in streams))
