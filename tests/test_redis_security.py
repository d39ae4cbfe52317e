"""Redis over TLS with a client certificate, and ACL users limited to the protocol's
keys and commands (the ones docs/security.md gives), against real redis-servers."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
import yaml

from nautilus_testkit import RedisServer, free_port, http_get, wait_for
from nautilus_testkit.exposition import value
from nautilus_testkit.pki import make_pki

from .conftest import write_config, write_engines

# The minimal ACLs of docs/security.md, word for word.
ACL_PROBE = ("~nautilus:probe:* %R~metrics:* +ping +hello +xadd +xread +mget "
             "+xinfo|groups +xinfo|consumers +xlen")
ACL_ENGINE = ("~nautilus:probe:* %RW~metrics:* +ping +hello +xadd +xack "
              "+xreadgroup +xautoclaim +xgroup|create +xgroup|delconsumer +xinfo|consumers "
              "+set +get +del")


def test_the_documented_acls_are_the_documented_ones() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "security.md").read_text()
    assert f"ACL SETUSER probe on >PASSWORD {ACL_PROBE}" in doc
    assert f"ACL SETUSER engine on >PASSWORD {ACL_ENGINE}" in doc


def test_tls_with_a_client_certificate(spawn, exporter, tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    tls_port = free_port()
    server = RedisServer(extra_args=(
        "--tls-port", str(tls_port), "--tls-cert-file", str(pki["server_crt"]),
        "--tls-key-file", str(pki["server_key"]), "--tls-ca-cert-file", str(pki["ca_crt"]))).start()
    url = f"rediss://127.0.0.1:{tls_port}/0"
    tls = {"ca_file": str(pki["ca_crt"]), "cert_file": str(pki["client_crt"]),
           "key_file": str(pki["client_key"])}
    try:
        engines = write_engines(tmp_path / "syn.yml", url, {"risk": {"alert": {}}})
        data = yaml.safe_load(engines.read_text())
        engines.write_text(yaml.safe_dump({**data, "redis_tls": tls}))
        spawn("engines", "--config.file", str(engines))
        ex = exporter(write_config(tmp_path / "exp.yml", url, {"risk": {"alert": {"rate": 50}}},
                                   redis_tls=tls))
        wait_for(lambda: ex.value("nautilus_probe_latency_seconds_count") >= 25, 15)
        assert ex.value("nautilus_probe_failures_total") == 0
        # Without a client certificate the server refuses the handshake: counted.
        no_cert = exporter(write_config(tmp_path / "nocert.yml", url,
                                        {"risk": {"alert": {"rate": 50}}}, prober_id="nocert",
                                        redis_tls={"ca_file": str(pki["ca_crt"])}))
        wait_for(lambda: no_cert.value("nautilus_probe_failures_total", reason="send_failed") >= 10, 15)
        assert no_cert.value("nautilus_probe_messagebus_up") == 0
        assert no_cert.value("nautilus_probe_latency_seconds_count") == 0
    finally:
        server.remove()


def test_acl_users_limited_to_the_protocol(spawn, exporter, tmp_path: Path) -> None:
    server = RedisServer().start()
    try:
        with redis.Redis(port=server.port) as admin:
            admin.execute_command("ACL", "SETUSER", "probe", "on", ">probe-pw", *ACL_PROBE.split())
            admin.execute_command("ACL", "SETUSER", "engine", "on", ">engine-pw", *ACL_ENGINE.split())
            admin.execute_command("ACL", "SETUSER", "default", "off")
        (tmp_path / "probe.pw").write_text("probe-pw\n")
        (tmp_path / "engine.pw").write_text("engine-pw\n")
        engines = write_engines(tmp_path / "syn.yml", server.url, {"risk": {"alert": {}}})
        data = yaml.safe_load(engines.read_text())
        engines.write_text(yaml.safe_dump({**data, "redis_username": "engine",
                                           "redis_password_file": str(tmp_path / "engine.pw")}))
        spawn("engines", "--config.file", str(engines))
        ex = exporter(write_config(tmp_path / "exp.yml", server.url,
                                   {"risk": {"alert": {"rate": 50}}}, redis_username="probe",
                                   redis_password_file=str(tmp_path / "probe.pw")))
        wait_for(lambda: ex.value("nautilus_probe_latency_seconds_count") >= 25, 15)
        wait_for(lambda: ex.value("nautilus_probe_engine_report_up", engine="risk") == 1, 10)
        assert ex.value("nautilus_probe_failures_total") == 0
        assert ex.value("nautilus_probe_loop_restarts_total") == 0
        # The backlog (and so the active responders) is readable under the probe's ACL.
        wait_for(lambda: ex.value("nautilus_probe_messagebus_consumers_active", engine="risk") == 1, 10)
        assert ex.value("nautilus_probe_messagebus_errors_total", operation="backlog") == 0
        # And the limits hold: the exporter's user cannot write elsewhere.
        with redis.Redis(port=server.port, username="probe", password="probe-pw") as probe:
            with pytest.raises(redis.exceptions.NoPermissionError):
                probe.set("anything", "1")
            with pytest.raises(redis.exceptions.NoPermissionError):
                probe.set("metrics:risk", "{}")
        assert http_get(f"{ex.base}/-/healthy")[0] == 200
        assert value(ex.metrics(), "nautilus_probe_messagebus_up") == 1
    finally:
        server.remove()
