"""Probe handlers: one per operation, called with the probe context set; their
failures become bounded, redacted error replies and rate-limited log lines."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import time
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar, cast
from collections.abc import Awaitable, Callable, Mapping

from .failure_log import ErrorLog
from .protocol import Request
from .redact import redact

log = logging.getLogger("nautilus_wire.responder")

# The error text a reply carries: at most this many characters, secrets masked.
MAX_ERROR_CHARS = 200
# Distinct (operation, exception type) pairs logged with their traceback; past
# this many, only the rate-limited counts (a handler cannot flood the log).
MAX_TRACEBACK_KINDS = 64
# A handler failing again with a kind of error already logged: one summary line per
# operation at most this often (WARNING; the tracebacks of new kinds are ERROR).
SUMMARY_INTERVAL_S = 60.0

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(slots=True)
class Verdict:
    """What a handler may return instead of None ("ok, one reply").

    `error`: reply with status "error" and this text (bounded like an exception's).
    `service_us`: the engine's own service time; default: measured around the handler.
    `copies`: 0 = no reply at all, 2 or more = duplicate replies. For test doubles
    that imitate faulty engines; a real engine leaves it at 1.
    """

    error: str = ""
    service_us: int | None = None
    copies: int = 1


Result = Verdict | None | Any
Handler = Callable[[Request], Awaitable[Result] | Result]

_probe: contextvars.ContextVar[Request | None] = contextvars.ContextVar(
    "nautilus_wire_probe", default=None)


def current_probe() -> Request | None:
    """The probe being handled: inside a probe handler, the tasks it creates,
    `asyncio.to_thread` and plain-function handlers; in other threads only through
    `carry_probe` (docs/engines.md lists where). None in the engine's real work.
    Code deep in an engine uses it to skip side effects: `if is_probe(): return`."""
    return _probe.get()


def is_probe() -> bool:
    """True while code runs on behalf of a probe (see `current_probe`)."""
    return _probe.get() is not None


def carry_probe(fn: Callable[P, T]) -> Callable[P, T]:
    """`fn`, carrying the caller's probe context into whatever thread calls it:
    `loop.run_in_executor(None, carry_probe(fn), x)`, `pool.submit(carry_probe(fn), x)`,
    `threading.Thread(target=carry_probe(fn))`. Called outside a probe, it carries
    "no probe". Unlike one `contextvars.copy_context().run`, it may run in several
    threads at once (`pool.map(carry_probe(fn), items)`)."""
    probe = _probe.get()

    @functools.wraps(fn)
    def carried(*args: P.args, **kwargs: P.kwargs) -> T:
        token = _probe.set(probe)
        try:
            return fn(*args, **kwargs)
        finally:
            _probe.reset(token)

    return carried


def error_text(exc: BaseException) -> str:
    """What goes on the wire for a handler's exception: its type and message, one
    line, secrets in URLs masked, at most MAX_ERROR_CHARS characters."""
    message = str(exc)
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return bounded(text)


def bounded(text: str) -> str:
    text = redact("".join(c if c.isprintable() else " " for c in text))
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS - 1] + "…"


def _is_async(handler: Any) -> bool:
    """A coroutine function, or an object whose __call__ is one."""
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None))  # noqa: B004 - the method itself, not callable()


class HandlerTable:
    """Dispatches a probe to the handler of its operation. A coroutine function is
    awaited; a plain function runs in a worker thread (it may block)."""

    def __init__(self, engine: str, handlers: Mapping[str, Handler] | Handler) -> None:
        if callable(handlers):
            self._by_op: dict[str, Handler] | None = None
            self._any: Handler | None = handlers
        else:
            self._by_op = dict(handlers)
            self._any = None
            bad = [op for op, h in self._by_op.items() if not callable(h)]
            if bad:
                raise TypeError(f"handlers for {bad} are not callable")
            if not self._by_op:
                raise ValueError("no handlers: give at least one operation's handler")
        # Which handlers are awaited, decided once (not per probe).
        self._awaited = {id(h): _is_async(h) for h in
                         (self._by_op.values() if self._by_op is not None else [self._any])}
        self._errors = ErrorLog(log, engine, SUMMARY_INTERVAL_S, MAX_TRACEBACK_KINDS)
        self.engine = engine

    def answers(self, op: str) -> bool:
        """Whether some handler takes `op`."""
        return self._by_op is None or op in self._by_op

    async def call(self, req: Request) -> tuple[Verdict, int]:
        """The handler's verdict and the service time measured around it (us)."""
        handler = self._any if self._by_op is None else self._by_op.get(req.op)
        started = time.perf_counter()
        if handler is None:
            known = ", ".join(sorted(self._by_op or ()))
            return Verdict(error=bounded(f"unknown operation {req.op!r} (this engine answers: "
                                         f"{known})")), 0
        token = _probe.set(req)
        try:
            if self._awaited[id(handler)]:
                result = await cast(Awaitable[Result], handler(req))
            else:
                # copy_context: the worker thread sees the probe context too.
                ctx = contextvars.copy_context()
                result = await asyncio.get_running_loop().run_in_executor(
                    None, ctx.run, handler, req)
                if inspect.isawaitable(result):
                    result = await result
        except Exception as exc:
            self._failed(req.op, exc)
            verdict = Verdict(error=error_text(exc))
        else:
            verdict = result if isinstance(result, Verdict) else Verdict()
            if verdict.error:
                verdict.error = bounded(verdict.error)
        finally:
            _probe.reset(token)
        return verdict, int((time.perf_counter() - started) * 1e6)

    def _failed(self, op: str, exc: Exception) -> None:
        self._errors.failed(f"handler of {op!r}", exc, redact(repr(exc))[:MAX_ERROR_CHARS])
