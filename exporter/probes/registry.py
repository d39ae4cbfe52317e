"""Every probe kind the exporter knows, in start order (the MessageBus kinds first:
they share its connection). Adding a kind: its module, ending in `KIND =
ProbeKind(...)` (base.py), and its line here; the rest of the exporter and the
engine dashboard read the kind from this list (docs/architecture.md, "Where to add
things", says what else a kind brings: its section in the shipped config, its docs
rows)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from ..metrics import Metrics, build
from . import backlog, http, messagebus, self_report, tcp, trading_request, websocket
from .base import ProbeKind

KINDS: tuple[ProbeKind, ...] = (
    messagebus.KIND,
    trading_request.KIND,
    self_report.KIND,
    backlog.KIND,
    websocket.KIND,
    http.KIND,
    tcp.KIND,
)


def kind(name: str) -> ProbeKind:
    """The kind of that name; an unknown name is an error, never a fallback."""
    for k in KINDS:
        if k.name == name:
            return k
    raise KeyError(f"unknown probe kind {name!r}; known: {', '.join(k.name for k in KINDS)}")


def every_family(reg: CollectorRegistry) -> tuple[Metrics, dict[str, Any]]:
    """The shared metrics and every kind's own group (by kind name), on `reg`: all the
    exporter can expose (what the docs and the dashboards are checked against)."""
    return build(reg), {k.name: k.metrics(reg) for k in KINDS if k.metrics is not None}
