"""A throw-away PKI for TLS tests: a CA, a server certificate for 127.0.0.1 and a
client certificate, made with openssl."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def make_pki(directory: Path) -> dict[str, Path]:
    """Files in `directory`: ca.crt/ca.key, server.crt/.key, client.crt/.key; keyed
    "ca_crt", "server_key", ..."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl is missing: run ./run setup")

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=directory)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test CA",
        "-keyout", "ca.key", "-out", "ca.crt")
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1"),
                      ("client", "extendedKeyUsage=clientAuth")):
        run("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}", "-keyout",
            f"{name}.key", "-out", f"{name}.csr")
        (directory / f"{name}.ext").write_text(ext + "\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "1", "-extfile", f"{name}.ext", "-out", f"{name}.crt")
    return {f"{n}_{kind}": directory / f"{n}.{kind}" for n in ("ca", "server", "client")
            for kind in ("crt", "key")}
