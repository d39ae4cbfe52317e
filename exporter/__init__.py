"""nautilus-probe exporter: continuous MessageBus probes as Prometheus metrics."""

__version__ = "0.1.0"
