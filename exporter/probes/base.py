"""The one contract every probe kind implements; the runtime knows nothing else.

    probe = SomeProbe(..., spec)
    await probe.start()            # connect, subscribe; failures are counted, not raised
    task = create_task(probe.run(stop))   # every loop of the probe, until `stop`
    probe.apply(new_spec)          # a reload: True if applied in place, False to be replaced
    await probe.close()            # after run() returned
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol


class Probe(Protocol):
    kind: str  # "messagebus", "trading_request", "self_report", "backlog", "websocket"

    async def start(self) -> None: ...

    def apply(self, spec: Any) -> bool: ...

    async def run(self, stop: asyncio.Event) -> None: ...

    async def close(self) -> None: ...
