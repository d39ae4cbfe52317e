"""Quiet logs under faults: one warning per kind of failure per interval, with a
count, instead of one line per failed operation."""

from __future__ import annotations

import logging
import time

INTERVAL_S = 10.0


class FailureLog:
    def __init__(self, logger: logging.Logger, subject: str, interval: float = INTERVAL_S) -> None:
        self.log, self.subject, self.interval = logger, subject, interval
        self._unreported: dict[str, int] = {}
        self._last: dict[str, float] = {}

    def failed(self, kind: str, message: str, count: int = 1) -> None:
        """`count` failures of `kind` just happened; warn now or at the interval."""
        now = time.monotonic()
        n = self._unreported.get(kind, 0) + count
        if now - self._last.get(kind, -self.interval) < self.interval:
            self._unreported[kind] = n
            return
        self._last[kind], self._unreported[kind] = now, 0
        self.log.warning("%s %s failing: %s failed in the last %.0f s (last error: %s)",
                         self.subject, kind, f"{n:,}", self.interval, message)

    def recovered(self, kind: str) -> None:
        """Say once that `kind` works again, with the failures not yet reported."""
        if kind not in self._last:
            return
        n = self._unreported.pop(kind, 0)
        del self._last[kind]
        self.log.warning("%s %s works again%s", self.subject, kind,
                         f" ({n:,} more failed since the last warning)" if n else "")
