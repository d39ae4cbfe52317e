"""Helpers shared by tests/ and bench/: processes on free loopback ports, HTTP
polling, and reading numbers back out of an exposition. Product code never
imports this package (tests/test_layout.py checks)."""

from __future__ import annotations

import os
from pathlib import Path

from exporter.listen import free_port
from nautilus_probe.redis_server import RedisServer

from .http import eventually, http_get, http_post, wait_for

# The repository (an editable install, as ./run setup makes).
ROOT = Path(__file__).resolve().parent.parent


def free_ports(n: int) -> list[int]:
    """`n` different free loopback ports (free_port's picks are random: two may meet)."""
    ports: list[int] = []
    while len(ports) < n:
        if (port := free_port()) not in ports:
            ports.append(port)
    return ports


def stack_flags() -> list[str]:
    """`nautilus-probe stack` flags that put its WebSocket engines on free ports (its
    default 8080-8082 would keep two stacks, or a user's and the suite's, from running
    at once)."""
    return ["--websocket.port", ",".join(str(p) for p in free_ports(3))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident memory of a process now, from /proc."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


__all__ = ["ROOT", "RedisServer", "cpu_seconds", "rss_bytes", "eventually", "free_port",
           "free_ports", "http_get", "http_post", "stack_flags", "wait_for"]
