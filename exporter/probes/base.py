"""The one contract every probe kind implements, and how a kind declares itself.

    probe = kind.build(spec, context)   # its part of the configuration, and what it may use
    await probe.start()            # connect, subscribe; failures are counted, not raised
    task = create_task(probe.run(stop))   # every loop of the probe, until `stop`
    probe.apply(new_spec)          # a reload: True if applied in place, False to be replaced
    await probe.close()            # after run() returned

A probe module ends with one `KIND = ProbeKind(...)`: its name, how it reads its
YAML section, how a plan is sharded, how a probe is built, its metric group, its
memory rule and its limits. registry.py lists the kinds; the runtime, sharding,
the limits and the memory bound iterate over that list. Still named by hand
elsewhere: the MessageBus plan (engines, defaults, trading_request,
self_reports), which config.py parses itself; a kind's loops (metrics.LOOPS); its
rows in docs/metrics.md and its dashboard panels.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from collections.abc import Callable, Mapping

from ..costs import NOTHING, Cost

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from ..metrics import Metrics
    from ..supervise import Supervisor
    from nautilus_config.checks import Node
    from .bus import MessageBus

# The longest timeout any probe may be given (seconds): bounds memory and shutdown.
MAX_TIMEOUT_S = 60.0


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
class ProbeKind:
    """A probe kind's declaration. `shard` is required: a kind that forgot it would
    make every shard of a sharded plan probe everything."""

    name: str  # the `kind` of its probes, the key of its spec in Config.specs
    build: Callable[[Any, Context], Probe]
    shard: Callable[[Any, int, int], Any]  # shard i of N (1-based) of a spec: None for none
    section: str | None = None  # the top-level YAML key it reads (None: the MessageBus plan)
    parse: Callable[[Node], Any] | None = None  # that section's node -> spec (ConfigError)
    derive: Callable[[Plan], Any] | None = None  # spec from the rest of the plan, for derived kinds
    bus: bool = False  # shares the MessageBus connection (restarted when it changes)
    metrics: Callable[[CollectorRegistry], Any] | None = None  # its own metric group, made once
    memory: Callable[[Any], Cost] = no_memory  # what a spec may hold (memory.py adds them up)
    # One process's limits on a spec, checked after sharding: raises ConfigError, its
    # message starting with the second argument ("shard 2/3 " or "").
    limit: Callable[[Any, str], None] | None = None


def client_tls(ca_file: str | None = None, cert_file: str | None = None,
               key_file: str | None = None) -> ssl.SSLContext:
    """A client TLS context: the system's CAs or `ca_file`, and a client certificate
    when the server asks for one. Raises OSError/ssl.SSLError on unreadable files."""
    context = ssl.create_default_context(cafile=ca_file)
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    return context
