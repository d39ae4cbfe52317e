"""The `nautilus-probe` command and the local stack: the one place that wires every
package together (see docs/architecture.md)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the checkout: config/, alerts/, deploy/
