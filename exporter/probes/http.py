"""HTTP health probing of the engines' REST endpoints: each target is asked
`GET <url>` once per interval on a fresh connection, as a client that just
arrived would; a 2xx answer within the timeout is a success. Its latency runs
from the scheduled time to the end of the body (or its first MAX_BODY bytes).

    http:
      interval: 5s
      timeout: 2s
      targets:                               # engine: its health URL, or a list of them
        risk: http://127.0.0.1:8001/health
        websocket: [http://ws-1:8080/health, http://ws-2:8081/health]
      ca_file: /etc/nautilus/ca.pem          # optional, for https targets
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from enum import Enum
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from nautilus_wire.failure_log import FailureLog
from nautilus_wire.redact import redact

from ..costs import Cost
from ..metrics import LATENCY_BUCKETS, counter, gauge, histogram, remove
from ..schedule import clock
from nautilus_config.checks import at_most, duration, name, Node, split_url, string
from nautilus_config.errors import ConfigError
from .base import MAX_TIMEOUT_S, Context, Panel, ProbeKind, client_tls, one_section
from .targets import Every, shard_targets, target_limit

log = logging.getLogger(__name__)

MAX_TARGETS = 500  # each is a handful of series
MAX_BODY = 65_536  # bytes of a health answer read (and timed); the rest is not awaited
TLS_KEYS = ("ca_file", "cert_file", "key_file")
TARGET = ("engine", "target")


class HttpFailure(str, Enum):
    """Why a health probe failed: the `reason` label of http_failures_total."""

    REFUSED = "refused"  # nothing listens on the port
    TIMEOUT = "timeout"  # no complete answer within the timeout
    STATUS = "status"  # an answer whose status is not 2xx
    TLS = "tls"  # the TLS handshake or certificate check failed
    ERROR = "error"  # anything else: DNS, a reset connection, a broken answer


@dataclass(frozen=True)
class HttpTarget:
    engine: str  # the `engine` label
    url: str
    label: str  # the `target` label: the URL without its query or password (secrets)


@dataclass(frozen=True)
class HttpSpec:
    targets: tuple[HttpTarget, ...]
    interval: float
    timeout: float
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


@dataclass(slots=True)
class TargetSeries:
    """The children of one target, bound once."""

    requests: Any
    duration: Any
    status_code: Any
    up: Any
    failures: dict[HttpFailure, Any]


@dataclass
class HttpMetrics:
    requests: Counter
    failures: Counter
    duration: Histogram
    status_code: Gauge
    up: Gauge

    def init_target(self, t: HttpTarget) -> TargetSeries:
        """Every series of a target (a never-seen failure reads 0)."""
        return TargetSeries(
            requests=self.requests.labels(t.engine, t.label),
            duration=self.duration.labels(t.engine, t.label),
            status_code=self.status_code.labels(t.engine, t.label),
            up=self.up.labels(t.engine, t.label),
            failures={r: self.failures.labels(t.engine, t.label, r.value) for r in HttpFailure})

    def remove_target(self, t: HttpTarget) -> None:
        for family in (self.requests, self.duration, self.status_code, self.up):
            remove(family, t.engine, t.label)
        for reason in HttpFailure:
            remove(self.failures, t.engine, t.label, reason.value)


def build_metrics(reg: CollectorRegistry) -> HttpMetrics:
    return HttpMetrics(
        requests=counter(reg, "http_requests", "HTTP health probes sent.", TARGET),
        failures=counter(reg, "http_failures", "HTTP health probes that failed, by reason: "
                         "refused, timeout, status (not 2xx), tls, error.", (*TARGET, "reason")),
        duration=histogram(reg, "http_duration_seconds", "Successful HTTP health probes, from "
                           "the scheduled time to the end of the answer.", TARGET,
                           LATENCY_BUCKETS),
        status_code=gauge(reg, "http_status_code", "HTTP status of the last health probe's "
                          "answer (0: no answer).", TARGET),
        up=gauge(reg, "http_up", "1 when the last HTTP health probe succeeded.", TARGET))


def classify(exc: BaseException) -> HttpFailure:
    """The reason label of an exception raised while asking a target."""
    if isinstance(exc, TimeoutError):  # aiohttp's timeouts subclass it
        return HttpFailure.TIMEOUT
    if isinstance(exc, (aiohttp.ClientSSLError, ssl.SSLError)):
        return HttpFailure.TLS
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(
            exc.os_error, ConnectionRefusedError):
        return HttpFailure.REFUSED
    return HttpFailure.ERROR


class HttpProbe:
    kind = "http"

    def __init__(self, spec: HttpSpec, ctx: Context) -> None:
        self.spec = spec
        self.m: HttpMetrics = ctx.group
        self.supervisor = ctx.supervisor
        self.series = {t: self.m.init_target(t) for t in spec.targets}
        https = any(t.url.startswith("https://") for t in spec.targets)
        self._tls = client_tls(spec.ca_file, spec.cert_file, spec.key_file) if https else None
        self._session: aiohttp.ClientSession | None = None
        self.warn = FailureLog(log, "HTTP health probe of")
        self.every = Every(lambda: self.spec.interval, self._probe_all)

    def apply(self, spec: HttpSpec) -> bool:
        """The same targets and TLS files: applied in place; otherwise replaced (a removed
        target's series go with the old probe)."""
        if (spec.targets, spec.ca_file, spec.cert_file, spec.key_file) != (
                self.spec.targets, self.spec.ca_file, self.spec.cert_file, self.spec.key_file):
            return False
        if spec.interval != self.spec.interval:
            self.every.replan()  # the loop reschedules now, not after the old interval
        self.spec = spec
        return True

    async def start(self) -> None:
        # A fresh connection per probe (no keep-alive): a server that closes idle
        # connections must never read as a failure, and a new client's cost is measured.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True, limit=0, ssl=self._tls or True),
            auto_decompress=False)

    async def run(self, stop: asyncio.Event) -> None:
        await self.supervisor.run(self.kind, lambda: self.every.run(stop), stop)

    async def _probe_all(self, due: float) -> None:
        await asyncio.gather(*(self.probe(t, due) for t in self.spec.targets))

    async def probe(self, target: HttpTarget, due: float) -> None:
        """Ask one target once; every outcome is counted, none is raised."""
        s = self.series[target]
        s.requests.inc()
        assert self._session is not None, "start() first"
        try:
            async with asyncio.timeout(self.spec.timeout):
                async with self._session.get(target.url, allow_redirects=False) as resp:
                    await _read_body(resp)
                    status = resp.status
        except Exception as exc:  # every failure is a counted reason, the loop goes on
            reason = classify(exc)
            s.failures[reason].inc()
            s.status_code.set(0)
            s.up.set(0)
            self.warn.failed(target.label, f"{reason.value}: {exc!r}")
            return
        self.warn.recovered(target.label)
        s.status_code.set(status)
        if 200 <= status < 300:
            s.duration.observe(clock() - due)
            s.up.set(1)
        else:
            s.failures[HttpFailure.STATUS].inc()
            s.up.set(0)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        for target in self.series:
            self.m.remove_target(target)


async def _read_body(resp: aiohttp.ClientResponse) -> None:
    """Read the answer to its end, or its first MAX_BODY bytes (one read() returns
    what has arrived, which may be only the first chunk)."""
    got = 0
    while got < MAX_BODY and (chunk := await resp.content.read(MAX_BODY - got)):
        got += len(chunk)


def _target(path: str, engine: str, value: Any) -> HttpTarget:
    url = string(path, value)
    if not url.startswith(("http://", "https://")):
        raise ConfigError(path, f"must be an http:// or https:// URL, got {url!r}")
    split_url(path, url)
    return HttpTarget(engine, url, redact(url.split("?", 1)[0]))


def _targets(node: Node) -> tuple[HttpTarget, ...]:
    """engine: URL, or engine: [URL, ...] (several instances of one engine)."""
    out: list[HttpTarget] = []
    for engine, value in node.items():
        path = node.sub(engine)
        name(path, engine)
        urls = value if isinstance(value, list) else [value]
        paths = [f"{path}[{i}]" for i in range(len(urls))] if isinstance(value, list) else [path]
        if not urls:
            raise ConfigError(path, "must be a URL or a non-empty list of URLs")
        for p, url in zip(paths, urls, strict=True):
            target = _target(p, engine, url)
            if any((t.engine, t.label) == (engine, target.label) for t in out):
                raise ConfigError(p, f"repeats {target.label}")
            out.append(target)
    return tuple(out)


def parse(node: Node) -> HttpSpec:
    targets_node = node.node("targets")
    targets = _targets(targets_node)
    if not targets:
        raise ConfigError(targets_node.path, "must map at least one engine to its health URL")
    interval = node.get("interval", 5.0, at_most(MAX_TIMEOUT_S, duration))
    timeout = node.get("timeout", min(2.0, interval), at_most(MAX_TIMEOUT_S, duration))
    if timeout > interval:
        raise ConfigError(node.sub("timeout"), f"must not exceed {node.sub('interval')} "
                          f"({interval:g}s), got {timeout:g}s")
    tls = {key: node.get(key, None, string) for key in TLS_KEYS}
    node.done()
    given = [key for key in TLS_KEYS if tls[key] is not None]
    if given and not any(t.url.startswith("https://") for t in targets):
        raise ConfigError(node.sub(given[0]), "needs at least one https:// target")
    if (tls["cert_file"] is None) != (tls["key_file"] is None):
        raise ConfigError(node.sub("cert_file"), "cert_file and key_file go together")
    if given:
        try:  # unreadable files are a config error now, not a failure at the first probe
            client_tls(tls["ca_file"], tls["cert_file"], tls["key_file"])
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(node.sub(given[0]), f"cannot load the TLS files: {exc}") from None
    return HttpSpec(targets, interval, timeout, **tls)


PANELS = (
    Panel("REST health", (("min({P}_http_up{sel})", "worst target"),), up=True,
          description="UP when every health URL of the engine answered 2xx in time at its "
          "last probe. No data: the engine has no `http:` target."),
    Panel("REST health latency p99", ((
        "(histogram_quantile(0.99, sum by (target, le) (rate({P}_http_duration_seconds_bucket"
        "{sel}[{rate}]))) >= 0)", "{{target}}"),), "s",
        "Successful health probes, per health URL: connect, request and answer, from the "
        "scheduled time."),
    Panel("REST health failures by reason", (
        ("sum by (reason) (rate({P}_http_failures_total{sel}[{rate}]))", "{{reason}}"),
        ("sum(rate({P}_http_requests_total{sel}[{rate}]))", "probes sent")), "ops",
        "refused, timeout, status (not 2xx), tls, error."),
    Panel("REST health: last HTTP status", (
        ("max by (target) ({P}_http_status_code{sel})", "{{target}}"),), "none",
        "0: no answer (refused, timed out, TLS or broken)."),
)

KIND = ProbeKind("http", build=HttpProbe, shard=shard_targets, sections=("http",),
                 row="REST health endpoints (HTTP probes)", panels=PANELS,
                 parse=one_section("http", parse), loops=("http",),
                 metrics=build_metrics, memory=lambda spec: Cost(series=len(spec.targets)),
                 limit=target_limit("http.targets", MAX_TARGETS))
