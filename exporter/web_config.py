"""`--web.config.file`: TLS, basic auth and response headers for the endpoints, in the
Prometheus exporter-toolkit format, read strictly.

    tls_server_config:
      cert_file: server.crt
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # optional
      client_ca_file: ca.crt                          # optional
      min_version: TLS12                              # optional
    basic_auth_users:
      prometheus: $2b$12$...                          # bcrypt hashes
    http_server_config:
      headers: {Strict-Transport-Security: max-age=31536000}

The file is read again when it changes: at each new TLS connection and each
request, as the exporter toolkit does, so certificates rotate without a restart.
"""

from __future__ import annotations

import base64
import hashlib
import os
import ssl
from dataclasses import dataclass, field
from typing import Any

import bcrypt

from .yamlcheck import ConfigError, Node, load_file, one_of, string

CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}


@dataclass(frozen=True)
class TlsConfig:
    cert_file: str
    key_file: str
    client_auth_type: str = "NoClientCert"
    client_ca_file: str | None = None
    min_version: str = "TLS12"


@dataclass(frozen=True)
class WebConfig:
    tls: TlsConfig | None = None
    users: dict[str, bytes] = field(default_factory=dict)  # name -> bcrypt hash
    headers: dict[str, str] = field(default_factory=dict)

    def context(self) -> ssl.SSLContext | None:
        if self.tls is None:
            return None
        t = self.tls
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = TLS_VERSIONS[t.min_version]
        try:
            ctx.load_cert_chain(t.cert_file, t.key_file)
            if t.client_ca_file:
                ctx.load_verify_locations(t.client_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError("tls_server_config", f"cannot load the certificates: {exc}") from None
        ctx.verify_mode = CLIENT_AUTH[t.client_auth_type]
        return ctx


def parse(data: Any) -> WebConfig:
    root = Node(data)
    tls = None
    if "tls_server_config" in root.data:
        node = root.node("tls_server_config")
        tls = TlsConfig(
            cert_file=node.get("cert_file", None, string),
            key_file=node.get("key_file", None, string),
            client_auth_type=node.get("client_auth_type", "NoClientCert", one_of(*CLIENT_AUTH)),
            client_ca_file=node.get("client_ca_file", None, string),
            min_version=node.get("min_version", "TLS12", one_of(*TLS_VERSIONS)))
        for key in ("cert_file", "key_file"):
            if getattr(tls, key) is None:
                raise ConfigError(node.sub(key), "is required with tls_server_config")
        if tls.client_auth_type in ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert") \
                and not tls.client_ca_file:
            raise ConfigError(node.sub("client_ca_file"),
                              f"is required with client_auth_type {tls.client_auth_type}")
        node.done()
    users: dict[str, bytes] = {}
    users_node = root.node("basic_auth_users")
    for user, hashed in users_node.items():
        hashed = string(users_node.sub(user), hashed)
        if not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise ConfigError(users_node.sub(user), "must be a bcrypt hash ($2b$...)")
        users[user] = hashed.encode()
    http = root.node("http_server_config")
    headers_node = http.node("headers")
    headers = {name: string(headers_node.sub(name), v) for name, v in headers_node.items()}
    http.done()
    root.done()
    cfg = WebConfig(tls, users, headers)
    cfg.context()  # the certificates must load now, not at the first connection
    return cfg


class WebSecurity:
    """The current web config of a file, re-read when the file changes."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._stamp: tuple[float, int] | None = None
        self.config = WebConfig()
        self.ssl: ssl.SSLContext | None = None
        self._verified: set[str] = set()  # digests of credentials bcrypt accepted
        if path:
            self.refresh(strict=True)

    def refresh(self, strict: bool = False) -> None:
        """Read the file again if it changed; a bad new file keeps the old config."""
        if not self.path:
            return
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime, st.st_size)
            if stamp == self._stamp:
                return
            config, _ = load_file(self.path, parse)
        except (ConfigError, OSError):
            if strict:
                raise
            return
        self._stamp, self.config = stamp, config
        self.ssl = config.context()
        self._verified.clear()

    def sni(self, sock: ssl.SSLObject, _name: str | None, _ctx: ssl.SSLContext) -> None:
        """At every new TLS connection: the current certificates."""
        self.refresh()
        if self.ssl is not None:
            sock.context = self.ssl

    def serving_context(self) -> ssl.SSLContext | None:
        if self.ssl is None:
            return None
        self.ssl.sni_callback = self.sni  # type: ignore[assignment]
        return self.ssl

    def authorized(self, header: str | None) -> bool:
        """Basic auth against the bcrypt hashes (no users: everyone)."""
        users = self.config.users
        if not users:
            return True
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        hashed = users.get(user)
        if hashed is None:
            return False
        # bcrypt is slow on purpose: remember what it accepted (as the toolkit does).
        digest = hashlib.sha256(b"\0".join((user.encode(), password.encode(), hashed))).hexdigest()
        if digest in self._verified:
            return True
        if bcrypt.checkpw(password.encode(), hashed):
            self._verified.add(digest)
            return True
        return False
