"""Quiet logs under faults: one warning per kind of failure per interval, with a
count, instead of one line per failed operation."""

from __future__ import annotations

import logging
from time import monotonic

INTERVAL_S = 10.0
# Where ErrorLog sums up the errors it already logged a traceback for.
SUMMARY_LOGGER = "nautilus_wire.summary"


class FailureLog:
    """The first failure of a kind is logged at once; later ones are counted and
    logged with their count at most once per `interval`, on the next failure after it."""

    def __init__(self, logger: logging.Logger, subject: str, interval: float = INTERVAL_S) -> None:
        self.log, self.subject, self.interval = logger, subject, interval
        self._unreported: dict[str, int] = {}
        self._last: dict[str, float] = {}

    def failed(self, kind: str, message: str, count: int = 1) -> None:
        """`count` failures of `kind` just happened; warn now or at the interval."""
        now = monotonic()
        n = self._unreported.get(kind, 0) + count
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._unreported[kind] = n
            return
        self._last[kind], self._unreported[kind] = now, 0
        since = f" in the last {now - last:.0f} s" if last is not None else ""
        self.log.warning("%s %s failing: %s failed%s (last error: %s)",
                         self.subject, kind, f"{n:,}", since, message)

    def quiet(self, kind: str) -> None:
        """Something was just logged about `kind` elsewhere (a traceback): its failures
        from now on are summed up a full `interval` later, as any later ones."""
        if kind not in self._last:
            self._last[kind], self._unreported[kind] = monotonic(), 0

    def recovered(self, kind: str) -> None:
        """Say once that `kind` works again, with the failures not yet reported."""
        if kind not in self._last:
            return
        n = self._unreported.pop(kind, 0)
        del self._last[kind]
        self.log.warning("%s %s works again%s", self.subject, kind,
                         f" ({n:,} more failed since the last warning)" if n else "")


class ErrorLog:
    """Exceptions of the engine's own code (handlers, self-report figures): a new kind
    (what failed, exception type) logs its traceback at once, at ERROR; the same kind
    again is counted and summed up in one WARNING line per `what` at most once per
    `interval` (the first a full interval after the traceback). At most `max_kinds`
    kinds get a traceback (nothing can flood the log)."""

    def __init__(self, logger: logging.Logger, subject: str, interval: float,
                 max_kinds: int = 64) -> None:
        self.log, self.subject, self.max_kinds = logger, subject, max_kinds
        # Their own logger: an engine may raise its level and keep the tracebacks.
        self._summary = FailureLog(logging.getLogger(SUMMARY_LOGGER), subject, interval)
        self._traced: set[tuple[str, str]] = set()
        self.interval = interval

    def failed(self, what: str, exc: BaseException, text: str) -> None:
        """`exc` was raised by `what`; `text` is how the summary line shows it."""
        kind = (what, type(exc).__name__)
        if kind not in self._traced and len(self._traced) < self.max_kinds:
            self._traced.add(kind)
            self.log.error("%s: %s raised %s (first time; later ones are summed up in one "
                           "line per %.0f s)", self.subject, what, type(exc).__name__,
                           self.interval, exc_info=exc)
            self._summary.quiet(what)
            return
        self._summary.failed(what, text)
