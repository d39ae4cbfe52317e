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

The file (and the certificates it names) is read again when it changes, at each new
TLS connection and each request, and the whole policy applies from the next
connection on: certificates, client auth, CAs, versions, users, headers. Relative
paths are relative to the file's folder, as in the exporter toolkit.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import bcrypt

from nautilus_config.checks import boolean, duration_or_zero, Node, non_negative_int, one_of, string
from nautilus_config.errors import ConfigError
from nautilus_config.strict_yaml import load_file

log = logging.getLogger(__name__)

# client_auth_type -> Python's verify mode. Python's ssl cannot accept a client
# certificate without verifying it: the "any certificate" policies verify it too
# (stricter than Go; docs/security.md).
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "RequireClientCert": ssl.CERT_REQUIRED,  # the toolkit's old name for RequireAnyClientCert
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
# The only headers http_server_config may set, as in the exporter toolkit, and the
# values allowed where the header has a fixed set (None: any value).
EXTRA_HEADERS: dict[str, tuple[str, ...] | None] = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}
# The toolkit's (Go's) cipher suite names -> OpenSSL's. Like Go, the list governs TLS
# 1.0-1.2 only: TLS 1.3 suites are accepted and not configurable.
CIPHERS = {
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_AES_128_GCM_SHA256": None, "TLS_AES_256_GCM_SHA384": None,
    "TLS_CHACHA20_POLY1305_SHA256": None,
}
# What Go's HTTP/2 server insists on when http2 is on (the toolkit's default).
HTTP2_CIPHERS = ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")
CURVES = {"CurveP256": "prime256v1", "CurveP384": "secp384r1", "CurveP521": "secp521r1",
          "X25519": "X25519"}
# SAN kinds as Python's getpeercert() names them.
SAN_KINDS = ("DNS", "IP Address", "email", "URI")


@dataclass(frozen=True)
class TlsConfig:
    cert_file: str
    key_file: str
    client_auth_type: str = "NoClientCert"
    client_ca_file: str | None = None
    client_ca: str | None = None  # PEM text
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    prefer_server_cipher_suites: bool = True
    cipher_suites: tuple[str, ...] = ()
    curve_preferences: tuple[str, ...] = ()
    cert: str | None = None  # PEM text, instead of cert_file
    key: str | None = None
    client_allowed_sans: tuple[str, ...] | None = None


@dataclass(frozen=True)
class RateLimit:
    interval: float  # seconds between requests, on average
    burst: int


@dataclass(frozen=True)
class WebConfig:
    tls: TlsConfig | None = None
    users: dict[str, bytes] = field(default_factory=dict)  # name -> bcrypt hash
    headers: dict[str, str] = field(default_factory=dict)
    rate_limit: RateLimit | None = None

    def context(self) -> ssl.SSLContext | None:
        if self.tls is None:
            return None
        t = self.tls
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = TLS_VERSIONS[t.min_version]
        ctx.maximum_version = TLS_VERSIONS[t.max_version]
        if not t.prefer_server_cipher_suites:
            ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
        try:
            openssl_names = [name for c in t.cipher_suites if (name := CIPHERS[c])]
            if openssl_names:
                ctx.set_ciphers(":".join(openssl_names))
            if t.curve_preferences:
                # Python's ssl takes one group: the first preferred (stricter than Go).
                ctx.set_ecdh_curve(CURVES[t.curve_preferences[0]])
            if t.cert is not None or t.key is not None:
                _load_inline(ctx, t)
            else:
                ctx.load_cert_chain(t.cert_file, t.key_file)
            if t.client_ca_file:
                ctx.load_verify_locations(t.client_ca_file)
            elif t.client_ca:
                ctx.load_verify_locations(cadata=t.client_ca)
            elif t.client_auth_type != "NoClientCert":
                ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)  # Go: the system's roots
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise ConfigError("tls_server_config", f"cannot load the certificates: {exc}") from None
        ctx.verify_mode = CLIENT_AUTH[t.client_auth_type]
        return ctx


def _load_inline(ctx: ssl.SSLContext, t: TlsConfig) -> None:
    """Python's ssl loads a key pair only from files: a private temporary folder,
    removed at once. `cert`/`key` inline or from the files, as each is given."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="nautilus-probe-tls-") as folder:
        paths = []
        for name, text, path in (("cert", t.cert, t.cert_file), ("key", t.key, t.key_file)):
            if text is None:
                paths.append(path)
                continue
            target = os.path.join(folder, name)
            with open(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as fh:
                fh.write(text)
            paths.append(target)
        ctx.load_cert_chain(paths[0], paths[1])


def _names(known: dict[str, Any], what: str) -> Any:
    def check(path: str, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(path, f"must be a list of {what} names, got {value!r}")
        for v in value:
            if v not in known:
                raise ConfigError(path, f"unknown {what}: {v}")
        return tuple(value)
    return check


def _strings(path: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(path, f"must be a list of names, got {value!r}")
    return tuple(value)


def _path(base: str, path: str | None) -> str | None:
    """Relative to the web config file's folder, as the toolkit does."""
    return path if path is None or os.path.isabs(path) else os.path.join(base, path)


def _header_value(path: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigError(path, f"must be a text value, got {value!r}")
    return str(value)


def parse(data: Any, base: str = "") -> WebConfig:
    """`base`: the folder of the file, against which relative paths resolve."""
    root = Node(data)
    tls = None
    if "tls_server_config" in root.data:
        node = root.node("tls_server_config")
        tls = TlsConfig(
            cert_file=_path(base, node.get("cert_file", None, string)),  # type: ignore[arg-type]  # None passes through
            key_file=_path(base, node.get("key_file", None, string)),  # type: ignore[arg-type]  # None passes through
            client_auth_type=node.get("client_auth_type", "NoClientCert", one_of(*CLIENT_AUTH)),
            client_ca_file=_path(base, node.get("client_ca_file", None, string)),
            client_ca=node.get("client_ca", None, string),
            min_version=node.get("min_version", "TLS12", one_of(*TLS_VERSIONS)),
            max_version=node.get("max_version", "TLS13", one_of(*TLS_VERSIONS)),
            prefer_server_cipher_suites=node.get("prefer_server_cipher_suites", True, boolean),
            cipher_suites=node.get("cipher_suites", (), _names(CIPHERS, "cipher")),
            curve_preferences=node.get("curve_preferences", (), _names(CURVES, "curve")),
            cert=node.get("cert", None, string), key=node.get("key", None, string),
            client_allowed_sans=node.get("client_allowed_sans", None, _strings))
        if tls.cert_file is None and tls.cert is None:
            raise ConfigError(node.sub("cert_file"), "missing one of cert or cert_file")
        if tls.key_file is None and tls.key is None:
            raise ConfigError(node.sub("key_file"), "missing one of key or key_file")
        if tls.client_allowed_sans is not None and tls.client_auth_type not in (
                "RequireAnyClientCert", "RequireClientCert", "RequireAndVerifyClientCert"):
            raise ConfigError(node.sub("client_allowed_sans"), "requires client_auth_type to be "
                              "one of RequireAnyClientCert or RequireAndVerifyClientCert")
        if (tls.client_ca_file or tls.client_ca) and tls.client_auth_type == "NoClientCert":
            # The toolkit's refusal: an operator who forgot the policy would believe
            # mTLS is on while every client without a certificate gets in.
            raise ConfigError(node.sub("client_auth_type"), "client CA's have been configured "
                              "without a Client Auth Policy: set client_auth_type")
        if TLS_VERSIONS[tls.max_version] < TLS_VERSIONS[tls.min_version]:
            raise ConfigError(node.sub("max_version"), "is below min_version")
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
    headers = {}
    for name, v in headers_node.items():
        if name not in EXTRA_HEADERS:
            raise ConfigError(headers_node.sub(name), "HTTP header can not be configured (allowed: "
                              f"{', '.join(EXTRA_HEADERS)})")
        value = _header_value(headers_node.sub(name), v)
        allowed = EXTRA_HEADERS[name]
        if allowed is not None and value not in allowed:
            raise ConfigError(headers_node.sub(name), f"must be one of {', '.join(allowed)}, "
                              f"got {value!r}")
        headers[name] = value
    http2 = http.get("http2", True, boolean)  # HTTP/2 is not served here; accepted
    http.done()
    if http2 and tls is not None and tls.cipher_suites and not set(HTTP2_CIPHERS) & set(
            tls.cipher_suites):
        # The toolkit's (Go's HTTP/2) refusal, kept so that a file means the same in both.
        raise ConfigError("tls_server_config.cipher_suites", "TLSConfig.CipherSuites is missing "
                          "an HTTP/2-required AES_128_GCM_SHA256 cipher (add one, or set "
                          "http_server_config.http2: false)")
    rate_limit = None
    if "rate_limit" in root.data:
        rl = root.node("rate_limit")
        interval = rl.get("interval", 0.0, duration_or_zero)
        burst = rl.get("burst", 0, non_negative_int)
        rl.done()
        if interval > 0:
            rate_limit = RateLimit(interval, max(burst, 1))
    root.done()
    return WebConfig(tls, users, headers, rate_limit)


def load(path: str) -> tuple[WebConfig, ssl.SSLContext | None]:
    """The web config file (relative paths resolved against its folder) and its TLS
    context, built now: certificates that do not load are an error naming the file,
    not a failure at the first connection."""
    def parse_and_build(data: Any) -> tuple[WebConfig, ssl.SSLContext | None]:
        config = parse(data, os.path.dirname(os.path.abspath(path)))
        return config, config.context()

    loaded, _ = load_file(path, parse_and_build)
    return loaded


class _LiveContext(ssl.SSLContext):
    """The listening socket's TLS context, which hands every new connection to the
    *current* policy: `wrap_bio` (what asyncio and uvloop call per connection) reads
    the file again if it changed and wraps with that context. Certificates, client
    auth, CAs and versions all apply from the next connection on. (Swapping the
    context in an SNI callback, as before, changed the certificate only.)"""

    security: WebSecurity

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        current = self.security.current_context()
        if current is None:  # TLS turned off in the file: it takes a restart to serve HTTP
            raise ssl.SSLError("TLS is no longer configured; restart to serve plain HTTP")
        return current.wrap_bio(*args, **kwargs)


# A bcrypt hash of a password nobody has: an unknown user is checked against it, so
# that it takes as long to refuse as a wrong password (no user enumeration by timing).
_DECOYS: dict[bytes, bytes] = {}


def _decoy(cost: bytes) -> bytes:
    if cost not in _DECOYS:
        _DECOYS[cost] = bcrypt.hashpw(os.urandom(16).hex().encode(), b"$2b$" + cost + b"$" +
                                      bcrypt.gensalt(4)[7:])
    return _DECOYS[cost]


def _checkpw(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # a password over 72 bytes (bcrypt 4.1+), a malformed hash
        return False


class WebSecurity:
    """The current web config of a file, re-read when it changes: at each new TLS
    connection and each request, as the exporter toolkit does. A file that no longer
    loads is refused (logged once per change of the file) and the last good policy
    stays in force; `last_load_ok` says which (the exporter exposes it)."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self._stamp: tuple[Any, ...] | None = None
        self._refused: tuple[Any, ...] | None = None
        self.config = WebConfig()
        self.ssl: ssl.SSLContext | None = None
        self.last_load_ok = True
        self._verified: set[str] = set()  # digests of credentials bcrypt accepted
        self._lock = threading.Lock()
        self._tokens = 0.0
        self._tokens_at = 0.0
        if path:
            self.refresh(strict=True)

    def refresh(self, strict: bool = False) -> None:
        """Read the file again if it changed; a bad new file keeps the old config."""
        if not self.path:
            return
        with self._lock:
            stamp: tuple[Any, ...] | None = None
            try:
                stamp = self._files_stamp()
                if stamp in (self._stamp, self._refused):
                    return
                config, context = load(self.path)
            except (ConfigError, OSError) as exc:
                if strict:
                    raise
                if stamp is None or stamp != self._refused:
                    self._refused = stamp
                    log.error("web config %s refused, keeping the last good one: %s",
                              self.path, exc)
                self.last_load_ok = False
                return
            if self._stamp is not None:
                log.info("web config %s reloaded", self.path)
            self._stamp, self._refused, self.config, self.ssl = stamp, None, config, context
            self.last_load_ok = True
            self._verified.clear()

    def _files_stamp(self) -> tuple[Any, ...]:
        """The file's and its certificates' (mtime, size, inode): a rotated
        certificate is picked up even when the web config itself is unchanged."""
        paths = [self.path]
        tls = self.config.tls
        if tls is not None:
            paths += [p for p in (tls.cert_file, tls.key_file, tls.client_ca_file) if p]
        out = []
        for path in paths:
            st = os.stat(path)  # type: ignore[arg-type]  # None raises TypeError, caught below
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(out)

    def current_context(self) -> ssl.SSLContext | None:
        self.refresh()
        return self.ssl

    def serving_context(self) -> ssl.SSLContext | None:
        """What the listening socket is given: None (plain HTTP) or a context that
        applies the file's current policy to each new connection."""
        if self.ssl is None:
            return None
        live = _LiveContext(ssl.PROTOCOL_TLS_SERVER)
        live.security = self
        return live

    def describe(self) -> str:
        c = self.config
        tls = f"TLS {c.tls.min_version}-{c.tls.max_version}, {c.tls.client_auth_type}" \
            if c.tls else "no TLS"
        return f"{tls}; {len(c.users)} basic-auth users; {len(c.headers)} headers"

    def client_allowed(self, peercert: dict[str, Any] | None) -> bool:
        """client_allowed_sans: the client certificate names one of them (DNS name,
        IP address, email or URI). Checked per request: Python's ssl cannot fail the
        handshake on it, so a client with another certificate gets 403 instead."""
        tls = self.config.tls
        if tls is None or tls.client_allowed_sans is None:
            return True
        sans = {value for kind, value in (peercert or {}).get("subjectAltName", ())
                if kind in SAN_KINDS}
        return bool(sans & set(tls.client_allowed_sans))

    def allow(self) -> bool:
        """The toolkit's rate_limit: a token bucket of `burst`, one token per `interval`."""
        limit = self.config.rate_limit
        if limit is None:
            return True
        now = time.monotonic()
        self._tokens = min(limit.burst, self._tokens + (now - self._tokens_at) / limit.interval)
        self._tokens_at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def authorized(self, header: str | None) -> bool:
        """Basic auth against the bcrypt hashes (no users: everyone). An unknown user
        costs one bcrypt comparison too; a password bcrypt cannot take is refused."""
        users = self.config.users
        if not users:
            return True
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        known = users.get(user)
        hashed = known if known is not None else _decoy(next(iter(users.values()))[4:6])
        # bcrypt is slow on purpose: remember what it accepted (as the toolkit does).
        digest = hashlib.sha256(b"\0".join((user.encode(), password.encode(), hashed))).hexdigest()
        if digest in self._verified:
            return True
        if _checkpw(password.encode(), hashed) and known is not None:
            self._verified.add(digest)
            return True
        return False
