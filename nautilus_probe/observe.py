"""What the local stack shows a newcomer: a real Prometheus evaluating the generated
rules, an Alertmanager routing them to receivers that print what they get, and the
console lines for every knob change and alert state change."""

from __future__ import annotations

import http.server
import json
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast
from collections.abc import Callable

import redis
import yaml

from alerts.thresholds import Thresholds

from . import ROOT

RULES = ROOT / "alerts" / "generated"
ALERTMANAGER_CONFIG = ROOT / "alerts" / "alertmanager.yml"


def binaries() -> tuple[str, str] | None:
    """Prometheus's and Alertmanager's programs, when installed (Debian's names too)."""
    prom = shutil.which("prometheus")
    am = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    return (prom, am) if prom and am else None


def pushgateway_binary() -> str | None:
    """The Pushgateway's program, when installed: where load tests push their verdicts."""
    return shutil.which("prometheus-pushgateway") or shutil.which("pushgateway")


def pushgateway_argv(binary: str, listen: str, store: Path | None) -> list[str]:
    """The Pushgateway's command line with a store of its own: `store` (a file in the
    caller's own folder) or none (None: in memory). Never the program's default:
    Debian's writes /var/lib/prometheus/pushgateway.data, which every stack and test
    run on the machine would share and keep, so an old run's verdicts (or a test's
    fixtures) would show as this platform's."""
    return [binary, f"--web.listen-address={listen}",
            f"--persistence.file={store if store is not None else ''}"]


def subject(labels: dict[str, str]) -> str:
    """What an alert is about, for a console line: the engine, the WebSocket endpoint,
    the capacity target ("system throughput_ops_per_second", "risk error_ratio"), or
    the exporter instance (and its loop)."""
    if labels.get("target"):
        return f"{labels.get('scope', '')} {labels['target']}".strip()
    for name in ("engine", "endpoint"):
        if labels.get(name):
            return labels[name]
    return " ".join(labels[k] for k in ("instance", "loop") if labels.get(k))


def _clock(stamp: str) -> float | None:
    """Seconds since the epoch of Alertmanager's RFC 3339 time (nanoseconds allowed)."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", stamp or "")
    if m is None:
        return None
    at = datetime.fromisoformat(m.group(1) + (m.group(3).replace("Z", "+00:00")))
    return at.timestamp() + float(m.group(2) or 0)


def _lasted(seconds: float) -> str:
    """A duration as a person reads it: 45 s, 9 min 36 s, 2 h 5 min."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


def notification_line(route: str, alert: dict[str, Any]) -> str:
    """The console line of one alert in a notification: what fires, with its summary;
    or what resolved, since when and for how long (its firing summary would say a
    fault is on when it has ended)."""
    labels, status = alert.get("labels", {}), alert.get("status", "")
    head = f"{route.upper()} {status}: {labels.get('alertname')} {subject(labels)}".rstrip()
    if status != "resolved":
        return f"{head} — {alert.get('annotations', {}).get('summary', '')}"
    start, end = _clock(alert.get("startsAt", "")), _clock(alert.get("endsAt", ""))
    if start is None or end is None:
        return f"{head} — no longer firing"
    return (f"{head} — no longer firing (it fired at "
            f"{time.strftime('%H:%M:%S', time.localtime(start))}, for {_lasted(end - start)})")


class Receiver:
    """The pager and the ticket queue of the local stack: a webhook that prints each
    notification Alertmanager delivers, one line per alert."""

    def __init__(self, say: Callable[[str], None]) -> None:
        # Each notification as delivered: the receiver (pager, ticket) and its alerts (a
        # group's alerts arrive together, one line each).
        self.notifications: list[tuple[str, list[dict[str, Any]]]] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.end_headers()
                try:
                    data = json.loads(body)
                except ValueError:
                    return
                route = self.path.strip("/") or "receiver"
                receiver.notifications.append((route, list(data.get("alerts", []))))
                for alert in data.get("alerts", []):
                    say(notification_line(route, alert))

            def log_message(self, *_: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# On one machine nobody batches notifications: the first page leaves 5 s after an alert
# fires (the shipped 30 s is for pagers that should not ring twice in a minute), and a
# resolution 5 s after Prometheus resolves it (the shipped group_interval: within 1 min).
# The ticket route keeps its own 2 minutes: a page arriving meanwhile inhibits the ticket.
LOCAL_GROUP_WAIT = "5s"
LOCAL_GROUP_INTERVAL = "5s"


def alertmanager_config(receiver_port: int, local: bool = True) -> dict[str, Any]:
    """alerts/alertmanager.yml with its webhooks pointed at the local receiver and,
    when `local`, the local stack's timing."""
    config: dict[str, Any] = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    if local:
        config["route"]["group_wait"] = LOCAL_GROUP_WAIT
        config["route"]["group_interval"] = LOCAL_GROUP_INTERVAL
    for rec in config["receivers"]:
        for hook in rec.get("webhook_configs", []):
            hook["url"] = f"http://127.0.0.1:{receiver_port}/{rec['name']}"
    return config


def pushgateway_scrape(target: str) -> dict[str, Any]:
    """Prometheus's job for the Pushgateway: honor_labels keeps the pushed job label
    ("nautilus-capacity")."""
    return {"job_name": "pushgateway", "honor_labels": True,
            "static_configs": [{"targets": [target]}]}


def exporter_job() -> str:
    """The job label the generated rules and dashboards select (thresholds.yml)."""
    return Thresholds.load(str(ROOT / "thresholds.yml")).jobs.exporter


def prometheus_config(exporter: str, rules: Path, alertmanager: str | None,
                      pushgateway: str | None = None, interval: str = "5s") -> dict[str, Any]:
    """Prometheus's settings: deploy/prometheus/prometheus.yml (written from these by
    `python -m nautilus_probe.compose`), the local stack's and the live tests'."""
    scrapes: list[dict[str, Any]] = [{"job_name": exporter_job(),
                                      "static_configs": [{"targets": [exporter]}]}]
    if pushgateway:
        scrapes.append(pushgateway_scrape(pushgateway))
    config: dict[str, Any] = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(rules / "recording.yml"), str(rules / "alerts.yml")]}
    if alertmanager:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    config["scrape_configs"] = scrapes
    return config


@dataclass
class AlertWatch:
    """Prints every alert's state change (pending, firing, resolved) as Prometheus sees it."""

    api: str
    say: Callable[[str], None]
    states: dict[tuple[str, ...], str] = field(default_factory=dict)

    def poll(self) -> None:
        try:
            with urllib.request.urlopen(f"{self.api}/api/v1/alerts", timeout=2) as resp:
                alerts = json.loads(resp.read())["data"]["alerts"]
        except (OSError, ValueError, KeyError):
            return
        now: dict[tuple[str, ...], str] = {}
        for a in alerts:
            labels = a["labels"]
            key: tuple[str, ...] = (labels.get("alertname", ""), labels.get("severity", ""),
                                    subject(labels))
            now[key] = a["state"]
        for key, state in sorted(now.items()):
            if self.states.get(key) != state:
                self.say(f"alert {state}: {key[0]} {key[2]} ({key[1]})".replace("  ", " "))
        for key in sorted(set(self.states) - set(now)):
            was = "resolved" if self.states[key] == "firing" else "no longer pending"
            self.say(f"alert {was}: {key[0]} {key[2]} ({key[1]})".replace("  ", " "))
        self.states = now


@dataclass
class KnobWatch:
    """Prints every change of the synthetic engines' run-time knobs."""

    redis_url: str
    prefix: str
    say: Callable[[str], None]
    seen: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # One client for every poll (its pool reconnects after a Redis restart).
        self._redis = redis.Redis.from_url(self.redis_url, decode_responses=True,
                                           socket_timeout=1)

    def poll(self) -> None:
        try:
            now: dict[str, str] = {k: cast(str, self._redis.get(k)) or "" for k in
                   self._redis.scan_iter(f"{self.prefix}:*:knobs")}
        except redis.RedisError:
            return
        for key in sorted(set(now) | set(self.seen)):
            engine = key.split("{", 1)[-1].split("}", 1)[0]
            if key not in now:
                self.say(f"knobs: {engine} cleared (back to its configured behaviour)")
            elif self.seen.get(key) != now[key]:
                self.say(f"knobs: {engine} {now[key]}")
        self.seen = now


@dataclass
class Observing:
    """What start() started, and where."""

    procs: list[subprocess.Popen[bytes]]
    receiver: Receiver
    prometheus: str  # base URLs
    alertmanager: str
    pushgateway: str | None  # None when not installed


def start(tmp: Path, exporter: str, rules: Path, say: Callable[[str], None],
          spawn: Callable[..., subprocess.Popen[bytes]]) -> Observing:
    """Alertmanager, the Pushgateway (when installed), then Prometheus; their logs go
    to files in `tmp`."""
    from exporter.listen import free_port

    progs = binaries()
    assert progs is not None
    prom, am = progs
    receiver = Receiver(say)
    am_port, am_cluster, prom_port = free_port(), free_port(), free_port()
    procs = []
    pushgateway = None
    if (pg := pushgateway_binary()) is not None:
        pg_port = free_port()
        pushgateway = f"127.0.0.1:{pg_port}"
        # Its store lives and dies with the stack's folder: a fresh stack shows no
        # verdict until a load test runs against it.
        procs.append(spawn(pushgateway_argv(pg, pushgateway, tmp / "pushgateway.data"),
                           stdout=open(tmp / "pushgateway.log", "wb"),
                           stderr=subprocess.STDOUT))
    (tmp / "alertmanager.yml").write_text(yaml.safe_dump(alertmanager_config(receiver.port)))
    am_proc = spawn([am, f"--config.file={tmp / 'alertmanager.yml'}",
                     f"--storage.path={tmp / 'alertmanager'}",
                     f"--web.listen-address=127.0.0.1:{am_port}",
                     f"--cluster.listen-address=127.0.0.1:{am_cluster}"],
                    stdout=open(tmp / "alertmanager.log", "wb"), stderr=subprocess.STDOUT)
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(
        prometheus_config(exporter, rules, f"127.0.0.1:{am_port}", pushgateway)))
    prom_proc = spawn([prom, f"--config.file={tmp / 'prometheus.yml'}",
                       f"--storage.tsdb.path={tmp / 'prometheus'}",
                       f"--web.listen-address=127.0.0.1:{prom_port}"],
                      stdout=open(tmp / "prometheus.log", "wb"), stderr=subprocess.STDOUT)
    return Observing([*procs, am_proc, prom_proc], receiver, f"http://127.0.0.1:{prom_port}",
                     f"http://127.0.0.1:{am_port}",
                     f"http://{pushgateway}" if pushgateway else None)


def ticker(every: float) -> Callable[[], bool]:
    """True once per `every` seconds."""
    next_at = [0.0]

    def due() -> bool:
        now = time.monotonic()
        if now < next_at[0]:
            return False
        next_at[0] = now + every
        return True
    return due
