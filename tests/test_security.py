"""The endpoints behind TLS and basic auth (--web.config.file), lifecycle endpoints
off by default, and secrets that never reach a log, an error or a response."""

from __future__ import annotations

import base64
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest
import yaml

from nautilus_testkit import RedisServer, free_port, http_get, http_post, wait_for
from nautilus_testkit.exposition import value
from nautilus_testkit.pki import make_pki

from .conftest import write_config, write_engines

SECRET = "s3cr3tPW-planted"


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, Path]:
    return make_pki(tmp_path_factory.mktemp("pki"))


def get(url: str, context: ssl.SSLContext | None = None, auth: tuple[str, str] | None = None
        ) -> tuple[int, str]:
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=5, context=context) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_tls_basic_auth_and_headers(redis_url: str, spawn, tmp_path: Path, pki) -> None:
    web = tmp_path / "web.yml"
    web.write_text(yaml.safe_dump({
        "tls_server_config": {"cert_file": str(pki["server_crt"]), "key_file": str(pki["server_key"]),
                              "client_auth_type": "RequireAndVerifyClientCert",
                              "client_ca_file": str(pki["ca_crt"])},
        "basic_auth_users": {"prometheus": bcrypt.hashpw(b"right", bcrypt.gensalt(4)).decode()},
        "http_server_config": {"headers": {"X-Frame-Options": "deny"}}}))
    port = free_port()
    spawn("exporter", "--config.file", str(write_config(tmp_path / "exp.yml", redis_url,
                                                        {"risk": {"alert": {}}})),
          "--web.listen-address", f"127.0.0.1:{port}", "--web.config.file", str(web))
    base = f"https://127.0.0.1:{port}"
    client = ssl.create_default_context(cafile=str(pki["ca_crt"]))
    client.load_cert_chain(str(pki["client_crt"]), str(pki["client_key"]))
    wait_for(lambda: get(f"{base}/-/ready", client, ("prometheus", "right"))[0] == 200, 15)
    # Basic auth: the right password only.
    assert get(f"{base}/metrics", client, ("prometheus", "wrong"))[0] == 401
    assert get(f"{base}/metrics", client)[0] == 401
    status, body = get(f"{base}/metrics", client, ("prometheus", "right"))
    assert status == 200 and "nautilus_probe_requests_total" in body
    with urllib.request.urlopen(urllib.request.Request(
            f"{base}/-/healthy", headers={"Authorization": "Basic " + base64.b64encode(
                b"prometheus:right").decode()}), timeout=5, context=client) as resp:
        assert resp.headers["X-Frame-Options"] == "deny"
    # Plain HTTP fails; TLS without a client certificate fails; an untrusted CA fails.
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    no_cert = ssl.create_default_context(cafile=str(pki["ca_crt"]))
    with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
        get(f"{base}/metrics", no_cert, ("prometheus", "right"))
    with pytest.raises(urllib.error.URLError):
        get(f"{base}/metrics", ssl.create_default_context(), ("prometheus", "right"))


@pytest.mark.parametrize(("data", "message"), [
    ({"tls_server_config": {"cert_file": "x.crt"}}, "tls_server_config.key_file: missing one of key or key_file"),
    ({"tls_server_config": {"cert_file": "x", "key_file": "y", "client_auth_type": "Maybe"}},
     "tls_server_config.client_auth_type: must be one of"),
    ({"basic_auth_users": {"alice": "plaintext"}}, "basic_auth_users.alice: must be a bcrypt hash"),
    ({"tls_server_config": {"cert_file": "/nope.crt", "key_file": "/nope.key"}},
     "tls_server_config: cannot load the certificates"),
    ({"bogus": 1}, "bogus: unknown key"),
])
def test_a_bad_web_config_names_the_key(tmp_path: Path, data: dict, message: str) -> None:
    web = tmp_path / "web.yml"
    web.write_text(yaml.safe_dump(data))
    proc = subprocess.run([sys.executable, "-m", "nautilus_probe", "exporter",
                           "--config.file", "config/exporter.yml",
                           "--web.config.file", str(web), "--web.listen-address", "127.0.0.1:0"],
                          capture_output=True, text=True, timeout=30,
                          cwd=Path(__file__).resolve().parent.parent)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_reload_needs_the_lifecycle_flag(redis_url: str, spawn, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "exp.yml", redis_url, {"risk": {"alert": {}}})
    port = free_port()
    spawn("exporter", "--config.file", str(cfg), "--web.listen-address", f"127.0.0.1:{port}")
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: http_get(f"{base}/-/ready")[0] == 200, 15)
    assert http_post(f"{base}/-/reload") == (403, "Lifecycle API is not enabled.\n")
    assert http_post(f"{base}/-/reload", method="PUT")[0] == 403
    assert http_get(f"{base}/-/reload")[0] == 405


def test_a_planted_secret_is_never_printed(spawn, tmp_path: Path) -> None:
    """A password in the Redis URL (a wrong one, and a bad URL) and a WebSocket token,
    at debug level: nothing the processes write, serve or answer contains it."""
    from nautilus_wire.redact import redact

    assert SECRET not in redact(f"redis://:{SECRET}@h:1/0 ws://h/ws?token={SECRET}")
    server = RedisServer(extra_args=("--requirepass", "the-right-one")).start()
    wrong = f"redis://default:{SECRET}@127.0.0.1:{server.port}/0"  # AUTH fails
    port, ws_port = free_port(), free_port()
    cfg = write_config(tmp_path / "exp.yml", wrong, {"risk": {"alert": {"rate": 20}}},
                       websocket={"endpoints": [f"ws://127.0.0.1:{ws_port}/ws/engine/status"],
                                  "token": SECRET, "heartbeat_rate": 5})
    engines = write_engines(tmp_path / "syn.yml", wrong, {"risk": {"alert": {}}})
    children = [
        spawn("--log.level", "debug", "ws-engine", "--port", str(ws_port), "--token", "other"),
        spawn("--log.level", "debug", "engines", "--config.file", str(engines)),
        spawn("--log.level", "debug", "exporter", "--config.file", str(cfg),
              "--web.listen-address", f"127.0.0.1:{port}", "--web.enable-lifecycle")]
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: http_get(f"{base}/-/ready")[0] == 200, 15)
    wait_for(lambda: value(http_get(f"{base}/metrics")[1], "nautilus_probe_messagebus_errors_total") >= 1
             and value(http_get(f"{base}/metrics")[1], "nautilus_probe_ws_disconnects_total",
                       reason="unauthorized") >= 1, 15)
    served = [http_get(f"{base}/metrics")[1], http_get(f"{base}/")[1]]
    # A bad URL carrying the secret: in --config.check output and in a reload answer.
    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump({"redis_url": f"http://:{SECRET}@127.0.0.1:1/0",
                                   "engines": {"risk": {"alert": {}}}}))
    check = subprocess.run([sys.executable, "-m", "nautilus_probe", "exporter",
                            "--config.file", str(bad), "--config.check"],
                           capture_output=True, text=True, timeout=30)
    assert check.returncode == 2 and "redis_url" in check.stderr
    cfg.write_text(bad.read_text())
    status, body = http_post(f"{base}/-/reload")
    assert status == 500 and "redis_url" in body
    for child in children:
        child.stop()
    server.remove()
    written = [c.output() for c in children] + served + [check.stdout, check.stderr, body]
    assert all(text for text in written[:3])  # debug logs were written
    leaks = [text[max(text.find(SECRET) - 80, 0):text.find(SECRET) + 20]
             for text in written if SECRET in text]
    assert leaks == []
