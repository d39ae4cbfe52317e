"""HTTP endpoints, Prometheus style: /metrics, /-/healthy, /-/ready, /-/reload."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from . import __version__
from .listen import parse_listen_address
from .runtime import Exporter
from .yamlcheck import ConfigError

log = logging.getLogger(__name__)

LANDING = """<!doctype html>
<html><head><title>nautilus-probe exporter</title></head>
<body><h1>nautilus-probe exporter</h1><p>version {version}</p>
<ul><li><a href="/metrics">Metrics</a></li>
<li><a href="/-/healthy">Health</a></li><li><a href="/-/ready">Readiness</a></li></ul>
</body></html>
"""


def make_app(exporter: Exporter) -> web.Application:
    async def metrics(request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = encoder(exporter.registry)
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def landing(_: web.Request) -> web.Response:
        return web.Response(text=LANDING.format(version=__version__), content_type="text/html")

    async def healthy(_: web.Request) -> web.Response:
        if exporter.healthy:
            return web.Response(text="Healthy.\n")
        return web.Response(status=500, text="A probe loop has crashed; see the log.\n")

    async def ready(_: web.Request) -> web.Response:
        if exporter.ready:
            return web.Response(text="Ready.\n")
        return web.Response(status=503, text="Not ready.\n")

    async def reload(_: web.Request) -> web.Response:
        try:
            changed = await exporter.reload()
        except ConfigError as exc:
            log.error("reload rejected, keeping the running configuration: %s", exc)
            return web.Response(status=500, text=f"failed to reload config: {exc}\n")
        return web.Response(text="Reloaded.\n" if changed else "Unchanged.\n")

    app = web.Application()
    app.add_routes([web.get("/", landing), web.get("/metrics", metrics),
                    web.get("/-/healthy", healthy), web.get("/-/ready", ready),
                    web.post("/-/reload", reload), web.put("/-/reload", reload)])
    return app


async def serve(exporter: Exporter, listen: str) -> web.AppRunner:
    host, port = parse_listen_address(listen)
    runner = web.AppRunner(make_app(exporter), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def sighup_reloads(exporter: Exporter) -> None:
    """SIGHUP feeds the same reload as POST /-/reload."""
    try:
        await exporter.reload()
    except ConfigError as exc:
        log.error("reload rejected, keeping the running configuration: %s", exc)


_reloads: set[asyncio.Task[None]] = set()  # referenced until done


def install_sighup(exporter: Exporter) -> None:
    import signal

    def on_sighup() -> None:
        task = asyncio.get_running_loop().create_task(sighup_reloads(exporter))
        _reloads.add(task)
        task.add_done_callback(_reloads.discard)

    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_sighup)
