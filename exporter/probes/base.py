"""The one contract every probe kind implements, and how a kind declares itself.

    probe = kind.build(spec, context)   # its part of the configuration, and what it may use
    await probe.start()            # connect, subscribe; failures are counted, not raised
    task = create_task(probe.run(stop))   # every loop of the probe, until `stop`
    probe.apply(new_spec)          # a reload: True if applied in place, False to be replaced
    await probe.close()            # after run() returned

A probe module ends with one `KIND = ProbeKind(...)`: its name, the sections of
the file it reads and how, how a plan is sharded, how a probe is built, its metric
group, its memory rule, its limits, its supervised loops and its row of the engine
dashboard (or why it has none). registry.py lists the kinds; the configuration, the
runtime, sharding, the limits, the memory bound, the supervisor's loops and the
engine dashboard iterate over that list; tests/test_registry.py holds each kind to
its declaration.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from collections.abc import Callable, Mapping

from ..costs import NOTHING, Cost
from ..schedule import MAX_TIMEOUT_S as MAX_TIMEOUT_S  # what every kind's parse bounds

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from ..metrics import Metrics
    from ..supervise import Supervisor
    from nautilus_config.checks import Node
    from .bus import MessageBus



class Probe(Protocol):
    kind: str  # the ProbeKind's name

    async def start(self) -> None: ...

    def apply(self, spec: Any) -> bool: ...

    async def run(self, stop: asyncio.Event) -> None: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class Context:
    """What a probe may use: the shared metrics and supervisor, its own metric group
    (ProbeKind.metrics), and the MessageBus connection when the kind uses it."""

    metrics: Metrics
    supervisor: Supervisor
    group: Any = None
    bus: MessageBus | None = None


def whole(spec: Any, index: int, count: int) -> Any:
    """The shard rule of a spec every shard runs in full (or one derived from a shard's plan)."""
    return spec


def no_memory(spec: Any) -> Cost:
    return NOTHING


class Plan(Protocol):
    """What a derived kind reads of the whole (or one shard's) configuration:
    config.Config is one. The kinds never import config.py."""

    @property
    def transport(self) -> str: ...

    @property
    def prefix(self) -> str: ...

    @property
    def specs(self) -> Mapping[str, Any]: ...  # each configured kind's spec, by name


@dataclass(frozen=True)
class Panel:
    """A panel a kind asks for on the engine dashboard, as data (dashboards/build.py
    draws it: exporter/ imports no dashboard library). In a query `{P}` is the metric
    namespace, `{sel}` the dashboard's selector of the chosen engine, `{rate}` its
    rate interval."""

    title: str
    queries: tuple[tuple[str, str], ...]  # (PromQL, legend)
    unit: str = "none"
    description: str = ""
    up: bool = False  # a stat reading 1 as UP and 0 as DOWN instead of a time series


@dataclass(frozen=True)
class ProbeKind:
    """A probe kind's declaration. `shard` is required: a kind that forgot it would
    make every shard of a sharded plan probe everything."""

    name: str  # the `kind` of its probes, the key of its spec in Config.specs
    build: Callable[[Any, Context], Probe]
    shard: Callable[[Any, int, int], Any]  # shard i of N (1-based) of a spec: None for none
    sections: tuple[str, ...] = ()  # the top-level YAML keys it reads (each has one owner)
    # The file's root and the specs of the kinds before it -> its spec, or None when
    # it has nothing to do (raises ConfigError naming the key).
    parse: Callable[[Node, Mapping[str, Any]], Any] | None = None
    derive: Callable[[Plan], Any] | None = None  # spec from the rest of the plan, for derived kinds
    bus: bool = False  # shares the MessageBus connection (restarted when it changes)
    metrics: Callable[[CollectorRegistry], Any] | None = None  # its own metric group, made once
    memory: Callable[[Any], Cost] = no_memory  # what a spec may hold (memory.py adds them up)
    # One process's limits on a spec, checked after sharding: raises ConfigError, its
    # message starting with the second argument ("shard 2/3 " or "").
    limit: Callable[[Any, str], None] | None = None
    loops: tuple[str, ...] = ()  # the supervised loops its probe runs (loop_restarts_total)
    # Its row of the engine dashboard: a title and panels, or why it has none there.
    row: str = ""
    panels: tuple[Panel, ...] = ()
    no_panels: str = ""


def one_section(key: str, parse: Callable[[Node], Any]) -> Callable[[Node, Mapping[str, Any]], Any]:
    """ProbeKind.parse of a kind configured by one top-level section: `parse(node)` of
    it when the file has it, None otherwise."""
    def parse_root(root: Node, parsed: Mapping[str, Any]) -> Any:
        return parse(root.node(key)) if key in root.data else None
    return parse_root


def client_tls(ca_file: str | None = None, cert_file: str | None = None,
               key_file: str | None = None) -> ssl.SSLContext:
    """A client TLS context: the system's CAs or `ca_file`, and a client certificate
    when the server asks for one. Raises OSError/ssl.SSLError on unreadable files."""
    context = ssl.create_default_context(cafile=ca_file)
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    return context
