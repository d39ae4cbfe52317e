"""The exporter probing the minimal reference responder (bench/reference.py), as the
benchmarks run it: a config of risk operations on a private Redis, both processes
started, the exporter ready, both stopped by PID at the end."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
from pathlib import Path
from collections.abc import Iterator

import yaml

from exporter.listen import free_port

from . import ROOT
from .http import http_get, wait_for


@contextlib.contextmanager
def exporter_on_reference(redis_url: str, ops: dict[str, float], seconds: float,
                          profile: Path | None = None, redis_client: str = "auto"
                          ) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Yields (base URL, exporter process) once the exporter is ready; `ops` maps risk
    operations to probes/s; the responder lives `seconds` (a bound, like every load here).
    `profile`: run the exporter under cProfile, its statistics written there at exit.
    `redis_client`: the exporter's (auto: the thin hot path; redis-py)."""
    tmp = tempfile.TemporaryDirectory(prefix="np-bench-")
    cfg = Path(tmp.name) / "exp.yml"
    cfg.write_text(yaml.safe_dump({
        "redis_url": redis_url, "self_reports": {"engines": []}, "redis_client": redis_client,
        "engines": {"risk": {op: {"rate": rate, "timeout": "2s"} for op, rate in ops.items()}}}))
    responder = subprocess.Popen([sys.executable, "bench/reference.py", "responder", redis_url,
                                  str(seconds)], cwd=ROOT)
    port = free_port()
    profiler = ["-m", "cProfile", "-o", str(profile)] if profile else []
    exporter = subprocess.Popen([sys.executable, *profiler, "-m", "nautilus_probe", "exporter",
                                 "--config.file", str(cfg),
                                 "--web.listen-address", f"127.0.0.1:{port}"],
                                cwd=ROOT, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_get(f"{base}/-/ready")[0] == 200, 15)
        yield base, exporter
    finally:
        for proc in (exporter, responder):
            proc.terminate()
            proc.wait()
        tmp.cleanup()
