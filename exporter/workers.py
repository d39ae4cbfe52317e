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
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from . import __version__
from .listen import free_port, parse_listen_address
from .web import LANDING

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, index: int, count: int, argv: list[str]) -> None:
        self.index, self.count, self.argv = index, count, argv
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "nautilus_probe", "exporter", *self.argv,
                                      "--shard", f"{self.index}/{self.count}",
                                      "--web.listen-address", f"127.0.0.1:{self.port}"])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class _Merged:
    """A collector over the workers' parsed expositions, each series labelled `worker`."""

    def __init__(self, scraped: list[tuple[int, str]], up: dict[int, int]) -> None:
        self.scraped, self.up = scraped, up

    def collect(self) -> list[Metric]:
        families: dict[str, Metric] = {}
        for index, text in self.scraped:
            for fam in text_string_to_metric_families(text):
                out = families.get(fam.name)
                if out is None:
                    out = families[fam.name] = Metric(fam.name, fam.documentation, fam.type, fam.unit)
                for s in fam.samples:
                    out.add_sample(s.name, {**s.labels, "worker": str(index)}, s.value,
                                   s.timestamp, s.exemplar)
        up = Metric("nautilus_probe_worker_up", "1 when the worker process answered its scrape.",
                    "gauge")
        for index, value in sorted(self.up.items()):
            up.add_sample("nautilus_probe_worker_up", {"worker": str(index)}, value)
        return [*families.values(), up]


async def run_workers(count: int, argv: list[str], listen: str, stop: asyncio.Event) -> None:
    workers = [Worker(i, count, argv) for i in range(1, count + 1)]
    for w in workers:
        w.start()
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

    async def scrape(w: Worker) -> tuple[int, str | None]:
        try:
            async with session.get(f"{w.base}/metrics") as resp:
                return w.index, await resp.text() if resp.status == 200 else None
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return w.index, None

    async def metrics(_: web.Request) -> web.Response:
        results = await asyncio.gather(*(scrape(w) for w in workers))
        reg = CollectorRegistry()
        reg.register(_Merged([(i, t) for i, t in results if t is not None],
                             {i: int(t is not None) for i, t in results}))
        return web.Response(body=generate_latest(reg),
                            headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    async def fan_out(path: str, method: str = "GET") -> list[tuple[int, str]]:
        async def one(w: Worker) -> tuple[int, str]:
            try:
                async with session.request(method, f"{w.base}{path}") as resp:
                    return resp.status, await resp.text()
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                return 503, f"worker {w.index}: {exc}\n"
        return await asyncio.gather(*(one(w) for w in workers))

    async def healthy(_: web.Request) -> web.Response:
        bad = [body for status, body in await fan_out("/-/healthy") if status != 200]
        return web.Response(status=500 if bad else 200, text="".join(bad) or "Healthy.\n")

    async def ready(_: web.Request) -> web.Response:
        bad = [body for status, body in await fan_out("/-/ready") if status != 200]
        return web.Response(status=503 if bad else 200, text="Not ready.\n" if bad else "Ready.\n")

    async def reload(_: web.Request) -> web.Response:
        results = await fan_out("/-/reload", "POST")
        failed = [body for status, body in results if status != 200]
        return web.Response(status=500 if failed else 200,
                            text="".join(failed) if failed else results[0][1])

    async def landing(_: web.Request) -> web.Response:
        return web.Response(text=LANDING.format(version=__version__), content_type="text/html")

    app = web.Application()
    app.add_routes([web.get("/", landing), web.get("/metrics", metrics),
                    web.get("/-/healthy", healthy), web.get("/-/ready", ready),
                    web.post("/-/reload", reload)])
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, port = parse_listen_address(listen)
    await web.TCPSite(runner, host, port).start()
    log.info("%d workers behind %s", count, listen)
    try:
        while not stop.is_set():
            for w in workers:
                if w.proc is not None and w.proc.poll() is not None:
                    log.error("worker %d exited with %s; restarting", w.index, w.proc.returncode)
                    w.restarts += 1
                    w.start()
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except asyncio.TimeoutError:
                pass
    finally:
        await runner.cleanup()
        await session.close()
        for w in workers:
            w.stop()


def worker_argv(args: Any) -> list[str]:
    argv = ["--config.file", args.config_file]
    if args.redis_url:
        argv += ["--redis.url", args.redis_url]
    return argv
