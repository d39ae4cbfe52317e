"""A private redis-server child process on 127.0.0.1: the local stack's, the tests'
and the benchmarks'. Nothing is persisted; it is stopped by PID."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time

from exporter.listen import free_port


class RedisServerError(RuntimeError):
    """redis-server is missing or did not start."""


class RedisServer:
    """A redis-server on a free (or given) loopback port, which may be killed and
    started again on the same port."""

    def __init__(self, port: int | None = None, extra_args: tuple[str, ...] = ()) -> None:
        self.port = port or free_port()
        self.extra_args = extra_args  # e.g. cluster mode
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tempfile.mkdtemp(prefix="np-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0, **popen: object) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisServerError("redis-server not found; run ./run setup")
        self.proc = subprocess.Popen(  # type: ignore[call-overload]  # **kw: typeshed's overloads
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, *self.extra_args],
            stdout=subprocess.DEVNULL, **popen)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if _pong(self.port):
                return self
            time.sleep(0.02)
        self.kill()
        raise RedisServerError(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def remove(self) -> None:
        """Kill it and delete its working directory."""
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith((b"+PONG", b"-NOAUTH"))  # up, maybe with a password
    except OSError:
        return False
