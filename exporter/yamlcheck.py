"""Strict YAML decoding: every error names the key path and the problem.

Shared by the exporter's and the synthetic engines' config files.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from urllib.parse import urlsplit
from typing import Any, TypeVar
from collections.abc import Callable

import yaml

from nautilus_wire.protocol import DEFAULT_PREFIX, NAME_RE, PREFIX_RE, TRANSPORTS
from nautilus_wire.redact import redact
from nautilus_wire.redis_client import RedisAccess

T = TypeVar("T")

# Plain decimal: no leading zeros (017 is not 17 in every reader), no underscores.
_DURATION_RE = re.compile(r"\A\s*((?:0|[1-9]\d*)(?:\.\d+)?)\s*(us|ms|s|m|h)?\s*\Z")
# Durations beyond an hour are mistakes (a 1000s timeout keeps every probe in memory).
MAX_DURATION_S = 3600.0
_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class ConfigError(Exception):
    """Invalid configuration; str() is the message shown to the user."""

    def __init__(self, path: str, problem: str) -> None:
        # A problem may quote a value: a Redis URL's password never leaves in it.
        self.path, self.problem = path, redact(problem)
        self.file = ""  # set by the loader that read it
        super().__init__(f"{path}: {problem}" if path else problem)

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}: {where}{self.problem}" if self.file else f"{where}{self.problem}"


class UsageError(ValueError):
    """A bad command-line value: the command says so and exits 2 (any other
    ValueError is a bug and keeps its traceback)."""


def load_file(path: str, parse: Callable[[Any], T]) -> tuple[T, str]:
    """Parse a YAML file; errors carry the file name. Returns the result and its SHA-256."""
    data, digest = load_yaml(path)
    try:
        return parse(data), digest
    except ConfigError as exc:
        exc.file = path
        raise


# Bounds that keep a hostile or mistaken file cheap to reject (well under 2 s and
# 100 MB): the configs we ship are a few KB, a few levels deep, with no anchors.
MAX_FILE_BYTES = 1 << 20
MAX_ALIASES = 64
MAX_DEPTH = 32
# Parsing cost grows with the nodes, not the bytes: a file of 10,000 engines took
# 2 s and 100 MB, one of 1 MiB 6-13 s. The largest useful config (500 series with
# every setting) has under 6,000; composing stops at this many.
MAX_NODES = 20_000

# YAML 1.1 reads 1:30 as 90 (base 60), 0o17/017 as octal, 0x10 as hex and 1_000 as
# 1000; a config should say what it means. Plain decimal integers and floats only
# (plus .nan/.inf, which the checks below reject with the key named), whether
# implicit or tagged (!!int 0x10 is refused too). Anything else stays a string, which
# the number checks refuse with the key named.
_INT_RE = re.compile(r"\A[-+]?(?:0|[1-9][0-9]*)\Z")
_FLOAT_RE = re.compile(r"\A(?:[-+]?(?:0|[1-9][0-9]*)?\.[0-9]*(?:[eE][-+]?[0-9]+)?"
                       r"|[-+]?(?:0|[1-9][0-9]*)[eE][-+]?[0-9]+"
                       r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))\Z")


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader without base-60 or octal numbers, duplicate keys, deep nesting or
    many aliases."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise ConfigError("", f"has more than {MAX_NODES:,} YAML nodes (values, keys and "
                              "collections); the largest useful config has under 6,000")
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise ConfigError("", f"more than {MAX_ALIASES} YAML aliases")
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise ConfigError("", f"nested deeper than {MAX_DEPTH} levels")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node: Any) -> Any:
        self._no_duplicates(node, "")
        return super().construct_document(node)

    def _no_duplicates(self, node: Any, path: str, seen_nodes: set[int] | None = None) -> None:
        """A key twice in one mapping is an error naming its key path (PyYAML keeps the
        last silently); walked once per node, so aliases cost nothing extra."""
        seen_nodes = set() if seen_nodes is None else seen_nodes
        if id(node) in seen_nodes:
            return
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[Any] = set()
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise ConfigError(path, f"line {key_node.start_mark.line + 1}: "
                                      "a key must be a plain value")
                key = key_node.value
                sub = f"{path}.{key}" if path else str(key)
                if key in keys:
                    raise ConfigError(sub, f"appears twice (line {key_node.start_mark.line + 1})")
                keys.add(key)
                self._no_duplicates(value_node, sub, seen_nodes)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._no_duplicates(item, f"{path}[{i}]", seen_nodes)


def _plain_number(pattern: re.Pattern[str], construct: Callable[[Any, Any], Any]) -> Callable[
        [Any, Any], Any]:
    def checked(loader: Any, node: Any) -> Any:
        if not pattern.match(str(node.value)):
            raise ConfigError("", f"line {node.start_mark.line + 1}: {node.value!r} is not a plain "
                              "decimal number (no octal, hex, base 60 or underscores)")
        return construct(loader, node)
    return checked


_StrictLoader.add_constructor("tag:yaml.org,2002:int",
                              _plain_number(_INT_RE, yaml.SafeLoader.construct_yaml_int))
_StrictLoader.add_constructor("tag:yaml.org,2002:float",
                              _plain_number(_FLOAT_RE, yaml.SafeLoader.construct_yaml_float))
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers
            if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_StrictLoader.add_implicit_resolver("tag:yaml.org,2002:int", _INT_RE, list("-+0123456789"))
_StrictLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_RE,
                                    list("-+0123456789."))


def load_yaml(path: str) -> tuple[Any, str]:
    """The file's data and its SHA-256 (reloads skip unchanged files by it)."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError("", f"cannot read {path}: {exc.strerror}") from None
    try:
        if len(raw) > MAX_FILE_BYTES:
            raise ConfigError("", f"is larger than {MAX_FILE_BYTES // 1024} KiB")
        try:
            return yaml.load(raw, Loader=_StrictLoader), hashlib.sha256(raw).hexdigest()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = " ".join(str(exc.problem or exc.context or exc).split())
            raise ConfigError(where, f"not valid YAML: {problem}") from None
        except yaml.YAMLError as exc:
            raise ConfigError("", f"not valid YAML: {' '.join(str(exc).split())}") from None
        except RecursionError:
            raise ConfigError("", "is nested too deeply") from None
    except ConfigError as exc:
        exc.file = path
        raise


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


def one_of(*choices: str) -> Callable[[str, Any], str]:
    def check(path: str, value: Any) -> str:
        if value not in choices:
            raise ConfigError(path, f"must be one of {', '.join(choices)}; got {value!r}")
        return str(value)
    return check


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
