"""The local stack (`nautilus-probe stack`) with a real Prometheus scraping it every
second and evaluating the generated rules: what the live tests and the dashboard
previews run against. Loopback only; both stop when the context exits."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from collections.abc import Iterator

import yaml

from alerts.query import PrometheusAPI

from . import ROOT, free_port, http_get, stack_flags, wait_for

# Windows short enough for a test: rates over 10 s, `for:` of seconds, burn-rate
# windows a sixtieth of the real ones (1h -> 1m, 3d -> 72m), but for the shortest,
# which would hold a scrape or five: the present a page states (1m) over 5 s, and
# the recent window (5m, also the fast page's short one) over 10 s. The present
# stays shorter than the recent window, as shipped: a cleared fault's page says it
# has recovered while the recent window still holds it open.
TEST_ALERTING = {
    "rate_window": "10s", "for": {"page": "2s", "ticket": "4s"},
    "recent": "10s", "current": "5s", "keep_firing_for": {"page": "4s", "ticket": "2s"},
    "burn_rates": {"page": [{"factor": 14.4, "long": "1m", "short": "10s"},
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
    pushgateway: str | None = None  # its base URL, when started


def query(api: str, expr: str) -> list[dict[str, Any]]:
    """An instant query's result vector from the Prometheus at `api` (QueryError if it
    refuses the query)."""
    return PrometheusAPI(api, timeout=10).instant(expr)


def capacity_tables(board: dict[str, Any]) -> list[dict[str, Any]]:
    """The overview's capacity tables, one per kind of target (dashboards/build.py)."""
    return [p for p in board["panels"] if p["title"].startswith("Capacity targets")]


def capacity_rows(api: str, board: dict[str, Any], ref: str = "A") -> list[dict[str, Any]]:
    """Every capacity table's `ref` column as Prometheus answers it now (A: the
    verdicts): each row's labels and its "value"."""
    return [{**r["metric"], "value": float(r["value"][1])}
            for p in capacity_tables(board) for t in p["targets"] if t["refId"] == ref
            for r in query(api, t["expr"])]


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


def start_alertmanager(tmp: Path, config: Path = ROOT / "alerts" / "alertmanager.yml"
                       ) -> tuple[subprocess.Popen[bytes], str]:
    """A real Alertmanager with `config` (by default alerts/alertmanager.yml, whose
    webhooks go nowhere), its storage in `tmp`: (process, base URL)."""
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    assert binary, "alertmanager is missing: run ./run setup"
    port, cluster = free_port(), free_port()
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.path={tmp / 'am'}",
         f"--web.listen-address=127.0.0.1:{port}",
         f"--cluster.listen-address=127.0.0.1:{cluster}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: http_get(f"{url}/-/ready")[0] == 200, 30)
    return proc, url


def start_pushgateway() -> tuple[subprocess.Popen[bytes], str]:
    """A real Pushgateway on a free loopback port, its store in memory (a test's
    verdicts never outlive it): (process, host:port)."""
    from nautilus_probe.observe import pushgateway_argv, pushgateway_binary

    binary = pushgateway_binary()
    assert binary, "the Pushgateway is missing: run ./run setup"
    at = f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen(pushgateway_argv(binary, at, None),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: http_get(f"http://{at}/-/ready")[0] == 200, 30)
    return proc, at


def start_prometheus(tmp: Path, target: str, rules: Path, alertmanager: str | None = None,
                     pushgateway: str | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """A real Prometheus scraping `target` (host:port) and `pushgateway` (host:port,
    keeping the pushed job labels) every second and evaluating the rules in `rules`
    every second; the caller terminates it."""
    from nautilus_probe.observe import prometheus_config

    config = prometheus_config(target, rules, alertmanager.removeprefix("http://") if alertmanager
                               else None, pushgateway, interval="1s")
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
               alertmanager: bool = False, pushgateway: bool = False) -> Iterator[Live]:
    tmp.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = tmp / "stack.log"
    out = open(log, "wb")
    # The shipped engines fail 0.1 % of requests at random; here every failure is one a
    # test injected (one random error among a young stack's few probes of a slow engine
    # reads as an availability below the objective).
    engines = yaml.safe_load((ROOT / "config" / "synthetic.yml").read_text())
    engines["defaults"]["error_ratio"] = 0
    (tmp / "synthetic.yml").write_text(yaml.safe_dump(engines))
    # --no-prometheus: this harness runs its own, with the rules and windows it needs.
    stack = subprocess.Popen([sys.executable, "-m", "nautilus_probe", "stack", "--duration",
                              str(int(duration)), "--web.listen-address", f"127.0.0.1:{port}",
                              "--synthetic.config-file", str(tmp / "synthetic.yml"),
                              "--no-prometheus", *stack_flags()],
                             cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    prometheus = am = pg = None
    am_url = pg_at = None
    try:
        if alertmanager:
            am, am_url = start_alertmanager(tmp)
        if pushgateway:
            pg, pg_at = start_pushgateway()
        wait_for(lambda: "Metrics: " in log.read_text() or stack.poll() is not None, 40)
        assert stack.poll() is None, log.read_text()
        found = re.search(r"Redis at (redis://[^\s,]+)", log.read_text())
        assert found is not None, log.read_text()
        redis_url = found.group(1)
        thresholds, rules = write_rules(tmp, TEST_ALERTING if alerting is None else alerting)
        prometheus, api = start_prometheus(tmp, f"127.0.0.1:{port}", rules, am_url, pg_at)
        yield Live(api, redis_url, f"http://127.0.0.1:{port}", thresholds, rules, am_url,
                   f"http://{pg_at}" if pg_at else None)
    finally:
        for proc in (prometheus, stack, am, pg):
            if proc is not None:
                proc.terminate()
                proc.wait(20)
        out.close()


RATE_INTERVAL = "15s"  # $__rate_interval for a 1 s scrape


def substitute(expr: str, engine: str = "risk") -> str:
    """The dashboards' variables as Grafana would fill them (All for job and instance)."""
    return (expr.replace("$__rate_interval", RATE_INTERVAL).replace("$engine", engine)
            .replace('"$job"', '".+"').replace('"$instance"', '".+"'))


def cell_colour(props: dict[str, Any], value: float) -> str | None:
    """The colour Grafana gives `value` under a panel's (or column's) mappings and
    threshold steps; None when it is not coloured."""
    from dashboards.panels import mapped  # the [mixin] extra is not needed for the exporter

    if (hit := mapped(value, props.get("mappings"))).get("color"):
        return str(hit["color"])
    steps = (props.get("thresholds") or {}).get("steps")
    if not steps:
        return None
    return str([s["color"] for s in steps if s["value"] is None or value >= s["value"]][-1])


def red_cells(api: str, board: dict[str, Any]) -> list[str]:
    """Every stat and table cell of `board` that shows red (or NaN) on the live values
    of the Prometheus at `api`: what a person would see on the dashboard."""
    bad = []
    for panel in board["panels"]:
        if panel["type"] not in ("stat", "table"):
            continue
        for target in panel.get("targets", []):
            if panel["type"] == "stat":
                defaults = panel["fieldConfig"]["defaults"]
                if panel["options"].get("colorMode") == "none":
                    continue
                props = {"mappings": defaults.get("mappings"),
                         "thresholds": defaults.get("thresholds")}
            else:
                matching = [{p["id"]: p["value"] for p in o["properties"]}
                            for o in panel["fieldConfig"]["overrides"]
                            if o["matcher"]["options"] == f"Value #{target['refId']}"]
                props = matching[0] if matching else {}
                if "custom.cellOptions" not in props:
                    continue  # a column that is not coloured
            for series in query(api, substitute(target["expr"])):
                value = float(series["value"][1])
                where = f"{panel['title']} {series['metric']}"
                if value != value:
                    bad.append(f"{where}: NaN")
                elif cell_colour(props, value) == "red":
                    bad.append(f"{where}: {value:g}")
    return bad


def render_dashboards(thresholds: Path) -> dict[str, dict[str, Any]]:
    """The dashboards as `python -m dashboards` would generate them from `thresholds`."""
    from alerts.thresholds import Thresholds
    from dashboards.__main__ import render

    return {name.removesuffix(".json"): json.loads(text)
            for name, text in render(Thresholds.load(str(thresholds))).items()}
