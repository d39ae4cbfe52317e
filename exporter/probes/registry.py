"""Every probe kind the exporter knows, in start order (the MessageBus kinds first:
they share its connection). Adding a kind: its module, ending in `KIND =
ProbeKind(...)` (base.py), and one line here."""

from __future__ import annotations

from . import backlog, messagebus, self_report, trading_request, websocket
from .base import ProbeKind

KINDS: tuple[ProbeKind, ...] = (
    messagebus.KIND,
    trading_request.KIND,
    self_report.KIND,
    backlog.KIND,
    websocket.KIND,
)


def kind(name: str) -> ProbeKind:
    """The kind of that name; an unknown name is an error, never a fallback."""
    for k in KINDS:
        if k.name == name:
            return k
    raise KeyError(f"unknown probe kind {name!r}; known: {', '.join(k.name for k in KINDS)}")
