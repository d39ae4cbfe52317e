"""docker-compose.yml and what it mounts, checked structurally (no container engine here)."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from dashboards.panels import DATASOURCE, DEFAULT_DATASOURCE_UID

from nautilus_probe import compose
from nautilus_testkit import ROOT

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def test_the_full_stack_is_there() -> None:
    assert set(SERVICES) == {"redis", "engines", "monolith", "ws-engine-1", "ws-engine-2",
                             "ws-engine-3", "exporter", "prometheus", "alertmanager", "pushgateway",
                             "grafana"}
    ports = {name: svc.get("ports", []) for name, svc in SERVICES.items()}
    assert ports["exporter"] == ["9478:9478"]
    assert [ports[f"ws-engine-{i}"] for i in (1, 2, 3)] == [["8080:8080"], ["8081:8081"], ["8082:8082"]]
    assert ports["prometheus"] == ["9090:9090"] and ports["alertmanager"] == ["9093:9093"]
    assert ports["grafana"] == ["3000:3000"] and ports["pushgateway"] == ["9091:9091"]
    # Prometheus scrapes the Pushgateway keeping the pushed job label (the capacity
    # row and alerts select job="nautilus-capacity").
    prom = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    [job] = [j for j in prom["scrape_configs"] if j["job_name"] == "pushgateway"]
    assert job["honor_labels"] is True
    assert job["static_configs"] == [{"targets": ["pushgateway:9091"]}]


def test_every_mounted_file_exists() -> None:
    for name, svc in SERVICES.items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            assert (ROOT / source).exists(), f"{name} mounts missing {source}"
        for arg in svc.get("command", []):
            if arg.startswith("--config.file=/app/"):
                path = arg.split("=", 1)[1].removeprefix("/app/")
                assert (ROOT / path).is_file(), f"{name} reads missing {path}"


def test_compose_exporter_config_follows_the_shipped_one() -> None:
    # Derived, not copied: the file is what `python -m nautilus_probe.compose` writes ...
    assert (ROOT / compose.COMPOSE).read_text() == compose.derive(
        (ROOT / compose.SHIPPED).read_text()), "run python -m nautilus_probe.compose"
    # ... which is the shipped plan with the engines' service names.
    shipped = yaml.safe_load((ROOT / "config" / "exporter.yml").read_text())
    derived = yaml.safe_load((ROOT / "deploy" / "compose" / "exporter.yml").read_text())
    endpoints = derived["websocket"].pop("endpoints")
    shipped["websocket"].pop("endpoints")
    health = derived["http"].pop("targets")
    shipped["http"].pop("targets")
    ports = derived["tcp"].pop("targets")
    shipped["tcp"].pop("targets")
    assert derived == shipped
    assert endpoints == [f"ws://ws-engine-{i}:{8079 + i}/ws/engine/status" for i in (1, 2, 3)]
    assert health == {"websocket": [f"http://ws-engine-{i}:{8079 + i}/health" for i in (1, 2, 3)]}
    assert ports == {"websocket": [f"ws-engine-{i}:{8079 + i}" for i in (1, 2, 3)]}


def test_prometheus_config_loads_the_generated_rules(tmp_path: Path) -> None:
    text = (ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text()
    mounts = dict(v.split(":")[:2] for v in SERVICES["prometheus"]["volumes"])
    for source, target in mounts.items():
        text = text.replace(target, str(ROOT / source))
    config = yaml.safe_load(text)
    assert config["scrape_configs"][0]["static_configs"][0]["targets"] == ["exporter:9478"]
    # Derived: the job the generated rules and dashboards select (thresholds.yml).
    assert (ROOT / compose.PROMETHEUS).read_text() == compose.prometheus(), \
        "run python -m nautilus_probe.compose"
    assert config["scrape_configs"][0]["job_name"] == "nautilus-probe"
    path = tmp_path / "prometheus.yml"
    path.write_text(text)
    promtool = shutil.which("promtool")
    assert promtool
    check = subprocess.run([promtool, "check", "config", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_grafana_is_provisioned_with_the_dashboards_datasource() -> None:
    ds = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    [source] = ds["datasources"]
    assert (source["uid"], source["type"]) == (DEFAULT_DATASOURCE_UID, DATASOURCE["type"])
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/nautilus.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    assert f"./dashboards/generated:{path}:ro" in SERVICES["grafana"]["volumes"]


def _dockerfile_copies() -> list[str]:
    out = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            out += shlex.split(line)[1:-1]
    return out


def test_dockerfile_copies_what_exists() -> None:
    for source in _dockerfile_copies():
        assert (ROOT / source).exists(), source


def test_the_image_install_is_plain_and_complete(tmp_path: Path) -> None:
    """What the Dockerfile copies, installed without extras, runs the image's command;
    no dashboard code and no grafanalib or matplotlib is in it."""
    text = (ROOT / "Dockerfile").read_text()
    assert "pip install --no-cache-dir ./wire . " in text
    assert "[" not in text.split("pip install")[1].split("\n")[0]
    assert "dashboards" not in _dockerfile_copies()
    src = tmp_path / "app"
    src.mkdir()
    for source in _dockerfile_copies():
        copy = shutil.copytree if (ROOT / source).is_dir() else shutil.copy
        copy(ROOT / source, src / source, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                              if (ROOT / source).is_dir() else {}))
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--target", str(site), str(src / "wire"), str(src)],
                   check=True, capture_output=True, timeout=300)
    # -S: no site processing, so this checkout's editable install cannot fill a gap;
    # the dependencies come from the test environment's site-packages.
    deps = next(p for p in sys.path if p.endswith("site-packages"))
    env = {**os.environ, "PYTHONPATH": f"{site}:{deps}"}
    check = subprocess.run([sys.executable, "-S", "-m", "nautilus_probe", "exporter",
                            "--config.check", "--config.file", "config/exporter.yml"],
                           cwd=src, env=env, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and "OK (15 probe series; memory bound" in check.stdout, check.stderr
    installed = {p.name for p in site.iterdir()}
    assert {"exporter", "nautilus_wire", "synthetic", "nautilus_probe"} <= installed
    assert not installed & {"dashboards", "grafanalib", "matplotlib", "nautilus_testkit"}


def test_the_exporter_healthcheck_follows_healthy(tmp_path: Path) -> None:
    """The compose healthcheck, run as Docker would, against /-/healthy answering
    200 and then 500."""
    import http.server
    import threading

    check = SERVICES["exporter"]["healthcheck"]["test"]
    assert check[0] == "CMD" and "/-/healthy" in " ".join(check)
    status = {"code": 200}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status["code"] if self.path == "/-/healthy" else 404)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    argv = [sys.executable if a == "python" else a.replace("9478", str(server.server_port))
            for a in check[1:]]
    try:
        assert subprocess.run(argv, capture_output=True, timeout=10).returncode == 0
        status["code"] = 500
        assert subprocess.run(argv, capture_output=True, timeout=10).returncode != 0
    finally:
        server.shutdown()
