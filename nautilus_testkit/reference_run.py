"""The exporter probing the minimal reference responder (bench/reference.py), as the
benchmarks run it: a config of risk operations on a private Redis, both processes
started, the exporter ready, both stopped by PID at the end."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from collections.abc import Iterator

import yaml

from exporter.listen import free_port

from . import ROOT
from .http import http_get, wait_for


# main just before the lean hot path: what the benchmarks call "before".
BEFORE = "3a25a6c"


def checkout(rev: str = BEFORE) -> Path | None:
    """The project at `rev`, checked out once (git worktree) beside this one, to run in
    the same session as the current code; None where there is no git history."""
    path = Path(tempfile.gettempdir()) / f"nautilus-probe-{rev}"
    if (path / "exporter").is_dir():
        return path
    done = subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--force",
                           str(path), rev], capture_output=True, text=True)
    return path if done.returncode == 0 else None


def reference_responder(redis_url: str, seconds: float,
                        engines: tuple[str, ...] = ("risk",)) -> subprocess.Popen[bytes]:
    """bench/reference.py's minimal responder, answering `engines` for `seconds`."""
    return subprocess.Popen([sys.executable, "bench/reference.py", "responder", redis_url,
                             str(seconds), "--engines", ",".join(engines)], cwd=ROOT)


def python_env(code: Path) -> dict[str, str]:
    """The environment in which Python imports the project from the source tree `code`."""
    return {**os.environ, "PYTHONPATH": str(code)}


@contextlib.contextmanager
def exporter_on_reference(redis_url: str, ops: dict[str, float], seconds: float,
                          profile: Path | None = None, redis_client: str = "auto",
                          code: Path = ROOT) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Yields (base URL, exporter process) once the exporter is ready; `ops` maps risk
    operations to probes/s; the responder lives `seconds` (a bound, like every load here).
    `profile`: run the exporter under cProfile, its statistics written there at exit.
    `redis_client`: the exporter's (auto: the thin hot path; redis-py).
    `code`: the exporter's source tree (checkout() for the code before)."""
    tmp = tempfile.TemporaryDirectory(prefix="np-bench-")
    cfg = Path(tmp.name) / "exp.yml"
    settings: dict[str, object] = {
        "redis_url": redis_url, "self_reports": {"engines": []},
        "engines": {"risk": {op: {"rate": rate, "timeout": "2s"} for op, rate in ops.items()}}}
    if redis_client != "auto":  # the code before the thin path has no such key
        settings["redis_client"] = redis_client
    cfg.write_text(yaml.safe_dump(settings))
    responder = reference_responder(redis_url, seconds)
    port = free_port()
    profiler = ["-m", "cProfile", "-o", str(profile)] if profile else []
    exporter = subprocess.Popen([sys.executable, *profiler, "-m", "nautilus_probe", "exporter",
                                 "--config.file", str(cfg),
                                 "--web.listen-address", f"127.0.0.1:{port}"],
                                cwd=code, stderr=subprocess.DEVNULL, env=python_env(code))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_get(f"{base}/-/ready")[0] == 200, 15)
        yield base, exporter
    finally:
        for proc in (exporter, responder):
            proc.terminate()
            proc.wait()
        tmp.cleanup()
