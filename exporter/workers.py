"""`nautilus-probe exporter --workers N`: N exporter processes behind one /metrics.

Each worker is an ordinary exporter running shard i of N of the probe plan on a
loopback port; this parent serves /metrics by scraping them and re-exposing
every series with a `worker` label (so no two workers' series collide, and
`sum by (engine)` adds them up), fans /-/reload out to all, and restarts a
worker that exits.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from .listen import free_port
from .metrics import NAMESPACE
from .web import ReloadError, WebOptions, serve

log = logging.getLogger(__name__)

# A worker that keeps dying is restarted after 1 s, then 2, 4 ... up to a minute; one
# that ran this long before exiting starts the count again.
RESTART_MIN_S = 1.0
RESTART_MAX_S = 60.0
STABLE_S = 60.0
# SIGTERM to the parent: the workers stop in parallel within this, inside the parent's
# own signals.EXIT_WITHIN_S.
STOP_GRACE_S = 1.6


class Worker:
    def __init__(self, index: int, count: int, argv: list[str]) -> None:
        self.index, self.count, self.argv = index, count, argv
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0  # exposed as worker_restarts_total
        self.started_at = 0.0
        self.restart_at: float | None = None  # when a dead worker is started again
        self._delay = RESTART_MIN_S

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "nautilus_probe", "exporter", *self.argv,
                                      "--shard", f"{self.index}/{self.count}",
                                      "--web.listen-address", f"127.0.0.1:{self.port}"])
        self.started_at = time.monotonic()
        self.restart_at = None

    def supervise(self, now: float) -> None:
        """Restart a worker that exited, backing off while it keeps exiting."""
        if self.proc is None or self.proc.poll() is None:
            return
        if self.restart_at is None:
            if now - self.started_at >= STABLE_S:
                self._delay = RESTART_MIN_S
            self.restart_at = now + self._delay
            log.error("worker %d exited with %s; restarting in %.0f s", self.index,
                      self.proc.returncode, self._delay)
            self._delay = min(self._delay * 2, RESTART_MAX_S)
        if now >= self.restart_at:
            self.restarts += 1
            self.start()

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()

    def reap(self, deadline: float) -> None:
        """Wait for the exit until `deadline`, then kill (runs off the event loop)."""
        if self.proc is None:
            return
        try:
            self.proc.wait(max(deadline - time.monotonic(), 0.01))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def stop_workers(workers: list[Worker], grace: float = STOP_GRACE_S) -> None:
    """All at once, without blocking the event loop (one at a time took up to 10 s each)."""
    for w in workers:
        w.terminate()
    deadline = time.monotonic() + grace
    def reap_all() -> None:
        for w in workers:
            w.reap(deadline)
    await asyncio.to_thread(reap_all)


_PARENT_PROCESS = ProcessCollector(registry=None)


class _Merged:
    """A collector over the workers' parsed expositions, each series labelled `worker`."""

    def __init__(self, scraped: list[tuple[int, str]], up: dict[int, int],
                 restarts: dict[int, int]) -> None:
        self.scraped, self.up, self.restarts = scraped, up, restarts

    def collect(self) -> list[Metric]:
        families: dict[str, Metric] = {}

        def add(fam: Metric, labels: dict[str, str]) -> None:
            out = families.get(fam.name)
            if out is None:
                out = families[fam.name] = Metric(fam.name, fam.documentation, fam.type, fam.unit)
            for s in fam.samples:
                out.add_sample(s.name, {**s.labels, **labels}, s.value, s.timestamp, s.exemplar)

        # The parent's own process_* (no `worker` label) share their families with the
        # workers' (one HELP/TYPE per name).
        for fam in _PARENT_PROCESS.collect():
            add(fam, {})
        for index, text in self.scraped:
            for fam in text_string_to_metric_families(text):
                add(fam, {"worker": str(index)})
        up = Metric(f"{NAMESPACE}_worker_up", "1 when the worker process answered its scrape.",
                    "gauge")
        for index, value in sorted(self.up.items()):
            up.add_sample(f"{NAMESPACE}_worker_up", {"worker": str(index)}, value)
        restarts = Metric(f"{NAMESPACE}_worker_restarts", "Times the parent restarted a worker "
                          "process that exited.", "counter")
        for index, value in sorted(self.restarts.items()):
            restarts.add_sample(f"{NAMESPACE}_worker_restarts_total", {"worker": str(index)}, value)
        return [*families.values(), up, restarts]


class WorkerPool:
    """The workers behind the parent's endpoints (a web.Backend)."""

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers
        self._session: aiohttp.ClientSession | None = None  # made on the endpoints' loop
        self.reloads = 0

    async def _call(self, w: Worker, path: str, method: str = "GET") -> tuple[int, str]:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        try:
            async with self._session.request(method, f"{w.base}{path}") as resp:
                return resp.status, await resp.text()
        except (TimeoutError, aiohttp.ClientError) as exc:
            return 503, f"worker {w.index}: {exc}\n"

    async def _fan_out(self, path: str, method: str = "GET") -> list[tuple[int, str]]:
        return await asyncio.gather(*(self._call(w, path, method) for w in self.workers))

    async def registry(self) -> CollectorRegistry:
        results = await self._fan_out("/metrics")
        reg = CollectorRegistry()
        reg.register(_Merged([(w.index, text) for w, (status, text) in zip(self.workers, results, strict=True)
                              if status == 200],
                             {w.index: int(status == 200)
                              for w, (status, _) in zip(self.workers, results, strict=True)},
                             {w.index: w.restarts for w in self.workers}))
        return reg

    async def health_problem(self) -> str | None:
        bad = [body for status, body in await self._fan_out("/-/healthy") if status != 200]
        return "".join(bad) or None

    async def is_ready(self) -> bool:
        return all(status == 200 for status, _ in await self._fan_out("/-/ready"))

    async def reload(self) -> bool:
        self.reloads += 1
        results = await self._fan_out("/-/reload", "POST")
        failed = [body for status, body in results if status != 200]
        if failed:
            raise ReloadError("".join(failed))
        return any(body == "Reloaded.\n" for _, body in results)

    def generation(self) -> int:
        return self.reloads

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


async def run_workers(count: int, argv: list[str], listen: str, options: WebOptions,
                      stop: asyncio.Event, on_stop: Any = None) -> None:
    workers = [Worker(i, count, argv) for i in range(1, count + 1)]
    pool = WorkerPool(workers)
    runner = await serve(pool, listen, options)
    for w in workers:
        w.start()
    log.info("%d workers behind %s", count, listen)
    try:
        while not stop.is_set():
            for w in workers:
                w.supervise(time.monotonic())
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except TimeoutError:
                pass
    finally:
        if on_stop is not None:
            on_stop()  # the hard deadline (exporter.cli.exit_by_deadline)
        await stop_workers(workers)
        await runner.cleanup()


def worker_argv(args: Any) -> list[str]:
    # Workers listen on loopback and only the parent calls them: the parent decides
    # whether reloads are allowed, and its --web.config.file guards the outside.
    argv = ["--config.file", args.config_file, "--web.enable-lifecycle"]
    if args.redis_url:
        argv += ["--redis.url", args.redis_url]
    return argv
