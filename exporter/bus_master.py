"""Where the MessageBus's master is, and how often it moved: the address the
sentinels name (redis+sentinel://), a Redis Cluster's primaries as the cluster
client knows them, or the one Redis of a plain URL. A dashboard marks a failover
from `messagebus_master_changes_total`; `messagebus_master_info` says where to."""

from __future__ import annotations

import logging
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.sentinel import SentinelConnectionPool

from nautilus_wire.redis_client import BUS_ERRORS

from .metrics import Metrics, remove

log = logging.getLogger(__name__)

WATCH_S = 1.0


async def masters(client: Any) -> set[str] | None:
    """host:port of each master the client writes to now; None when that cannot be
    known at the moment (no sentinel answered: a failover in progress)."""
    if isinstance(client, aioredis.RedisCluster):
        # The nodes the slots route to (the client's node list keeps a dead primary
        # marked primary after a failover; its slot map does not).
        slots = client.nodes_manager.slots_cache
        return {nodes[0].name for nodes in slots.values() if nodes} or None
    pool = client.connection_pool
    if isinstance(pool, SentinelConnectionPool):
        try:
            # Asking also closes the pool's idle connections to a master that is no
            # longer one, before a probe would be sent on them.
            host, port = await pool.get_master_address()  # type: ignore[no-untyped-call]  # redis-py untyped
        except BUS_ERRORS:
            return None
        return {f"{host}:{port}"}
    kw = pool.connection_kwargs
    return {kw["path"] if "path" in kw else f"{kw.get('host', 'localhost')}:{kw.get('port', 6379)}"}


def _can_move(client: Any) -> bool:
    """A Sentinel's master or a Cluster's primaries can change under the client."""
    return isinstance(client, aioredis.RedisCluster) or isinstance(client.connection_pool,
                                                                   SentinelConnectionPool)


class MasterWatch:
    """Compares the masters once per WATCH_S with the last seen; each master replaced
    by another is one change. A new client (a reload to another URL) starts afresh."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._client: Any = None
        self._known: set[str] = set()

    async def check(self, client: Any) -> None:
        if client is self._client and not _can_move(client):
            return  # a plain URL's Redis: looked at once
        now = await masters(client)
        if now is None:
            return
        if client is not self._client:
            self._client, moved = client, 0
        else:
            moved = len(now - self._known)
        if moved:
            self.metrics.master_changes.inc(moved)
            log.warning("MessageBus master moved: %s -> %s", ", ".join(sorted(self._known)),
                        ", ".join(sorted(now)))
        for gone in self._known - now:
            remove(self.metrics.master_info, gone)
        for address in now:
            self.metrics.master_info.labels(address).set(1)
        self._known = now
