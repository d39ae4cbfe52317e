"""A hardened YAML loader: plain decimal numbers only, no duplicate keys, bounded
size, depth, aliases and nodes; every error names the file and the line or key."""

from __future__ import annotations

import hashlib
import re
from typing import Any, TypeVar
from collections.abc import Callable

import yaml

from .errors import ConfigError

T = TypeVar("T")


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
                line = key_node.start_mark.line + 1
                if key_node.tag == "tag:yaml.org,2002:merge":
                    # `<<: *defaults` brings in keys: one the mapping gives again is
                    # a key given twice, as the reader's rule says.
                    for key in _merged_keys(value_node):
                        sub = f"{path}.{key}" if path else str(key)
                        if key in keys:
                            raise ConfigError(sub, f"appears twice (merged by << at line {line})")
                        keys.add(key)
                    self._no_duplicates(value_node, path, seen_nodes)
                    continue
                key = key_node.value
                sub = f"{path}.{key}" if path else str(key)
                if key in keys:
                    raise ConfigError(sub, f"appears twice (line {line})")
                keys.add(key)
                self._no_duplicates(value_node, sub, seen_nodes)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._no_duplicates(item, f"{path}[{i}]", seen_nodes)


def _merged_keys(node: Any) -> list[Any]:
    """The keys a merge key's value brings in: one mapping's, or a list of them (its
    own merges included). Malformed merges are left to PyYAML, which refuses them."""
    mappings = node.value if isinstance(node, yaml.SequenceNode) else [node]
    out: list[Any] = []
    for mapping in mappings:
        if not isinstance(mapping, yaml.MappingNode):
            continue
        for key_node, value_node in mapping.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                out += _merged_keys(value_node)
            elif isinstance(key_node, yaml.ScalarNode):
                out.append(key_node.value)
    return out


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
