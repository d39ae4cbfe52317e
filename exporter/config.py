"""The exporter's YAML configuration: decode strictly, validate, never half-apply."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any
from collections.abc import Mapping

from nautilus_wire.redis_client import RedisAccess

from .costs import DEFAULT_MAX_MEMORY, MIB
from .memory import Bound
from .memory import bound as memory_bound
from .probes.base import ProbeKind
from .probes.messagebus import ProbeSpec
from .probes.registry import KINDS
from nautilus_config.checks import at_most, name, Node, one_of, positive_int
from nautilus_config.errors import ConfigError
from nautilus_config.messagebus import messagebus_settings, redis_access, redis_url_override
from nautilus_config.strict_yaml import load_file


# Upper bounds, so that any accepted config runs in bounded memory and CPU (the
# reasoning is in docs/configuration.md); each kind bounds its own part. One process
# sustains about 10,000 probes/s on 2 cores; beyond that, shard (--workers, --shard).
MAX_TOTAL_RATE = 100_000.0  # probes/s over the whole plan, every kind's flows
MAX_IN_FLIGHT = 1_000_000
MAX_MEMORY_MIB = 65_536


@dataclass(frozen=True)
class Config:
    redis_url: str
    transport: str
    prefix: str
    prober_id: str
    max_in_flight: int
    # Each probe kind's part of the plan, by kind name (probes/registry.py): what its
    # parse returned, absent when that was None (a kind whose section is not in the
    # file; messagebus and self_report always have one, if empty). Derived kinds
    # (backlog) are computed, not stored; a shard drops a kind its rule leaves empty.
    specs: Mapping[str, Any]
    checksum: str = ""
    redis_access: RedisAccess = RedisAccess()
    max_memory: int = DEFAULT_MAX_MEMORY  # bytes: a config whose memory bound is higher is refused
    # "auto": the streams hot path over hiredis where it applies
    # (nautilus_wire/thin_streams.py); "redis-py": redis-py for every command.
    redis_client: str = "auto"

    def spec(self, kind: ProbeKind) -> Any:
        """A kind's part of this configuration (None: not configured)."""
        return kind.derive(self) if kind.derive is not None else self.specs.get(kind.name)

    @property
    def probes(self) -> tuple[ProbeSpec, ...]:
        """The engine × op streams of the MessageBus kind (what --config.check counts)."""
        return self.specs.get("messagebus", ())  # type: ignore[no-any-return]  # its parse stores it

    @property
    def memory(self) -> Bound:
        """The most memory this configuration can make the exporter hold (memory.py)."""
        return memory_bound(((kind.name, kind.memory(spec)) for kind in KINDS
                             if (spec := self.spec(kind)) is not None), self.max_in_flight)

    @classmethod
    def load(cls, path: str, redis_url: str | None = None,
             shard: tuple[int, int] = (1, 1)) -> Config:
        cfg, digest = load_file(path, parse)
        if redis_url is not None:
            cfg = dataclasses.replace(cfg, redis_url=redis_url_override(redis_url, cfg.transport))
        mine = cfg.shard(*shard)
        try:  # the limits are one process's: what --shard i/N leaves this one must meet them
            mine.check_limits(shard)
        except ConfigError as exc:
            exc.file = path
            raise
        return dataclasses.replace(mine, checksum=digest)

    def check_limits(self, shard: tuple[int, int] = (1, 1)) -> None:
        """Raise ConfigError when this plan (one shard's part, after sharding) is more
        than one exporter process may run: series, total rate, each kind's own limits,
        and the memory bound."""
        part = f"shard {shard[0]}/{shard[1]} " if shard[1] > 1 else ""
        for kind in KINDS:
            if kind.limit is not None and (spec := self.spec(kind)) is not None:
                kind.limit(spec, part)
        total = sum(rate for kind in KINDS if (spec := self.spec(kind)) is not None
                    for rate, _ in kind.memory(spec).flows)
        if total > MAX_TOTAL_RATE:
            raise ConfigError("engines", f"{part}adds up to {total:,.0f} probes/s; at most "
                              f"{MAX_TOTAL_RATE:,.0f} per exporter (shard the rest: --shard)")
        need = self.memory
        if need.total > self.max_memory:
            raise ConfigError("max_memory_mib", f"{part or 'this configuration '}may hold up to "
                              # rounded up: the figure said is a max_memory_mib that accepts it
                              f"{math.ceil(need.total / MIB):,} MiB ({need.describe()} MiB), more than "
                              f"{self.max_memory // MIB:,} MiB: lower max_in_flight, rates, "
                              "timeouts or connections, shard it (--shard), or raise "
                              "max_memory_mib")

    def shard(self, index: int, count: int) -> Config:
        """Shard `index` of `count` (1-based) of this probe plan, for running several
        exporters: each kind splits its part by its own shard rule (an engine × op is
        probed by exactly one shard, the trading request's rate and the WebSocket pool
        are split evenly), and every shard has its own prober id. Prometheus sums the
        shards' series."""
        if count == 1:
            return self
        specs = {kind.name: kind.shard(self.specs[kind.name], index, count)
                 for kind in KINDS if kind.name in self.specs}
        return dataclasses.replace(self, prober_id=f"{self.prober_id}_s{index}",
                                   specs={k: v for k, v in specs.items() if v is not None})

    def connection(self) -> tuple[object, ...]:
        """What a reload cannot change without reconnecting."""
        return (self.redis_url, self.redis_access, self.transport, self.prefix, self.prober_id,
                self.redis_client)


def parse(data: Any) -> Config:
    """The whole file: the settings every kind shares, then each kind's part, read by
    the kind (registry order: a kind may default from those before it)."""
    root = Node(data)
    redis_url, transport, prefix = messagebus_settings(root)
    access = redis_access(root, redis_url)
    prober_id = root.get("prober_id", "exporter", name)
    redis_client = root.get("redis_client", "auto", one_of("auto", "redis-py"))
    max_in_flight = root.get("max_in_flight", 100_000, at_most(MAX_IN_FLIGHT, positive_int))
    max_memory = root.get("max_memory_mib", DEFAULT_MAX_MEMORY // MIB,
                          at_most(MAX_MEMORY_MIB, positive_int)) * MIB
    specs: dict[str, Any] = {}
    for kind in KINDS:
        if kind.parse is not None and (spec := kind.parse(root, specs)) is not None:
            specs[kind.name] = spec
    root.done()
    # The limits on one process's plan are checked after sharding (Config.load).
    cfg = Config(redis_url, transport, prefix, prober_id, max_in_flight, specs,
                 redis_access=access, max_memory=max_memory, redis_client=redis_client)
    if not any(kind.memory(spec).series for kind in KINDS if (spec := cfg.spec(kind)) is not None):
        raise ConfigError("engines", "must name at least one engine and operation to probe")
    return cfg


def parse_shard(text: str) -> tuple[int, int]:
    """"2/3" -> (2, 3): the second of three shards."""
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise ConfigError("--shard", f"must look like 1/3, got {text!r}") from None
    if not 1 <= index <= count:
        raise ConfigError("--shard", f"must be i/N with 1 <= i <= N, got {text!r}")
    return index, count
