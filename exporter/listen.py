"""Listen addresses: Prometheus-style `[host]:port` flags and free loopback ports."""

from __future__ import annotations

import random
import socket

from nautilus_config.errors import UsageError


def parse_listen_address(addr: str) -> tuple[str | None, int]:
    """":9478" -> (None, 9478): all interfaces; "127.0.0.1:9478"; "[::1]:9478"."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise UsageError(f"--web.listen-address: expected [host]:port, got {addr!r}")
    host = host.strip("[]")
    return (host or None), int(port)


EPHEMERAL_RANGE = "/proc/sys/net/ipv4/ip_local_port_range"
_pick = random.SystemRandom()  # not the global generator: a seeded one repeats itself


def _ephemeral() -> tuple[int, int]:
    """The ports the kernel gives outgoing connections (Linux's default elsewhere)."""
    try:
        with open(EPHEMERAL_RANGE) as f:
            low, high = (int(n) for n in f.read().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return low, high


def free_port(twin: int = 0) -> int:
    """A loopback port no one listens on right now (for child processes), outside
    the ephemeral range: a port picked there can be taken by any process's outgoing
    connection before the child binds it (two test lanes at once did that). With
    `twin`, port + twin is free and outside that range too (a Redis Cluster node's
    bus port is its port + 10000)."""
    low, high = _ephemeral()
    ports = (range(10000, low - twin) if low - twin > 11000
             else range(high + 1, 65536 - twin))
    for _ in range(200):
        port = _pick.choice(ports) if ports else 0
        with socket.socket() as s, socket.socket() as t:
            try:
                s.bind(("127.0.0.1", port))
                if twin:
                    t.bind(("127.0.0.1", port + twin))
            except OSError:
                continue
            return int(s.getsockname()[1])
    with socket.socket() as s:  # every pick taken: whatever the kernel gives
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
