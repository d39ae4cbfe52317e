"""Process plumbing shared by every long-running command: signals, event loop, fds."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

# SIGTERM or SIGINT ends a long-running command within this many seconds, in every
# state (Redis down or frozen, mid-reload, overloaded). The exporter enforces it with
# a hard deadline (cli.HARD_EXIT_S); each stage's own budget is set below it.
EXIT_WITHIN_S = 2.0


async def until_signalled(body: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run body(stop); SIGINT and SIGTERM set `stop`."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await body(stop)


def use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def raise_fd_limit() -> None:
    """Holding 10,000 WebSocket connections needs more descriptors than the usual
    soft limit of 1,024: take what the hard limit allows."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
