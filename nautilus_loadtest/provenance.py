"""Where a result came from: the tool, its version and commit, the host, and what
was offered — every load-test result and review carries it."""

from __future__ import annotations

import os
import socket
import subprocess
from datetime import datetime, UTC
from typing import Any

from exporter import __version__
from nautilus_wire.redact import redact


def _git_commit() -> str | None:
    """The checkout's commit, when the tool runs from one."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        out = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")


def provenance() -> dict[str, Any]:
    """Which tool made a result, and where: every load-test result and review says."""
    return {"tool": "nautilus-probe", "version": __version__, "git_commit": _git_commit(),
            "host": socket.gethostname()}


def metadata(kind: str, opts: dict[str, Any], workers: int, started: float, ended: float
             ) -> dict[str, Any]:
    """What a reviewer needs to trust (or redo) a result."""
    offered: dict[str, Any] = {"duration_seconds": opts["duration"],
                               "timeout_seconds": opts["timeout"], "workers": workers}
    if kind == "baseline":
        offered["in_flight"] = workers  # serial: one request at a time per worker
    elif kind == "containerized":
        offered.update(latency_phase_rate=opts["rate"], rate_unit="trading requests/s",
                       in_flight=opts["concurrency"] * workers,
                       operations=opts.get("operations", "first"))
    else:
        offered.update(connections=opts["connections"] * workers,
                       connect_rate=opts["connect_rate"])
    # What was measured: the MessageBus, or (a WebSocket run, which uses no Redis) the
    # endpoints.
    measured = ({"websocket_urls": [redact(u) for u in opts["urls"]]} if kind == "websocket" else
                {"redis_url": redact(opts["redis_url"]), "transport": opts["transport"],
                 "prefix": opts["prefix"]})
    return {"kind": kind, "started": iso(started), "ended": iso(ended),
            "duration_seconds": round(ended - started, 3), **provenance(), **measured,
            "thresholds": opts.get("thresholds"), "offered": offered}
