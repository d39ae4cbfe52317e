"""The Redis MessageBus settings every program reads the same way: `redis_url`,
`transport`, `prefix` and the ACL user, password file and TLS files."""

from __future__ import annotations

import os
from urllib.parse import urlsplit
from typing import Any

from nautilus_wire.protocol import DEFAULT_PREFIX, TRANSPORTS
from nautilus_wire.redis_client import RedisAccess

from .checks import Node, boolean, one_of, prefix_check, split_url, string
from .errors import ConfigError


def redis_url_check(path: str, value: Any) -> str:
    url = string(path, value)
    if not url.startswith(("redis://", "rediss://", "unix://", "redis+cluster://")):
        raise ConfigError(path, "must be a redis://, rediss://, unix:// or redis+cluster:// URL, "
                          f"got {value!r}")
    if url.startswith("unix://"):
        if not urlsplit(url).path:
            raise ConfigError(path, "a unix:// URL needs a socket path")
        return url
    split_url(path, url)
    return url


def redis_access(root: Node, redis_url: str) -> RedisAccess:
    """`redis_username`, `redis_password_file` and `redis_tls` beside the URL."""
    username = root.get("redis_username", None, string)
    password = None
    if (path := root.get("redis_password_file", None, string)) is not None:
        try:
            with open(path) as fh:
                password = fh.read().strip()
        except OSError as exc:
            raise ConfigError("redis_password_file", f"cannot read it: {exc.strerror}") from None
    tls = root.node("redis_tls")
    access = RedisAccess(username, password,
                         ca_file=tls.get("ca_file", None, string),
                         cert_file=tls.get("cert_file", None, string),
                         key_file=tls.get("key_file", None, string),
                         insecure_skip_verify=tls.get("insecure_skip_verify", False, boolean))
    tls.done()
    if tls.data and not redis_url.startswith("rediss://"):
        raise ConfigError("redis_tls", "needs a rediss:// redis_url")
    if (access.cert_file is None) != (access.key_file is None):
        raise ConfigError("redis_tls", "cert_file and key_file go together")
    for key in ("ca_file", "cert_file", "key_file"):
        if (file := getattr(access, key)) is not None and not os.path.isfile(file):
            raise ConfigError(f"redis_tls.{key}", f"no such file: {file}")
    return access


def messagebus_settings(root: Node) -> tuple[str, str, str]:
    """(redis_url, transport, prefix): how the exporter and the engines reach the bus."""
    redis_url = root.get("redis_url", "redis://127.0.0.1:6379/0", redis_url_check)
    transport = root.get("transport", "streams", one_of(*TRANSPORTS))
    if transport == "pubsub" and redis_url.startswith("redis+cluster://"):
        raise ConfigError("transport", "pubsub is not supported on Redis Cluster; use streams")
    prefix = root.get("prefix", DEFAULT_PREFIX, prefix_check)
    return redis_url, transport, prefix
