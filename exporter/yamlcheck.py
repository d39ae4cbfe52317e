"""Strict YAML decoding: every error names the key path and the problem.

Shared by the exporter's and the synthetic engines' config files.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Callable, TypeVar

import yaml

from nautilus_wire.protocol import DEFAULT_PREFIX, NAME_RE, TRANSPORTS

T = TypeVar("T")

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|ms|s|m|h)?\s*$")
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class ConfigError(Exception):
    """Invalid configuration; str() is the message shown to the user."""

    def __init__(self, path: str, problem: str) -> None:
        self.path, self.problem = path, problem
        self.file = ""  # set by the loader that read it
        super().__init__(f"{path}: {problem}" if path else problem)

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}: {where}{self.problem}" if self.file else f"{where}{self.problem}"


def load_file(path: str, parse: Callable[[Any], T]) -> tuple[T, str]:
    """Parse a YAML file; errors carry the file name. Returns the result and its SHA-256."""
    data, digest = load_yaml(path)
    try:
        return parse(data), digest
    except ConfigError as exc:
        exc.file = path
        raise


def load_yaml(path: str) -> tuple[Any, str]:
    """The file's data and its SHA-256 (reloads skip unchanged files by it)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        return yaml.safe_load(raw), hashlib.sha256(raw).hexdigest()
    except OSError as exc:
        raise ConfigError("", f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError("", f"{path} is not valid YAML: {exc}".replace("\n", " ")) from None


class Node:
    """A mapping being decoded; remembers its key path and which keys were used."""

    def __init__(self, data: Any, path: str = "") -> None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(path, f"must be a mapping, got {_kind(data)}")
        self.data, self.path, self._used = data, path, set()

    def sub(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str, default: T, check: Callable[[str, Any], T] | None = None) -> T:
        self._used.add(key)
        if key not in self.data or self.data[key] is None:
            return default
        return check(self.sub(key), self.data[key]) if check else self.data[key]

    def node(self, key: str) -> "Node":
        self._used.add(key)
        return Node(self.data.get(key), self.sub(key))

    def items(self) -> list[tuple[str, Any]]:
        self._used.update(self.data)
        return [(str(k), v) for k, v in self.data.items()]

    def done(self) -> None:
        """Reject keys nobody asked for: a typo must not be silently ignored."""
        unknown = [str(k) for k in self.data if k not in self._used]
        if unknown:
            raise ConfigError(self.sub(unknown[0]), "unknown key")


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _seconds(path: str, value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION_RE.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ConfigError(path, f"must be a duration such as 250ms or 2s, got {value!r}")
    if seconds < 0:
        raise ConfigError(path, f"must not be negative, got {value!r}")
    return seconds


def duration(path: str, value: Any) -> float:
    """Seconds from 2, 0.5, "250ms", "2s", "1m"; must be positive."""
    seconds = _seconds(path, value)
    if seconds == 0:
        raise ConfigError(path, f"must be positive, got {value!r}")
    return seconds


def duration_or_zero(path: str, value: Any) -> float:
    """Like duration, but 0 (or "0ms") is allowed."""
    return _seconds(path, value)


def positive(path: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(path, f"must be a positive number, got {value!r}")
    return float(value)


def non_negative_int(path: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(path, f"must be a whole number >= 0, got {value!r}")
    return value


def positive_int(path: str, value: Any) -> int:
    if non_negative_int(path, value) == 0:
        raise ConfigError(path, "must be at least 1")
    return value


def ratio(path: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ConfigError(path, f"must be a ratio between 0 and 1, got {value!r}")
    return float(value)


def boolean(path: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(path, f"must be true or false, got {value!r}")
    return value


def string(path: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(path, f"must be a non-empty string, got {value!r}")
    return value


def name(path: str, value: Any) -> str:
    """Engine, operation and prober names: they become Redis keys and label values."""
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise ConfigError(path, f"must be a lower-case name like risk or limit_check, got {value!r}")
    return value


def redis_url_check(path: str, value: Any) -> str:
    url = string(path, value)
    if not url.startswith(("redis://", "rediss://", "unix://", "redis+cluster://")):
        raise ConfigError(path, "must be a redis://, rediss://, unix:// or redis+cluster:// URL, "
                          f"got {value!r}")
    return url


def one_of(*choices: str) -> Callable[[str, Any], str]:
    def check(path: str, value: Any) -> str:
        if value not in choices:
            raise ConfigError(path, f"must be one of {', '.join(choices)}; got {value!r}")
        return value
    return check


def messagebus_settings(root: Node) -> tuple[str, str, str]:
    """(redis_url, transport, prefix): how the exporter and the engines reach the bus."""
    redis_url = root.get("redis_url", "redis://127.0.0.1:6379/0", redis_url_check)
    transport = root.get("transport", "streams", one_of(*TRANSPORTS))
    if transport == "pubsub" and redis_url.startswith("redis+cluster://"):
        raise ConfigError("transport", "pubsub is not supported on Redis Cluster; use streams")
    prefix = root.get("prefix", DEFAULT_PREFIX, string)
    return redis_url, transport, prefix
