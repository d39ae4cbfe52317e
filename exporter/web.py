"""HTTP endpoints, Prometheus style: /metrics, /-/healthy, /-/ready, /-/reload."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

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


class Backend(Protocol):
    """What the endpoints serve: one exporter, or the --workers parent's pool."""

    async def registry(self) -> Any:
        """A collector registry to render, in the format the scraper asked for."""

    async def health_problem(self) -> str | None:
        """None when healthy; otherwise what is wrong."""

    async def is_ready(self) -> bool: ...

    async def reload(self) -> bool:
        """True if the configuration changed; raises ReloadError (old config stays)."""


class ReloadError(Exception):
    """A reload that was rejected; the running configuration stays."""


class ExporterBackend:
    """One exporter process."""

    def __init__(self, exporter: Exporter) -> None:
        self.exporter = exporter

    async def registry(self) -> Any:
        return self.exporter.registry

    async def health_problem(self) -> str | None:
        return self.exporter.health_problem()

    async def is_ready(self) -> bool:
        return self.exporter.ready

    async def reload(self) -> bool:
        try:
            return await self.exporter.reload()
        except ConfigError as exc:
            raise ReloadError(f"failed to reload config: {exc}\n") from None
        except Exception as exc:  # noqa: BLE001 - whatever failed, the caller hears why
            raise ReloadError(f"failed to reload config: {exc!r}\n") from None


def make_app(backend: Backend) -> web.Application:
    async def metrics(request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = encoder(await backend.registry())
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def landing(_: web.Request) -> web.Response:
        return web.Response(text=LANDING.format(version=__version__), content_type="text/html")

    async def healthy(_: web.Request) -> web.Response:
        problem = await backend.health_problem()
        if problem is None:
            return web.Response(text="Healthy.\n")
        return web.Response(status=500, text=problem)

    async def ready(_: web.Request) -> web.Response:
        if await backend.is_ready():
            return web.Response(text="Ready.\n")
        return web.Response(status=503, text="Not ready.\n")

    async def reload(_: web.Request) -> web.Response:
        try:
            changed = await backend.reload()
        except ReloadError as exc:
            log.error("reload rejected, keeping the running configuration: %s", str(exc).strip())
            return web.Response(status=500, text=str(exc))
        return web.Response(text="Reloaded.\n" if changed else "Unchanged.\n")

    app = web.Application()
    app.add_routes([web.get("/", landing), web.get("/metrics", metrics),
                    web.get("/-/healthy", healthy), web.get("/-/ready", ready),
                    web.post("/-/reload", reload), web.put("/-/reload", reload)])
    return app


async def serve(backend: Backend, listen: str) -> web.AppRunner:
    """The endpoints on `listen`; OSError when the address is taken."""
    host, port = parse_listen_address(listen)
    runner = web.AppRunner(make_app(backend), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        reason = exc.strerror or str(exc)
        if "address already in use" in str(exc):
            reason = "address already in use"
        raise OSError(exc.errno, f"cannot listen on {listen}: {reason}") from None
    return runner


async def sighup_reloads(exporter: Exporter) -> None:
    """SIGHUP feeds the same reload as POST /-/reload."""
    try:
        await exporter.reload()
    except Exception as exc:  # noqa: BLE001 - the running configuration stays
        log.error("reload rejected, keeping the running configuration: %s", exc)


_reloads: set[asyncio.Task[None]] = set()  # referenced until done


def install_sighup(exporter: Exporter) -> None:
    import signal

    def on_sighup() -> None:
        task = asyncio.get_running_loop().create_task(sighup_reloads(exporter))
        _reloads.add(task)
        task.add_done_callback(_reloads.discard)

    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_sighup)
