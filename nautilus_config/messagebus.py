"""The Redis MessageBus settings every program reads the same way: `redis_url`,
`transport`, `prefix` and the ACL user, password file and TLS files."""

from __future__ import annotations

import os
from urllib.parse import urlsplit
from typing import Any

from nautilus_wire.protocol import DEFAULT_PREFIX, TRANSPORTS
from nautilus_wire.redis_client import RedisAccess, SENTINEL_SCHEMES, sentinel_address

from .checks import Node, boolean, one_of, prefix_check, split_url, string
from .errors import ConfigError


def redis_url_check(path: str, value: Any) -> str:
    url = string(path, value)
    if not url.startswith(("redis://", "rediss://", "unix://", "redis+cluster://",
                           *SENTINEL_SCHEMES)):
        raise ConfigError(path, "must be a redis://, rediss://, unix://, redis+cluster:// or "
                          f"redis+sentinel:// URL, got {value!r}")
    if url.startswith(SENTINEL_SCHEMES):
        try:
            sentinel_address(url)
        except ValueError as exc:
            raise ConfigError(path, f"{exc} (redis+sentinel://host:port,host:port/<master>/<db>)"
                              f", got {url!r}") from None
        return url
    if url.startswith("unix://"):
        if not urlsplit(url).path:
            raise ConfigError(path, "a unix:// URL needs a socket path")
        return url
    if split_url(path, url).port is None:
        raise ConfigError(path, f"needs a port (host:6379), got {url!r}")
    return url


def redis_access(root: Node, redis_url: str) -> RedisAccess:
    """`redis_username`, `redis_password_file` and `redis_tls` beside the URL, and
    the sentinels' own `redis_sentinel_username` and `redis_sentinel_password_file`."""
    username = root.get("redis_username", None, string)
    password = _password(root, "redis_password_file")
    sentinel_username = root.get("redis_sentinel_username", None, string)
    sentinel_password = _password(root, "redis_sentinel_password_file")
    if (sentinel_username is not None or sentinel_password is not None) \
            and not redis_url.startswith(SENTINEL_SCHEMES):
        key = "redis_sentinel_username" if sentinel_username is not None \
            else "redis_sentinel_password_file"
        raise ConfigError(key, "needs a redis+sentinel:// or rediss+sentinel:// redis_url")
    tls = root.node("redis_tls")
    access = RedisAccess(username, password,
                         ca_file=tls.get("ca_file", None, string),
                         cert_file=tls.get("cert_file", None, string),
                         key_file=tls.get("key_file", None, string),
                         insecure_skip_verify=tls.get("insecure_skip_verify", False, boolean),
                         sentinel_username=sentinel_username,
                         sentinel_password=sentinel_password)
    tls.done()
    if tls.data and not redis_url.startswith(("rediss://", "rediss+sentinel://")):
        raise ConfigError("redis_tls", "needs a rediss:// or rediss+sentinel:// redis_url")
    if (access.cert_file is None) != (access.key_file is None):
        raise ConfigError("redis_tls", "cert_file and key_file go together")
    for key in ("ca_file", "cert_file", "key_file"):
        if (file := getattr(access, key)) is not None and not os.path.isfile(file):
            raise ConfigError(f"redis_tls.{key}", f"no such file: {file}")
    return access


def _password(root: Node, key: str) -> str | None:
    if (path := root.get(key, None, string)) is None:
        return None
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError as exc:
        raise ConfigError(key, f"cannot read it: {exc.strerror}") from None


def redis_url_override(url: str, transport: str) -> str:
    """A `--redis.url` flag in place of the file's redis_url, checked as strictly."""
    url = redis_url_check("--redis.url", url)
    if transport == "pubsub" and url.startswith("redis+cluster://"):
        raise ConfigError("--redis.url", "pubsub is not supported on Redis Cluster; use streams")
    return url


def messagebus_settings(root: Node) -> tuple[str, str, str]:
    """(redis_url, transport, prefix): how the exporter and the engines reach the bus."""
    redis_url = root.get("redis_url", "redis://127.0.0.1:6379/0", redis_url_check)
    transport = root.get("transport", "streams", one_of(*TRANSPORTS))
    if transport == "pubsub" and redis_url.startswith("redis+cluster://"):
        raise ConfigError("transport", "pubsub is not supported on Redis Cluster; use streams")
    prefix = root.get("prefix", DEFAULT_PREFIX, prefix_check)
    return redis_url, transport, prefix
