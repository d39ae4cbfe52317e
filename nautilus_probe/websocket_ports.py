"""Where the local stack's three WebSocket engines listen: ws_protocol.DEFAULT_PORTS
(8080-8082, the migration plan's and config/exporter.yml's) unless `--websocket.port`
moves them, so that a second stack (another checkout, the test suite) can run beside
the first."""

from __future__ import annotations

import re
from pathlib import Path

from nautilus_config.errors import UsageError
from nautilus_wire.ws_protocol import DEFAULT_PORTS, local_url

FLAG = "--websocket.port"
DEFAULT = DEFAULT_PORTS
COUNT = len(DEFAULT)  # the stack's exporter config holds three endpoints of each kind


def parse(value: str) -> tuple[int, ...]:
    """"9080" -> (9080, 9081, 9082): the first of three consecutive ports; or the
    three themselves, "9080,9177,9300"."""
    parts = [p.strip() for p in value.split(",")]
    if not all(p.isdigit() for p in parts) or len(parts) not in (1, COUNT):
        raise UsageError(f"{FLAG}: expected a port (the first of {COUNT} consecutive ones) "
                         f"or {COUNT} comma-separated ports, got {value!r}")
    ports = [int(p) for p in parts]
    if len(ports) == 1:
        ports = [ports[0] + i for i in range(COUNT)]
    if len(set(ports)) != COUNT or not all(0 < p < 65536 for p in ports):
        raise UsageError(f"{FLAG}: expected {COUNT} different ports between 1 and 65535, "
                         f"got {value!r}")
    return tuple(ports)


def describe(ports: tuple[int, ...]) -> str:
    """"8080-8082", or "9080, 9177, 9300" when they are not consecutive."""
    if list(ports) == list(range(ports[0], ports[0] + len(ports))):
        return f"{ports[0]}-{ports[-1]}"
    return ", ".join(str(p) for p in ports)


def endpoints(ports: tuple[int, ...]) -> list[str]:
    """The engines' WebSocket URLs, as the stack's exporter config names them."""
    return [local_url(p) for p in ports]


def moved_config(source: Path, ports: tuple[int, ...], into: Path) -> Path:
    """`source` (the stack's exporter config) with every 127.0.0.1:8080-8082 target
    (WebSocket, HTTP health, TCP) at `ports` instead, written into `into`; `source`
    itself when nothing moves. A text substitution: the copy keeps its comments for
    a user who edits it and reloads."""
    if ports == DEFAULT:
        return source
    moved = dict(zip(DEFAULT, ports, strict=True))
    text = re.sub(r"\b127\.0\.0\.1:(\d+)\b",
                  lambda m: f"127.0.0.1:{moved.get(int(m[1]), int(m[1]))}",
                  source.read_text())
    path = into / source.name
    path.write_text(text)
    return path
