"""The synthetic engines' YAML configuration."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from nautilus_wire import protocol
from nautilus_config.checks import duration, name, Node, positive_int
from nautilus_config.errors import ConfigError
from nautilus_config.messagebus import messagebus_settings, redis_access, redis_url_override
from nautilus_config.strict_yaml import load_file
from nautilus_wire.redis_client import RedisAccess

from .knobs import Knobs, parse_knobs


@dataclass(frozen=True)
class EngineSpec:
    name: str
    ops: dict[str, Knobs]


@dataclass(frozen=True)
class SyntheticConfig:
    redis_url: str
    transport: str
    prefix: str
    report_interval: float
    concurrency: int
    engines: tuple[EngineSpec, ...]
    redis_access: RedisAccess = RedisAccess()

    @classmethod
    def load(cls, path: str, redis_url: str | None = None) -> SyntheticConfig:
        """The file's settings; `redis_url` (--redis.url) in place of its own."""
        cfg = load_file(path, parse)[0]
        if redis_url is not None:
            cfg = dataclasses.replace(cfg, redis_url=redis_url_override(redis_url, cfg.transport))
        return cfg

    def engine(self, name: str) -> EngineSpec:
        for spec in self.engines:
            if spec.name == name:
                return spec
        raise ConfigError("engines", f"has no engine {name!r}")


def parse(data: Any) -> SyntheticConfig:
    root = Node(data)
    redis_url, transport, prefix = messagebus_settings(root)
    access = redis_access(root, redis_url)
    interval = root.get("report_interval", 2.0, duration)
    concurrency = root.get("concurrency", 256, positive_int)
    defaults = parse_knobs(root.node("defaults"), Knobs())
    engines: list[EngineSpec] = []
    if "engines" not in root.data:
        root.get("engines", None)
        engines = [EngineSpec(e, {op: defaults for op in ops})
                   for e, ops in protocol.ENGINE_OPERATIONS.items()]
    else:
        enode = root.node("engines")
        for engine, ops in enode.items():
            name(enode.sub(engine), engine)
            onode = Node(ops, enode.sub(engine))
            op_items = onode.items() or [(op, None) for op in
                                         protocol.ENGINE_OPERATIONS.get(engine, ("process",))]
            knobs = {}
            for op, settings in op_items:
                name(onode.sub(op), op)
                knobs[op] = parse_knobs(Node(settings, onode.sub(op)), defaults)
            engines.append(EngineSpec(engine, knobs))
    root.done()
    return SyntheticConfig(redis_url, transport, prefix, interval, concurrency, tuple(engines),
                           access)
