"""A synchronous "ml" service (no asyncio of its own) that answers nautilus-probe's
probes: the responder runs on a thread with its own event loop; handlers are plain
functions and may block.

    pip install ./wire
    NAUTILUS_REDIS_URL=redis://127.0.0.1:6379/0 python examples/sync_engine.py
"""

from __future__ import annotations

import os
import signal
import threading
import time

from nautilus_wire import Request, ResponderThread


def process(req: Request) -> None:
    time.sleep(0.002)  # score the probe's input with the model; write nothing


def main() -> None:
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    url = os.environ.get("NAUTILUS_REDIS_URL", "redis://127.0.0.1:6379/0")
    with ResponderThread(url, "ml", {"process": process}):
        while not stopping.wait(0.5):
            pass  # the service's own work
    # Leaving the block finished what was in hand and left the consumer group.


if __name__ == "__main__":
    main()
