"""A plain asyncio "factor" engine that answers nautilus-probe's probes.

    pip install ./wire
    NAUTILUS_REDIS_URL=redis://127.0.0.1:6379/0 python examples/asyncio_engine.py
"""

from __future__ import annotations

import asyncio
import os
import signal

from nautilus_wire import Request, Responder, connect


async def factor_calculation(req: Request) -> None:
    await asyncio.sleep(0.003)  # compute the factor for the probe's input; store nothing


async def cross_correlation(req: Request) -> None:
    await asyncio.sleep(0.005)


async def main() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)  # the engine's own choice, not the library's
    client = connect(os.environ.get("NAUTILUS_REDIS_URL", "redis://127.0.0.1:6379/0"))
    handlers = {"factor_calculation": factor_calculation, "cross_correlation": cross_correlation}
    async with Responder(client, "factor", handlers):
        await stop.wait()  # ... or the engine's own work
    await client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
