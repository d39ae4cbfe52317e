"""Where a result came from: the tool, its version and commit, the host (and how busy
it was), and what was offered — every load-test result and review carries it; and
where a report came from: when, by which command, against which thresholds file."""

from __future__ import annotations

import hashlib
import os
import shlex
import socket
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, UTC
from typing import Any

from exporter import __version__
from nautilus_wire.redact import redact

from .scenarios import containerized_plan


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


def load_1m() -> float | None:
    """The host's 1-minute load average (runnable and waiting tasks, all CPUs), or None
    where the platform has none."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):  # unavailable, or no getloadavg (Windows)
        return None


def host_load(start: float | None, end: float | None) -> dict[str, Any]:
    """The host's CPUs and its 1-minute load average at a run's start and end: the
    start's is the other work on the host before the run's own load (the average
    lags by about a minute), the end's includes the run's."""
    return {"host_cpus": os.cpu_count(), "host_load_1m_start": start, "host_load_1m_end": end}


def file_sha256(path: str) -> str | None:
    """A file's SHA-256 (hex), or None when it cannot be read."""
    try:
        with open(path, "rb") as fh:
            return hashlib.sha256(fh.read()).hexdigest()
    except OSError:
        return None


@dataclass(frozen=True)
class ReportOrigin:
    """Where a report came from: the command as typed and the thresholds file it was
    judged against (its path as given, its content by hash), and when."""

    command: str
    thresholds: str
    thresholds_sha256: str | None
    generated: float = field(default_factory=time.time)


def report_origin(argv: list[str], thresholds: str) -> ReportOrigin:
    """The origin of a report `nautilus-probe <argv>` writes, judged against `thresholds`;
    a URL's credentials are masked, paths are left as given."""
    return ReportOrigin("nautilus-probe " + shlex.join(redact(a) for a in argv), thresholds,
                        file_sha256(thresholds))


def metadata(kind: str, opts: dict[str, Any], workers: int, started: float, ended: float,
             load: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a reviewer needs to trust (or redo) a result; `load`: host_load() of the
    host it ran on (a merged run of several hosts has its shares' instead)."""
    offered: dict[str, Any] = {"duration_seconds": opts["duration"],
                               "timeout_seconds": opts["timeout"], "workers": workers}
    if kind == "baseline":
        offered["in_flight"] = workers  # serial: one request at a time per worker
    elif kind == "containerized":
        offered.update(latency_phase_rate=opts["rate"], rate_unit="trading requests/s",
                       in_flight=opts["concurrency"] * workers,
                       operations=opts.get("operations", "first"), **containerized_plan(opts))
    else:
        offered.update(connections=opts["connections"] * workers,
                       connect_rate=opts["connect_rate"])
    # What was measured: the MessageBus, or (a WebSocket run, which uses no Redis) the
    # endpoints.
    measured = ({"websocket_urls": [redact(u) for u in opts["urls"]]} if kind == "websocket" else
                {"redis_url": redact(opts["redis_url"]), "transport": opts["transport"],
                 "prefix": opts["prefix"]})
    thresholds = {"thresholds": opts.get("thresholds")}
    if opts.get("thresholds_sha256"):
        thresholds["thresholds_sha256"] = opts["thresholds_sha256"]
    return {"kind": kind, "started": iso(started), "ended": iso(ended),
            "duration_seconds": round(ended - started, 3), **provenance(), **(load or {}),
            **measured, **thresholds, "offered": offered}
