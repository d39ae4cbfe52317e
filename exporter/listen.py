"""Listen addresses: Prometheus-style `[host]:port` flags and free loopback ports."""

from __future__ import annotations

import socket

from nautilus_config.errors import UsageError


def parse_listen_address(addr: str) -> tuple[str | None, int]:
    """":9478" -> (None, 9478): all interfaces; "127.0.0.1:9478"; "[::1]:9478"."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise UsageError(f"--web.listen-address: expected [host]:port, got {addr!r}")
    host = host.strip("[]")
    return (host or None), int(port)


def free_port() -> int:
    """A loopback port no one listens on right now (for child processes)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
