"""Process plumbing shared by every long-running command: signals, event loop, fds."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

# SIGTERM or SIGINT ends a long-running command within this many seconds, in every
# state (Redis down or frozen, mid-reload, overloaded). The exporter enforces it with
# a hard deadline (cli.HARD_EXIT_S); each stage's own budget is set below it.
EXIT_WITHIN_S = 2.0


async def until_signalled(body: Callable[[asyncio.Event], Awaitable[None]],
                          on_signal: Callable[[], None] | None = None) -> None:
    """Run body(stop); SIGINT and SIGTERM set `stop`. `on_signal` runs when the signal
    arrives (a Python signal handler runs between two bytecodes, even inside a busy
    callback), not when a busy event loop gets round to `stop`: a deadline started
    there counts from the signal."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if on_signal is None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    else:
        def arrived(signum: int, frame: object) -> None:
            on_signal()
            loop.call_soon_threadsafe(stop.set)

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, arrived)
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
