"""Redis clients for every side of the MessageBus: fail fast, pack commands in C.

The exporter, the responders and the load tools all connect through `connect`.
"""

from __future__ import annotations

import re
import traceback
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelManagedConnection, SentinelManagedSSLConnection
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

hiredis: Any
try:
    import hiredis
except ImportError:  # redis-py works without it, only slower
    hiredis = None

# What a Redis call raises when the bus is unreachable or the connection broke
# under it: each is counted as a MessageBus error and the call retried later. redis-py
# raises RuntimeError ("unable to perform operation on <TCPTransport closed=True>;
# the handler is closed") when a peer resets a connection it is using. A cluster
# client that finds no node to (re)learn the slots from during a failover raises
# RedisClusterException, which is not a RedisError.
BUS_ERRORS: tuple[type[BaseException], ...] = (RedisError, RedisClusterException, OSError,
                                               RuntimeError)

# Bytes that are not UTF-8 decode to lone surrogates instead of raising inside the
# reply parser (which would end the reading loop); the protocol then rejects them
# as malformed (nautilus_wire.protocol).
ENCODING_ERRORS = "surrogateescape"


def describe(exc: BaseException) -> str:
    """An error as a log line names it: its class and Redis's own words
    (`OutOfMemoryError: command not allowed when used memory > 'maxmemory'`).
    redis-py's repr gives only a category and the class (`server:ResponseError`)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _HiredisPacking:
    """redis-py's asyncio connections pack commands in Python, about 2.5 us per
    argument here (a request has 25); hiredis packs them in C."""

    def pack_command(self, *args: Any) -> list[bytes]:
        if hiredis is None:
            return super().pack_command(*args)  # type: ignore[misc,no-any-return]  # redis-py untyped
        if isinstance(args[0], str) and " " in args[0]:  # e.g. "XGROUP CREATE"
            args = (*args[0].split(), *args[1:])
        return [hiredis.pack_command(args)]


def _from_the_transport(exc: BaseException) -> bool:
    """Raised inside redis-py or asyncio, not by our code."""
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and any(part in frames[-1].filename for part in
                                ("/redis/", "/asyncio/", "uvloop"))


class _CloseRace:
    """When the peer closes a connection while a command is being written, redis-py
    can leak the transport's AttributeError or TypeError instead of a ConnectionError
    (redis/redis-py#4287, #3546): it escaped every `except BUS_ERRORS` and ended an
    engine during a Redis outage. Raise it as the ConnectionError it is."""

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        try:
            await super().send_packed_command(command, check_health)  # type: ignore[misc]  # redis-py untyped
        except (AttributeError, TypeError) as exc:
            if not _from_the_transport(exc):
                raise
            await self.disconnect(nowait=True)  # type: ignore[attr-defined]  # the mixin's host class
            raise RedisConnectionError(f"connection closed while writing ({exc!r})") from exc


class _Connection(_CloseRace, _HiredisPacking, aioredis.Connection):
    pass


class _SSLConnection(_CloseRace, _HiredisPacking, aioredis.SSLConnection):
    pass


class _UnixConnection(_CloseRace, _HiredisPacking, aioredis.UnixDomainSocketConnection):
    pass


class _SentinelConnection(_CloseRace, _HiredisPacking, SentinelManagedConnection):
    pass


class _SentinelSSLConnection(_CloseRace, _HiredisPacking, SentinelManagedSSLConnection):
    pass


_CONNECTIONS = {"redis": _Connection, "rediss": _SSLConnection, "unix": _UnixConnection}


CLUSTER_SCHEME = "redis+cluster://"
SENTINEL_SCHEMES = ("redis+sentinel://", "rediss+sentinel://")

# One sentinel of a list: host:port, or [IPv6]:port. The port is required: a
# sentinel's default (26379) is not a Redis's, and a guess would dial the wrong one.
_SENTINEL_HOST = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9._-]+))"
                            r":(?P<port>[0-9]{1,5})$")
_MASTER_NAME = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


@dataclass(frozen=True)
class SentinelAddress:
    """What a `redis+sentinel://h:p,h:p/<master>/<db>` URL names."""

    sentinels: tuple[tuple[str, int], ...]
    master: str  # the name the sentinels monitor it under
    db: int
    tls: bool  # rediss+sentinel://: TLS to the sentinels and to the master


def sentinel_address(url: str) -> SentinelAddress:
    """Parse a Sentinel URL; ValueError says what is wrong with it. Credentials are
    never in it (they come with RedisAccess), nor query options."""
    scheme = next((s for s in SENTINEL_SCHEMES if url.startswith(s)), None)
    if scheme is None:
        raise ValueError(f"must start with {' or '.join(SENTINEL_SCHEMES)}")
    rest = url[len(scheme):]
    if any(c in rest for c in "?#@"):
        raise ValueError("takes no credentials, query or fragment: give them in the access settings")
    hosts, _, path = rest.partition("/")
    if not hosts:
        raise ValueError("needs at least one sentinel as host:port")
    sentinels = []
    for item in hosts.split(","):
        m = _SENTINEL_HOST.match(item)
        if m is None:
            raise ValueError(f"sentinel {item!r} is not host:port (the port is required)")
        port = int(m["port"])
        if not 1 <= port <= 65535:
            raise ValueError(f"sentinel {item!r}: the port must be 1-65535")
        sentinels.append((m["v6"] or m["host"], port))
    parts = path.split("/") if path else []
    if not parts or not parts[0]:
        raise ValueError("needs the master's name after the sentinels: /<master>/<db>")
    if not _MASTER_NAME.match(parts[0]):
        raise ValueError(f"master name {parts[0]!r} may hold only letters, digits and ._-")
    if len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
        raise ValueError(f"after the master's name comes only a database number, got {path!r}")
    db = int(parts[1]) if len(parts) == 2 else 0
    if len(set(sentinels)) != len(sentinels):
        raise ValueError("names a sentinel twice")
    return SentinelAddress(tuple(sentinels), parts[0], db, scheme.startswith("rediss"))


@dataclass(frozen=True)
class RedisAccess:
    """Credentials and TLS beside the URL (kept out of it, so they are never printed)."""

    username: str | None = None
    password: str | None = None  # read from a password_file
    ca_file: str | None = None
    cert_file: str | None = None  # a client certificate, for `tls-auth-clients yes`
    key_file: str | None = None
    insecure_skip_verify: bool = False
    # The sentinels' own ACL user and password (Sentinel's `requirepass` is not the
    # master's); TLS to them is the same as to the master.
    sentinel_username: str | None = None
    sentinel_password: str | None = None

    def options(self) -> dict[str, Any]:
        return self._login(self.username, self.password)

    def sentinel_options(self) -> dict[str, Any]:
        return self._login(self.sentinel_username, self.sentinel_password)

    def _login(self, username: str | None, password: str | None) -> dict[str, Any]:
        """A client's keyword arguments: these credentials (those given) and the TLS files."""
        given = {"username": username, "password": password}
        return {**{k: v for k, v in given.items() if v is not None}, **self.tls_options()}

    def tls_options(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.ca_file:
            out["ssl_ca_certs"] = self.ca_file
        if self.cert_file:
            out["ssl_certfile"], out["ssl_keyfile"] = self.cert_file, self.key_file
        if self.insecure_skip_verify:
            out["ssl_cert_reqs"], out["ssl_check_hostname"] = "none", False
        return out


def connect(url: str, access: RedisAccess | None = None) -> aioredis.Redis:
    """A client that fails fast: one immediate retry (a connection gone stale after a
    Redis restart), then the error, which callers count. The default policy retries
    with backoff for seconds and would stall the open-loop schedule.

    `redis+cluster://host:port` connects to a Redis Cluster: the protocol's hash tags
    keep an engine's request streams, and a prober's reply stream, in one slot each.
    The cluster client keeps redis-py's own cluster retry (it follows MOVED and
    re-reads the slots), not the one-retry policy above."""
    access = access or RedisAccess()
    extra: dict[str, Any] = access.options()
    if url.startswith(SENTINEL_SCHEMES):
        return _sentinel_master(sentinel_address(url), access)
    if url.startswith(CLUSTER_SCHEME):
        return aioredis.RedisCluster.from_url(  # type: ignore[return-value]  # same commands
            "redis://" + url[len(CLUSTER_SCHEME):], decode_responses=True,
            encoding_errors=ENCODING_ERRORS, socket_timeout=2.0, socket_connect_timeout=1.0,
            **extra)
    extra["connection_class"] = _CONNECTIONS[url.split("://", 1)[0]]
    return aioredis.from_url(url, decode_responses=True, encoding_errors=ENCODING_ERRORS,
                             socket_timeout=2.0, socket_connect_timeout=1.0,
                             retry=Retry(NoBackoff(), 1), **extra)


def _sentinel_master(where: SentinelAddress, access: RedisAccess) -> aioredis.Redis:
    """The master the sentinels name, followed through failovers: every new connection
    asks a sentinel where the master is (redis-py's SentinelConnectionPool), and a
    connection-level error drops the pool's connections (reset_after), so none stays
    on a dead or demoted master (redis/redis-py#3560). The sentinels get their own
    timeouts: a socket timeout shorter than a sentinel's answer under load reads as
    "No master found" (#3186). One pool per client, made once (#3433)."""
    tls = {"ssl": True} if where.tls else {}
    sentinels = Sentinel(  # type: ignore[no-untyped-call]  # redis-py untyped
        list(where.sentinels),
        sentinel_kwargs={"socket_timeout": 1.0, "socket_connect_timeout": 0.5,
                         "retry": Retry(NoBackoff(), 0),
                         **tls, **access.sentinel_options()})
    return sentinels.master_for(  # type: ignore[no-any-return]  # redis-py untyped
        where.master, db=where.db, decode_responses=True, encoding_errors=ENCODING_ERRORS,
        socket_timeout=2.0, socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 1),
        connection_class=_SentinelSSLConnection if where.tls else _SentinelConnection,
        **access.options())


async def reset_after(client: aioredis.Redis, exc: BaseException) -> None:
    """After a connection-level error, drop every pooled connection, so the next call
    dials afresh instead of reusing one whose transport was closed under it. (A
    command error such as OOM leaves the connections alone.)"""
    if not isinstance(exc, (RedisConnectionError, RedisTimeoutError, OSError, RuntimeError)):
        return
    if isinstance(client, aioredis.RedisCluster):
        return  # the cluster client replaces failed nodes' connections itself
    try:
        await client.connection_pool.disconnect()
    except BUS_ERRORS:
        pass


async def ready(client: aioredis.Redis) -> None:
    """A cluster client learns the slot map once, before concurrent use: redis-py
    races when many tasks trigger its lazy initialisation at the same time."""
    if isinstance(client, aioredis.RedisCluster):
        await client.initialize()
