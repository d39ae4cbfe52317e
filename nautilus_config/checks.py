"""Decoding a parsed file: `Node` remembers the key path and rejects unknown keys;
each check names the key path and the problem."""

from __future__ import annotations

import math
import re
from urllib.parse import urlsplit
from typing import Any, TypeVar
from collections.abc import Callable

from nautilus_wire.protocol import NAME_RE, PREFIX_RE

from .errors import ConfigError

T = TypeVar("T")
# Plain decimal: no leading zeros (017 is not 17 in every reader), no underscores.
_DURATION_RE = re.compile(r"\A((?:0|[1-9]\d*)(?:\.\d+)?)(us|ms|s|m|h)?\Z")  # no spaces: "1 h" is refused
# Durations beyond an hour are mistakes (a 1000s timeout keeps every probe in memory).
MAX_DURATION_S = 3600.0
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class Node:
    """A mapping being decoded; remembers its key path and which keys were used."""

    def __init__(self, data: Any, path: str = "") -> None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError(path, f"must be a mapping, got {_kind(data)}")
        self.data, self.path = data, path
        self._used: set[str] = set()

    def sub(self, key: str) -> str:
        key = str(key)
        if not key.isprintable():  # a newline in a key is shown, not printed
            key = repr(key)[1:-1]
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str, default: T, check: Callable[[str, Any], T] | None = None) -> T:
        self._used.add(key)
        if key not in self.data or self.data[key] is None:
            return default
        return check(self.sub(key), self.data[key]) if check else self.data[key]

    def node(self, key: str) -> Node:
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


def _number(path: str, value: Any, what: str) -> float:
    """An int or float that is finite: .nan and .inf never reach a schedule."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(path, f"must be {what}, got {value!r}")
    return float(value)


def _seconds(path: str, value: Any) -> float:
    if isinstance(value, str) and (m := _DURATION_RE.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        seconds = _number(path, value, "a duration such as 250ms or 2s")
    if seconds < 0:
        raise ConfigError(path, f"must not be negative, got {value!r}")
    if seconds > MAX_DURATION_S:
        raise ConfigError(path, f"must be at most {MAX_DURATION_S / 3600:.0f}h, got {value!r}")
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
    number = _number(path, value, "a positive number")
    if number <= 0:
        raise ConfigError(path, f"must be a positive number, got {value!r}")
    return number


def at_most(limit: float, check: Callable[[str, Any], T]) -> Callable[[str, Any], T]:
    """`check`, then an upper bound (documented in docs/configuration.md)."""
    def bounded(path: str, value: Any) -> T:
        out = check(path, value)
        if out > limit:  # type: ignore[operator]  # a number when a limit is given
            raise ConfigError(path, f"must be at most {limit:,g}, got {value!r}")
        return out
    return bounded


def non_negative_int(path: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(path, f"must be a whole number >= 0, got {value!r}")
    return int(value)


def positive_int(path: str, value: Any) -> int:
    if (n := non_negative_int(path, value)) == 0:
        raise ConfigError(path, "must be at least 1")
    return n


def ratio(path: str, value: Any) -> float:
    number = _number(path, value, "a ratio between 0 and 1")
    if not 0 <= number <= 1:
        raise ConfigError(path, f"must be a ratio between 0 and 1, got {value!r}")
    return number


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


def prefix_check(path: str, value: Any) -> str:
    """A Redis key prefix: letters, digits and _ . : - only, at most 64."""
    if not isinstance(value, str) or not PREFIX_RE.match(value):
        raise ConfigError(path, "must be 1-64 letters, digits and _ . : - (no spaces, braces "
                          f"or control characters), got {value!r}")
    return value


def split_url(path: str, url: str) -> Any:
    """urlsplit, its ValueError (a bad IPv6 literal) as a ConfigError naming the key."""
    if any(not c.isprintable() or c.isspace() for c in url):
        raise ConfigError(path, f"must not contain spaces or control characters, got {url!r}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port outside 0-65535
    except ValueError as exc:
        raise ConfigError(path, f"is not a valid URL ({exc}); expected scheme://host:port/path"
                          ) from None
    if not parts.hostname or parts.port == 0:
        raise ConfigError(path, "needs a host and, optionally, a port of 1-65535, got "
                          f"{url!r}")
    return parts


def one_of(*choices: str) -> Callable[[str, Any], str]:
    def check(path: str, value: Any) -> str:
        if value not in choices:
            raise ConfigError(path, f"must be one of {', '.join(choices)}; got {value!r}")
        return str(value)
    return check
