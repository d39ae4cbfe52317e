"""docker-compose.yml and the Dockerfile, checked structurally (no container engine here)."""

from __future__ import annotations

import shlex

import yaml

from .conftest import ROOT


def test_compose_services_and_mounts() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redis", "engines", "monolith", "exporter"} <= set(services)
    assert services["exporter"]["ports"] == ["9478:9478"]
    for name, svc in services.items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            assert (ROOT / source).exists(), f"{name} mounts missing {source}"
        for arg in svc.get("command", []):
            if arg.startswith("--config.file="):
                path = arg.split("=", 1)[1].removeprefix("/app/")
                assert (ROOT / path).is_file(), f"{name} reads missing {path}"
            if arg.startswith("--redis.url="):
                assert arg.endswith("redis://redis:6379/0")


def test_dockerfile_copies_what_exists() -> None:
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in shlex.split(line)[1:-1]:
                assert (ROOT / source).exists(), source
