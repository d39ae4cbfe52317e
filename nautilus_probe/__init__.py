"""The `nautilus-probe` command and the local stack: the one place that wires every
package together (see docs/architecture.md)."""
