"""deploy/compose/exporter.yml, derived from config/exporter.yml: the same probe plan,
with the WebSocket engines' compose service names where the local stack dials
127.0.0.1:8080-8082. `python -m nautilus_probe.compose` writes it; a test checks that
the file in the repository is what it writes.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from . import ROOT

SHIPPED = Path("config/exporter.yml")
COMPOSE = Path("deploy/compose/exporter.yml")
HEADER = ("# Generated from config/exporter.yml by `python -m nautilus_probe.compose` (the\n"
          "# WebSocket engines' compose service names for 127.0.0.1): edit that file, not this.\n")
# The local stack's WebSocket engines listen on 8080-8082; compose runs them as
# ws-engine-1..3 on the same ports.
_WS_ENGINE = re.compile(r"\b127\.0\.0\.1:(808[0-2])\b")


def derive(shipped: str) -> str:
    """The compose file's text from the shipped file's: its first comment line replaced."""
    lines = shipped.splitlines(keepends=True)
    body = "".join(lines[1:] if lines and lines[0].startswith("#") else lines)
    return HEADER + _WS_ENGINE.sub(lambda m: f"ws-engine-{int(m[1]) - 8079}:{m[1]}", body)


def main(root: Path = ROOT) -> int:
    (root / COMPOSE).write_text(derive((root / SHIPPED).read_text()))
    print(f"wrote {COMPOSE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
