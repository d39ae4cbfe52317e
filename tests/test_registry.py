"""The probe registry: every kind declares itself once, and the configuration,
sharding, the memory bound and the runtime go through the list (probes/registry.py)."""

from __future__ import annotations

import dataclasses

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from exporter.config import Config, parse
from exporter.metrics import LOOPS
from exporter.probes import registry
from exporter.probes.base import ProbeKind
from exporter.runtime import Exporter
from nautilus_config.errors import ConfigError

from nautilus_testkit import ROOT

SHIPPED = str(ROOT / "config" / "exporter.yml")


def test_an_unknown_kind_is_an_error_never_a_fallback() -> None:
    with pytest.raises(KeyError, match="unknown probe kind 'websockets'.*websocket"):
        registry.kind("websockets")
    ex = Exporter(SHIPPED, registry=CollectorRegistry())
    with pytest.raises(KeyError, match="unknown probe kind"):
        ex.probe("nope")
    assert ex.probe("websocket") is None  # known, not running


def test_a_kind_must_say_how_it_is_sharded() -> None:
    with pytest.raises(TypeError, match="shard"):
        ProbeKind("x", build=lambda spec, ctx: None)  # type: ignore[call-arg,arg-type,return-value]  # the point


def test_every_kind_is_declared_consistently() -> None:
    names = [k.name for k in registry.KINDS]
    assert len(names) == len(set(names))
    sections = [s for k in registry.KINDS for s in k.sections]
    assert len(sections) == len(set(sections))  # each top-level key has one owner
    loops = [loop for k in registry.KINDS for loop in k.loops]
    assert len(loops) == len(set(loops)) and not set(loops) & set(LOOPS)
    for k in registry.KINDS:
        assert bool(k.sections) == (k.parse is not None), k.name  # a section needs a parser
        assert (k.parse is None) != (k.derive is None), k.name  # read, or derived: not both
        assert k.loops, k.name  # every probe runs at least one supervised loop
    bus = [k.bus for k in registry.KINDS]
    assert bus == sorted(bus, reverse=True)  # the MessageBus kinds start first


def test_every_key_of_the_file_is_the_exporters_or_one_kinds() -> None:
    """config.py reads the settings every kind shares and nothing of a kind's part:
    the shipped file's keys are those, or a kind's sections."""
    import yaml

    shared = {"redis_url", "transport", "prefix", "prober_id", "redis_client", "max_in_flight",
              "max_memory_mib", "redis_username", "redis_password_file", "redis_tls"}
    keys = set(yaml.safe_load((ROOT / "config" / "exporter.yml").read_text()))
    owned = {s for k in registry.KINDS for s in k.sections}
    assert keys - shared <= owned and not owned & shared
    assert {k.name for k in registry.KINDS if k.sections} <= set(Config.load(SHIPPED).specs)


def test_every_loop_a_kind_declares_is_supervised_from_the_start() -> None:
    ex = Exporter(SHIPPED, registry=CollectorRegistry())
    text = generate_latest(ex.registry).decode()
    for k in registry.KINDS:
        for loop in k.loops:
            assert f'nautilus_probe_loop_restarts_total{{loop="{loop}"}} 0.0' in text, loop


def test_a_misspelt_section_is_an_unknown_key() -> None:
    with pytest.raises(ConfigError, match="websockets: unknown key"):
        parse({"engines": {"risk": {"limit_check": {}}},
               "websockets": {"endpoints": ["ws://127.0.0.1:1/ws"]}})


def test_every_configured_kind_is_sharded_by_its_own_rule() -> None:
    """Each kind's part of every shard is what its rule says, and the kinds with a
    stored spec are all in the shipped plan (a kind added without a shard rule could
    not be declared at all: test above)."""
    whole = Config.load(SHIPPED)
    for count in (2, 3):
        for index in range(1, count + 1):
            shard = whole.shard(index, count)
            for kind in registry.KINDS:
                if kind.name not in whole.specs:
                    continue
                want = kind.shard(whole.specs[kind.name], index, count)
                assert shard.specs.get(kind.name) == want, (kind.name, index, count)


def test_the_memory_bound_adds_each_kinds_rule() -> None:
    """Every configured kind's rule counts: without a kind's part, the bound drops by
    exactly that rule's series and held bytes; the bus kinds' flows make the in-flight
    part."""
    from exporter.costs import PER_SERIES

    cfg = Config.load(SHIPPED)
    for kind in registry.KINDS:
        spec = cfg.spec(kind)
        if spec is None or kind.bus:  # the bus kinds' parts depend on one another
            continue
        cost = kind.memory(spec)
        without = dataclasses.replace(cfg, specs={k: v for k, v in cfg.specs.items()
                                                  if k != kind.name})
        assert cfg.memory.total - without.memory.total == cost.series * PER_SERIES + cost.held
        assert dict(cfg.memory.kinds).get(kind.name, 0) == cost.held
    assert dict(cfg.memory.kinds)["websocket"] > 0
    flows = [f for k in registry.KINDS if (s := cfg.spec(k)) is not None
             for f in k.memory(s).flows]
    assert len(flows) == len(cfg.specs["messagebus"]) + len(cfg.specs["trading_request"].legs)
    assert cfg.memory.in_flight == (int(sum(r * t for r, t in flows)) + 1_000) * 1024


def test_each_kind_has_its_row_on_the_engine_dashboard_or_says_why_not() -> None:
    import json

    board = json.loads((ROOT / "dashboards" / "generated" / "engine.json").read_text())
    titles = [p["title"] for p in board["panels"]]
    for k in registry.KINDS:
        assert bool(k.panels) != bool(k.no_panels), k.name  # panels, or why none
        assert bool(k.panels) == bool(k.row), k.name
        if k.panels:
            at = titles.index(k.row)
            assert titles[at + 1:at + 1 + len(k.panels)] == [p.title for p in k.panels], k.name
