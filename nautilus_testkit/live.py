"""The local stack (`nautilus-probe stack`) with a real Prometheus scraping it every
second and evaluating the generated rules: what the live tests and the dashboard
previews run against. Loopback only; both stop when the context exits."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import urllib.parse
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import yaml

from . import ROOT, free_port, http_get, wait_for

# Windows short enough for a test: rates over 10 s, `for:` of seconds, burn-rate
# windows a sixtieth of the real ones (1h -> 1m, 5m -> 5s, 3d -> 72m).
TEST_ALERTING = {
    "rate_window": "10s", "for": {"page": "2s", "ticket": "4s"},
    "burn_rates": {"page": [{"factor": 14.4, "long": "1m", "short": "5s"},
                            {"factor": 6, "long": "6m", "short": "30s"}],
                   "ticket": [{"factor": 3, "long": "24m", "short": "2m"},
                              {"factor": 1, "long": "72m", "short": "6m"}]},
}


@dataclass
class Live:
    api: str  # Prometheus
    redis_url: str
    exporter: str  # the stack's /metrics base URL
    thresholds: Path  # the thresholds file the rules were generated from
    rules: Path
    alertmanager: str | None = None  # its API base URL, when started


def query(api: str, expr: str) -> list:
    """An instant query's result vector from the Prometheus at `api`."""
    status, body = http_get(f"{api}/api/v1/query?query={urllib.parse.quote(expr)}", timeout=10)
    assert status == 200, body
    return json.loads(body)["data"]["result"]


def write_rules(tmp: Path, alerting: dict[str, Any] | None) -> tuple[Path, Path]:
    """The generated rules, from thresholds.yml with `alerting` overrides."""
    from alerts.__main__ import render  # the [mixin] extra is not needed for the exporter
    from alerts.thresholds import Thresholds

    data = yaml.safe_load((ROOT / "thresholds.yml").read_text())
    data["alerting"].update(alerting or {})
    thresholds = tmp / "thresholds.yml"
    thresholds.write_text(yaml.safe_dump(data))
    rules = tmp / "rules"
    rules.mkdir(exist_ok=True)
    for name, text in render(Thresholds.load(str(thresholds))).items():
        (rules / name).write_text(text)
    return thresholds, rules


def _alertmanager(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    """alerts/alertmanager.yml in a real Alertmanager (its webhooks go nowhere)."""
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    assert binary, "alertmanager is missing: run ./run setup"
    port, cluster = free_port(), free_port()
    proc = subprocess.Popen(
        [binary, f"--config.file={ROOT / 'alerts' / 'alertmanager.yml'}",
         f"--storage.path={tmp / 'am'}", f"--web.listen-address=127.0.0.1:{port}",
         f"--cluster.listen-address=127.0.0.1:{cluster}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: http_get(f"{url}/-/ready")[0] == 200, 30)
    return proc, url


def start_prometheus(tmp: Path, target: str, rules: Path,
                     alertmanager: str | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """A real Prometheus scraping `target` (host:port) every second and evaluating
    the rules in `rules` every second; the caller terminates it."""
    config: dict[str, Any] = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(rules / "recording.yml"), str(rules / "alerts.yml")],
        "scrape_configs": [{"job_name": "nautilus-probe",
                            "static_configs": [{"targets": [target]}]}]}
    if alertmanager:
        config["alerting"] = {"alertmanagers": [{"static_configs": [
            {"targets": [alertmanager.removeprefix("http://")]}]}]}
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    binary = shutil.which("prometheus")
    assert binary, "prometheus is missing: run ./run setup"
    port = free_port()
    proc = subprocess.Popen(
        [binary, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={tmp / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: http_get(f"{api}/-/ready")[0] == 200, 30)
    except BaseException:
        proc.terminate()
        proc.wait(20)
        raise
    return proc, api


@contextmanager
def live_stack(tmp: Path, duration: float = 240, alerting: dict[str, Any] | None = None,
               alertmanager: bool = False) -> Iterator[Live]:
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = tmp / "stack.log"
    out = open(log, "wb")
    # --no-prometheus: this harness runs its own, with the rules and windows it needs.
    stack = subprocess.Popen([sys.executable, "-m", "nautilus_probe", "stack", "--duration",
                              str(int(duration)), "--web.listen-address", f"127.0.0.1:{port}",
                              "--no-prometheus"],
                             cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    prometheus = am = None
    am_url = None
    try:
        if alertmanager:
            am, am_url = _alertmanager(tmp)
        wait_for(lambda: "Metrics: " in log.read_text() or stack.poll() is not None, 40)
        assert stack.poll() is None, log.read_text()
        redis_url = re.search(r"Redis at (redis://[^\s,]+)", log.read_text()).group(1)
        thresholds, rules = write_rules(tmp, TEST_ALERTING if alerting is None else alerting)
        prometheus, api = start_prometheus(tmp, f"127.0.0.1:{port}", rules, am_url)
        yield Live(api, redis_url, f"http://127.0.0.1:{port}", thresholds, rules, am_url)
    finally:
        for proc in (prometheus, stack, am):
            if proc is not None:
                proc.terminate()
                proc.wait(20)
        out.close()
