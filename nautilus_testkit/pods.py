"""Pods as local processes: a container of the generated manifests (deploy/kubernetes)
run as the kubelet would run it — the image's entrypoint (`nautilus-probe`) with the
container's args, `$(VAR)` expanded from its environment, the environment built from
its `env` (values, Secrets, ConfigMaps, the downward API) plus the pod's HOSTNAME,
and each mounted ConfigMap or emptyDir a local directory. A Service name the pod
would resolve is given as the loopback address the test runs it on."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from . import ROOT

IMAGE_ROOT = "/app"
_VAR = re.compile(r"\$\((\w+)\)|\$\$")


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    [obj] = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return obj


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion in args: a defined variable is replaced, an
    undefined one left as written, `$$` is a `$`."""
    def one(m: re.Match[str]) -> str:
        if m[0] == "$$":
            return "$"
        return env.get(m[1], m[0])
    return _VAR.sub(one, text)


def pod_env(container: dict[str, Any], objects: list[dict[str, Any]], pod: str,
            extra: dict[str, str] | None = None) -> dict[str, str]:
    """The container's environment in pod `pod` (HOSTNAME is the pod's name)."""
    env = {"HOSTNAME": pod, **(extra or {})}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = expand(item["value"], env)
            continue
        source = item["valueFrom"]
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            env[item["name"]] = find(objects, "Secret", ref["name"])["stringData"][ref["key"]]
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            env[item["name"]] = find(objects, "ConfigMap", ref["name"])["data"][ref["key"]]
        elif source.get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[item["name"]] = pod
        else:
            raise ValueError(f"{item['name']}: {source} is not emulated")
    return env


def mounts(pod_spec: dict[str, Any], container: dict[str, Any], objects: list[dict[str, Any]],
           where: Path) -> dict[str, Path]:
    """Each of the container's mount paths as a local directory under `where`."""
    volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
    out = {}
    for m in container.get("volumeMounts", []):
        local = where / m["name"]
        local.mkdir(parents=True, exist_ok=True)
        volume = volumes[m["name"]]
        if "configMap" in volume:
            for key, text in find(objects, "ConfigMap", volume["configMap"]["name"])["data"].items():
                (local / key).write_text(text)
        out[m["mountPath"]] = local
    return out


def argv(container: dict[str, Any], env: dict[str, str], paths: dict[str, Path]) -> list[str]:
    """The container's command line here: the image's entrypoint is `nautilus-probe`,
    its files (/app, the Dockerfile's WORKDIR) this checkout's."""
    assert "command" not in container, "the image's entrypoint is expected"
    out = []
    # Longest mount first, each argument's path (the whole argument or a flag's value)
    # mapped once: a local folder may itself lie under a mount path such as /tmp.
    mapped = sorted({**paths, IMAGE_ROOT: ROOT}.items(), key=lambda m: -len(m[0]))
    for arg in container["args"]:
        arg = expand(arg, env)
        flag, eq, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
        for mount, local in mapped:
            if value.startswith(mount + "/"):
                arg = f"{flag}{eq}{local}/{value[len(mount) + 1:]}"
                break
        out.append(arg)
    return [sys.executable, "-m", "nautilus_probe", *out]


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """The pod's process, with only its own environment (and what Python needs)."""
    import os

    base = {k: v for k, v in os.environ.items() if k in ("PATH", "TMPDIR", "LANG", "VIRTUAL_ENV")}
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, cwd=ROOT, env={**base, **env}, stdout=out,
                                stderr=subprocess.STDOUT)


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
