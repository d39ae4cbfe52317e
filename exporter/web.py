"""HTTP endpoints, Prometheus style: /metrics, /-/healthy, /-/ready, /-/reload."""

from __future__ import annotations

import asyncio
import gzip
import logging
import sys
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web
from prometheus_client.exposition import choose_encoder

from nautilus_wire.redact import redact

from . import __version__
from .listen import parse_listen_address
from .runtime import Exporter
from .snapshot import Encoder, Exposition, freeze, Snapshot
from .web_config import WebSecurity
from nautilus_config.errors import ConfigError

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
        """A collector registry to render (the endpoint picks the exposition format
        from the scraper's Accept header)."""

    def generation(self) -> int:
        """Changes whenever a render must not be reused (a reload)."""

    async def health_problem(self) -> str | None:
        """None when healthy; otherwise what is wrong."""

    async def is_ready(self) -> bool: ...

    async def reload(self) -> bool:
        """True if the configuration changed; raises ReloadError (old config stays)."""


class ReloadError(Exception):
    """A reload that was rejected; the running configuration stays."""


class ExporterBackend:
    """One exporter process. The endpoints run in their own thread (`serve`); a reload
    runs on the probes' event loop, where the exporter lives."""

    def __init__(self, exporter: Exporter) -> None:
        self.exporter = exporter
        self.loop = asyncio.get_running_loop()

    async def registry(self) -> Any:
        """The registry's values, copied on the probes' loop in one go: a consistent
        snapshot (requests = answered + failed + in flight, exactly), rendered later
        on the endpoints' thread (snapshot.py)."""
        async def collect() -> Snapshot:
            return Snapshot(freeze(self.exporter.registry))

        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(collect(), self.loop))

    def generation(self) -> int:
        return self.exporter.generation

    async def health_problem(self) -> str | None:
        return self.exporter.health_problem()

    async def is_ready(self) -> bool:
        return self.exporter.ready

    async def reload(self) -> bool:
        try:
            return await asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(self.exporter.reload(), self.loop))
        except ConfigError as exc:
            raise ReloadError(f"failed to reload config: {exc}\n") from None
        except Exception as exc:
            raise ReloadError(redact(f"failed to reload config: {exc!r}\n")) from None


class Pacer:
    """Responses leave through it at most one per `gap` seconds; the others wait their
    turn. Clients that ask in a loop are slowed to that pace instead of taking the
    interpreter from the probes."""

    def __init__(self, gap: float) -> None:
        self.gap = gap
        self._gate = asyncio.Lock()
        self._last = 0.0

    async def turn(self) -> None:
        async with self._gate:
            loop = asyncio.get_running_loop()
            await asyncio.sleep(max(self._last + self.gap - loop.time(), 0))
            self._last = loop.time()


SHUTDOWN_TIMEOUT_S = 0.3
# /-/healthy and /-/ready together answer at most 200 times a second: enough for any
# orchestrator, too few for a flood of them to starve the probes.
CHEAP_GAP_S = 0.005


# Content types kept rendered at once. An OpenMetrics Accept header names any version it
# likes, and each is a content type of its own: keeping them all would let one client
# grow the exporter by a rendered body per version.
FORMATS_KEPT = 4


@dataclass
class _Format:
    """One content type: its latest render (gzipped once, when a client asks) and
    the lines its Exposition has learnt."""

    exposition: Exposition
    rendered_at: float = float("-inf")
    generation: int = -1
    body: bytes = b""
    gzipped: bytes | None = None
    pending: asyncio.Future[bytes] | None = None


class Renderer:
    """/metrics without disturbing the probes: scrapes that arrive during a render
    share it, a render younger than `max_age` is served again, and responses leave
    at most one per `min_gap`, so twenty scrapers in a loop cost little more than
    Prometheus does. Bodies are gzipped once per render for clients that accept it.
    (It runs on the endpoints' own thread.)"""

    def __init__(self, backend: Backend, max_age: float = 0.5, min_gap: float = 0.01) -> None:
        self.backend, self.max_age, self.min_gap = backend, max_age, min_gap
        self._formats: dict[str, _Format] = {}  # content type -> its state, least recent first
        self._pacer = Pacer(min_gap)

    async def respond(self, request: web.Request) -> web.Response:
        await self._pacer.turn()
        fmt, content_type = await self.render(request.headers.get("Accept", ""))
        headers = {"Content-Type": content_type}
        body = fmt.body
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            if fmt.gzipped is None:
                fmt.gzipped = gzip.compress(body, 1)
            body = fmt.gzipped
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)

    def _format(self, content_type: str, encoder: Encoder) -> _Format:
        fmt = self._formats.pop(content_type, None)
        if fmt is None:
            fmt = _Format(Exposition(encoder))
            while len(self._formats) >= FORMATS_KEPT:
                del self._formats[next(iter(self._formats))]
        self._formats[content_type] = fmt  # now the most recent
        return fmt

    async def render(self, accept: str) -> tuple[_Format, str]:
        encoder, content_type = choose_encoder(accept)
        fmt = self._format(content_type, encoder)
        loop = asyncio.get_running_loop()
        generation = self.backend.generation()
        if loop.time() - fmt.rendered_at < self.max_age and fmt.generation == generation:
            return fmt, content_type
        pending = fmt.pending
        if pending is None:
            pending = fmt.pending = loop.create_future()
            try:
                registry = await self.backend.registry()
                started = loop.time()
                body = fmt.exposition.render(registry)
                fmt.rendered_at, fmt.generation, fmt.body, fmt.gzipped = started, generation, body, None
                pending.set_result(body)
            except Exception as exc:
                pending.set_exception(exc)
            finally:
                fmt.pending = None
        await asyncio.shield(pending)
        return fmt, content_type


@dataclass
class WebOptions:
    """How the endpoints are served (flags of the exporter command)."""

    render_max_age: float = 0.5
    enable_lifecycle: bool = False  # /-/reload answers 403 without it, as in Prometheus
    security: WebSecurity = field(default_factory=lambda: WebSecurity(None))


def make_app(backend: Backend, options: WebOptions | None = None) -> web.Application:
    options = options or WebOptions()
    renderer = Renderer(backend, max_age=options.render_max_age)
    cheap = Pacer(CHEAP_GAP_S)
    security = options.security

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        security.refresh()
        if not security.allow():
            return web.Response(status=429, text="Too Many Requests\n")
        transport = request.transport
        if not security.client_allowed(transport.get_extra_info("peercert") if transport else None):
            return web.Response(status=403, text="Forbidden: client certificate not allowed\n")
        if not security.authorized(request.headers.get("Authorization")):
            response: web.StreamResponse = web.Response(
                status=401, text="Unauthorized\n",
                headers={"WWW-Authenticate": 'Basic realm="nautilus-probe"'})
        else:
            response = await handler(request)
        response.headers.update(security.config.headers)
        return response

    async def metrics(request: web.Request) -> web.Response:
        return await renderer.respond(request)

    async def landing(_: web.Request) -> web.Response:
        return web.Response(text=LANDING.format(version=__version__), content_type="text/html")

    async def healthy(_: web.Request) -> web.Response:
        await cheap.turn()
        problem = await backend.health_problem()
        if problem is None:
            return web.Response(text="Healthy.\n")
        return web.Response(status=500, text=problem)

    async def ready(_: web.Request) -> web.Response:
        await cheap.turn()
        if await backend.is_ready():
            return web.Response(text="Ready.\n")
        return web.Response(status=503, text="Not ready.\n")

    async def reload(_: web.Request) -> web.Response:
        if not options.enable_lifecycle:
            return web.Response(status=403, text="Lifecycle API is not enabled.\n")
        try:
            changed = await backend.reload()
        except ReloadError as exc:
            log.error("reload rejected, keeping the running configuration: %s", str(exc).strip())
            return web.Response(status=500, text=str(exc))
        return web.Response(text="Reloaded.\n" if changed else "Unchanged.\n")

    app = web.Application(middlewares=[guard])
    app.add_routes([web.get("/", landing), web.get("/metrics", metrics),
                    web.get("/-/healthy", healthy), web.get("/-/ready", ready),
                    web.post("/-/reload", reload), web.put("/-/reload", reload)])
    return app


class Server:
    """The endpoints on their own thread and event loop: parsing requests, rendering
    and writing /metrics never hold up the probes' loop. While the server thread
    holds the GIL, the probes' thread gets it back within 0.2 ms."""

    def __init__(self, backend: Backend, listen: str, options: WebOptions) -> None:
        self.backend, self.listen, self.options = backend, listen, options
        self.loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self.loop.run_forever, name="web",
                                        daemon=True)

    def start(self) -> None:
        """Listen, or raise OSError naming the address."""
        sys.setswitchinterval(0.0002)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result()

    async def _start(self) -> None:
        host, port = parse_listen_address(self.listen)
        # A scrape still being answered at shutdown gets this long, not aiohttp's 60 s
        # (SIGTERM ends the process within signals.EXIT_WITHIN_S).
        runner = web.AppRunner(make_app(self.backend, self.options), access_log=None,
                               shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port,
                              ssl_context=self.options.security.serving_context()).start()
        except OSError as exc:
            await runner.cleanup()
            reason = exc.strerror or str(exc)
            if "address already in use" in str(exc):
                reason = "address already in use"
            raise OSError(exc.errno, f"cannot listen on {self.listen}: {reason}") from None
        self._runner = runner

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        close = getattr(self.backend, "close", None)
        if close is not None:
            await close()

    async def cleanup(self) -> None:
        """Stop serving and end the thread."""
        if self._thread.is_alive():
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._stop(), self.loop))
            self.loop.call_soon_threadsafe(self.loop.stop)
            await asyncio.to_thread(self._thread.join, 0.3)  # a daemon thread
        self.loop.close()


async def serve(backend: Backend, listen: str, options: WebOptions | None = None) -> Server:
    """The endpoints on `listen`, on their own thread; OSError when the address is taken."""
    server = Server(backend, listen, options or WebOptions())
    try:
        await asyncio.to_thread(server.start)
    except BaseException:
        await server.cleanup()
        raise
    return server


async def sighup_reloads(exporter: Exporter) -> None:
    """SIGHUP feeds the same reload as POST /-/reload."""
    try:
        await exporter.reload()
    except Exception as exc:
        log.error("reload rejected, keeping the running configuration: %s", exc)


_reloads: set[asyncio.Task[None]] = set()  # referenced until done


def install_sighup(exporter: Exporter) -> None:
    import signal

    def on_sighup() -> None:
        task = asyncio.get_running_loop().create_task(sighup_reloads(exporter))
        _reloads.add(task)
        task.add_done_callback(_reloads.discard)

    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_sighup)
