"""An aiohttp "analytics" engine that answers nautilus-probe's probes.

The responder lives in a cleanup context: started with the app, stopped (cleanly,
leaving the consumer group) when aiohttp shuts down on SIGINT or SIGTERM.

    pip install ./wire aiohttp
    NAUTILUS_REDIS_URL=redis://127.0.0.1:6379/0 python examples/aiohttp_engine.py --port 8001
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import AsyncIterator

from aiohttp import web

from nautilus_wire import Request, Responder, connect


async def calculation(req: Request) -> None:
    await asyncio.sleep(0.002)  # the real calculation, on probe input: no side effects


async def pnl_update(req: Request) -> None:
    await asyncio.sleep(0.001)  # computes the update, does not store it


def report(req: Request) -> None:
    """A plain function: it runs on a worker thread, so blocking code is fine here."""
    sum(range(10_000))


async def responder(app: web.Application) -> AsyncIterator[None]:
    client = connect(os.environ.get("NAUTILUS_REDIS_URL", "redis://127.0.0.1:6379/0"))
    async with Responder(client, "analytics", {"calculation": calculation,
                                               "pnl_update": pnl_update, "report": report}):
        yield
    await client.aclose()


async def health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    app = web.Application()
    app.cleanup_ctx.append(responder)
    app.router.add_get("/health", health)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
