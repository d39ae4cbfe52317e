"""A responder on a thread of its own, for a synchronous service (Flask, Django,
a plain loop): its own event loop and Redis client, a clean stop from any thread."""

from __future__ import annotations

import asyncio
import threading
from typing import Any
from collections.abc import Mapping

from .handlers import Handler
from .redis_client import RedisAccess, connect
from .responder import Responder, ResponderStats

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 15.0


class ResponderThread:
    """`Responder(connect(url, access), engine, handlers, **options)` served on a
    daemon thread. Plain-function handlers run in that loop's worker threads, so they
    may block. Use as a context manager, or call `start()` and `stop()`."""

    def __init__(self, url: str, engine: str, handlers: Mapping[str, Handler] | Handler, *,
                 access: RedisAccess | None = None, **options: Any) -> None:
        self._url, self._access = url, access
        self._args = (engine, handlers)
        self._options = options
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self.responder: Responder | None = None

    @property
    def stats(self) -> ResponderStats:
        if self.responder is None:
            raise RuntimeError("not started")
        return self.responder.stats

    def __enter__(self) -> ResponderThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Start serving; raises what made the responder fail to start (a bad option)."""
        if self._thread is not None:
            raise RuntimeError("already started")
        self._thread = threading.Thread(target=self._main, daemon=True,
                                        name=f"nautilus_wire responder {self._args[0]}")
        self._thread.start()
        if not self._started.wait(timeout):
            raise TimeoutError(f"the responder thread did not start within {timeout} s")
        if self._error is not None:
            raise self._error

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Finish what is in hand, leave the consumer group, end the thread."""
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None:
            return
        if loop is not None and stop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:  # the loop just closed: the thread is ending
                pass
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError(f"the responder thread did not stop within {timeout} s")
        self._thread = None

    def _main(self) -> None:
        asyncio.run(self._serve())  # a new loop for this thread; no policy is changed

    async def _serve(self) -> None:
        try:
            client = connect(self._url, self._access)
            self.responder = Responder(client, *self._args, **self._options)
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        except BaseException as exc:
            self._error = exc
            self._started.set()
            return
        self._started.set()
        try:
            await self.responder.run(self._stop)
        finally:
            await client.aclose()
