"""nautilus-wire: what an engine embeds to answer nautilus-probe's MessageBus probes.

The public API (docs/engines.md)::

    from nautilus_wire import Responder, ResponderThread, Request, Verdict, SelfReport
    from nautilus_wire import connect, RedisAccess, is_probe, current_probe, carry_probe

Modules: `protocol` (wire protocol v1, I/O-free), `ws_protocol` (the engine-status
WebSocket protocol), `responder`, `thread`, `handlers`, `self_report`, `requester`
(the prober's side, with `replies` and `thin_streams`), `redis_client`. It imports
nothing but `redis` and never changes the process's event-loop policy, logging
configuration or signal handlers.
"""

from .handlers import Verdict, carry_probe, current_probe, is_probe
from .protocol import Request
from .redis_client import RedisAccess, connect
from .responder import Responder, ResponderStats
from .self_report import SelfReport
from .thread import ResponderThread

__all__ = ["Responder", "ResponderThread", "ResponderStats", "Request", "Verdict",
           "SelfReport", "connect", "RedisAccess", "is_probe", "current_probe", "carry_probe"]
__version__ = "0.3.0"
