"""deploy/kubernetes/, checked offline: current with its sources, built by kustomize,
every object valid against Kubernetes' and prometheus-operator's published schemas,
the rules promtool-clean and the generated ones, the dashboards the generated JSON."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from exporter.config import Config
from nautilus_probe import kubernetes as k8s
from nautilus_testkit import ROOT

BASE = ROOT / k8s.OUT
KUSTOMIZATIONS = [BASE, BASE / "alertmanager", BASE / "loadtest", BASE / "examples" / "engine"]
# The oldest Kubernetes these manifests are for (docs/kubernetes.md), and the newest
# the schema package knows.
VERSIONS = ("1.28.0", kubernetes_validate.utils.latest_version())
OPERATOR_SCHEMAS = ROOT / "tools" / "k8s-schema"


def built(path: Path) -> list[dict[str, Any]]:
    """`kubectl kustomize path`'s objects; the files' own where kubectl is missing."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        return [d for f in sorted(path.glob("*.yaml")) if f.name != "kustomization.yaml"
                for d in k8s.load_all(f.read_text())]
    out = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return k8s.load_all(out.stdout)


@pytest.fixture(scope="module")
def objects() -> dict[str, list[dict[str, Any]]]:
    return {p.relative_to(BASE).as_posix() or ".": built(p) for p in KUSTOMIZATIONS}


def one(objects: dict[str, list[dict[str, Any]]], kind: str, name: str, where: str = "."
        ) -> dict[str, Any]:
    [obj] = [o for o in objects[where] if o["kind"] == kind and o["metadata"]["name"] == name]
    return obj


def test_the_committed_files_are_what_the_generator_writes(tmp_path: Path) -> None:
    files = k8s.render()
    committed = {p.relative_to(BASE).as_posix(): p.read_text()
                 for p in BASE.rglob("*.yaml")}
    assert set(committed) == set(files), "run python -m nautilus_probe.kubernetes"
    for name, text in files.items():
        assert committed[name] == text, f"{name} is stale: run python -m nautilus_probe.kubernetes"


def test_kustomize_builds_every_kustomization() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (./run setup installs Debian's kubernetes-client "
                    "where it can): the kustomize build is not checked")
    for path in KUSTOMIZATIONS:
        out = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, f"{path}: {out.stderr}"
        kinds = [d["kind"] for d in k8s.load_all(out.stdout)]
        assert kinds, path
    base = k8s.load_all(subprocess.run([kubectl, "kustomize", str(BASE)], capture_output=True,
                                       text=True, timeout=60).stdout)
    assert sorted({d["kind"] for d in base}) == [
        "ConfigMap", "Deployment", "NetworkPolicy", "PersistentVolumeClaim",
        "PodDisruptionBudget", "PrometheusRule", "Secret", "Service", "ServiceMonitor",
        "StatefulSet"]
    # The kustomization's image tag is the exporter's version.
    [image] = {c["image"] for d in base if d["kind"] == "StatefulSet"
               for c in d["spec"]["template"]["spec"]["containers"]}
    from exporter import __version__
    assert image == f"nautilus-probe:{__version__}"


def test_core_objects_validate_against_kubernetes_schemas(objects) -> None:
    core = [o for objs in objects.values() for o in objs
            if not o["apiVersion"].startswith("monitoring.coreos.com")]
    assert {o["kind"] for o in core} >= {"StatefulSet", "Service", "ConfigMap", "Secret", "Job",
                                         "Deployment", "PodDisruptionBudget", "NetworkPolicy"}
    for version in VERSIONS:
        for obj in core:
            # strict: a misspelt or misplaced field is an error, not ignored.
            kubernetes_validate.validate(obj, version, strict=True)
    # The check can fail: a field in the wrong place is refused.
    bad = json.loads(json.dumps(one(objects, "StatefulSet", k8s.NAME)))
    bad["spec"]["template"]["spec"]["containers"][0]["readOnlyRootFileSystem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, VERSIONS[0], strict=True)


def _operator_check(objs: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    assert node, "node is missing: run ./run setup"
    assert (OPERATOR_SCHEMAS / "node_modules").is_dir(), "run ./run setup (npm ci in tools/k8s-schema)"
    return subprocess.run([node, str(OPERATOR_SCHEMAS / "validate.mjs")], input=json.dumps(objs),
                          capture_output=True, text=True, timeout=60)


def test_operator_objects_validate_against_the_operators_crd_schemas(objects) -> None:
    ops = [o for o in objects["."] if o["apiVersion"].startswith("monitoring.coreos.com")]
    assert sorted((o["kind"], o["metadata"]["name"]) for o in ops) == [
        ("PrometheusRule", "nautilus-probe"), ("ServiceMonitor", "nautilus-probe"),
        ("ServiceMonitor", "nautilus-probe-pushgateway")]
    check = _operator_check(ops)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count("ok ") == 3
    # ... and can fail: an interval the operator would refuse.
    bad = json.loads(json.dumps(ops))
    for o in bad:
        if o["kind"] == "ServiceMonitor":
            o["spec"]["endpoints"][0]["interval"] = "15 seconds"
    check = _operator_check(bad)
    assert check.returncode == 1 and "interval must match pattern" in check.stdout, check.stdout


def test_the_rules_are_the_generated_rules_and_pass_promtool(objects, tmp_path: Path) -> None:
    rule = one(objects, "PrometheusRule", k8s.NAME)
    generated = []
    for name in ("recording.yml", "alerts.yml"):
        generated += yaml.safe_load((ROOT / "alerts" / "generated" / name).read_text())["groups"]
    assert rule["spec"]["groups"] == generated
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    promtool = shutil.which("promtool")
    assert promtool
    check = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"SUCCESS: {sum(len(g['rules']) for g in generated)} rules found" in check.stdout


def test_the_dashboards_are_the_generated_json_for_grafanas_sidecar(objects) -> None:
    maps = [o for o in objects["."] if o["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    found = {key: value for o in maps for key, value in o["data"].items()}
    expected = {p.name: p.read_text() for p in (ROOT / "dashboards" / "generated").glob("*.json")}
    assert found == expected
    # A ConfigMap holds at most 1 MiB.
    assert all(len(json.dumps(o)) < 1 << 20 for o in maps)


def test_alertmanager_routing_is_the_shipped_one_and_amtool_clean(objects, tmp_path: Path) -> None:
    # A kustomization of its own, applied in the Alertmanager's namespace; not in the base.
    secret = one(objects, "Secret", "nautilus-probe-alertmanager", "alertmanager")
    assert not [o for o in objects["."] if o["metadata"]["name"] == secret["metadata"]["name"]]
    text = secret["stringData"]["alertmanager.yaml"]
    assert text == (ROOT / "alerts" / "alertmanager.yml").read_text()
    path = tmp_path / "alertmanager.yml"
    path.write_text(text)
    check = subprocess.run([shutil.which("amtool") or "amtool", "check-config", str(path)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_exporter_pods_are_hardened_sized_and_sharded(objects) -> None:
    sts = one(objects, "StatefulSet", k8s.NAME)
    pod = sts["spec"]["template"]["spec"]
    [c] = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
    assert pod["automountServiceAccountToken"] is False
    sc = c["securityContext"]
    assert (sc["readOnlyRootFilesystem"], sc["allowPrivilegeEscalation"], sc["capabilities"]) == (
        True, False, {"drop": ["ALL"]})
    assert c["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
    assert c["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    # Replicas and shards in step: the shard comes from the ordinal, N is the replicas.
    assert f"--shard=ordinal/{sts['spec']['replicas']}" in c["args"]
    assert not any("sh" == a or "-c" == a for a in c.get("command", []) + c["args"])
    # The memory limit is the bound the exporter computes for its largest shard.
    config = one(objects, "ConfigMap", "nautilus-probe-config")["data"]["exporter.yml"]
    path = ROOT / k8s.COMPOSE
    # The compose plan, with the cluster's header and Redis URL.
    plan, compose_plan = yaml.safe_load(config), yaml.safe_load(path.read_text())
    assert plan.pop("redis_url") == k8s.redis_secret()["stringData"]["url"]
    compose_plan.pop("redis_url")
    assert plan == compose_plan and config.startswith(k8s.CONFIG_HEADER)
    n = sts["spec"]["replicas"]
    bound = max(Config.load(str(path), shard=(i, n)).memory.total for i in range(1, n + 1))
    limit = int(c["resources"]["limits"]["memory"].removesuffix("Mi"))
    assert limit == -(-bound // (1 << 20))
    assert c["resources"]["requests"]["memory"] == c["resources"]["limits"]["memory"]
    assert "cpu" in c["resources"]["requests"] and "cpu" not in c["resources"]["limits"]
    # A configuration change rolls the pods: its checksum is on the pod template.
    import hashlib
    assert sts["spec"]["template"]["metadata"]["annotations"]["checksum/config"] == \
        hashlib.sha256(config.encode()).hexdigest()
    pdb = one(objects, "PodDisruptionBudget", k8s.NAME)
    assert pdb["spec"]["selector"]["matchLabels"] == sts["spec"]["selector"]["matchLabels"]
    policy = one(objects, "NetworkPolicy", k8s.NAME)
    assert policy["spec"]["ingress"][0]["ports"] == [{"port": k8s.PORT, "protocol": "TCP"}]


def test_the_servicemonitor_keeps_the_job_the_rules_select(objects) -> None:
    from nautilus_probe.observe import exporter_job

    monitor = one(objects, "ServiceMonitor", k8s.NAME)
    service = one(objects, "Service", k8s.NAME)
    # prometheus-operator names the job after the Service label jobLabel names.
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == exporter_job()
    assert service["spec"]["clusterIP"] == "None"
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
    push = one(objects, "ServiceMonitor", "nautilus-probe-pushgateway")
    assert push["spec"]["endpoints"][0]["honorLabels"] is True


def test_the_loadtest_is_an_indexed_job_and_a_merge(objects) -> None:
    job = one(objects, "Job", "nautilus-probe-loadtest", "loadtest")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == k8s.LOADTEST_SHARDS
    [share] = spec["template"]["spec"]["containers"]
    assert f"--shares={spec['completions']}" in share["args"]
    merge = one(objects, "Job", "nautilus-probe-loadtest-merge", "loadtest")
    steps = merge["spec"]["template"]["spec"]["initContainers"] + \
        merge["spec"]["template"]["spec"]["containers"]
    assert [s["args"][0] for s in steps] == ["merge", "loadtest", "validate"]
    assert f"--shares={spec['completions']}" in steps[0]["args"]


def test_the_engine_example_names_its_consumer_after_the_pod(objects) -> None:
    from nautilus_wire.responder import CONSUMER_ENV

    deployment = one(objects, "Deployment", "risk-engine", "examples/engine")
    [c] = deployment["spec"]["template"]["spec"]["containers"]
    [env] = [e for e in c["env"] if e["name"] == CONSUMER_ENV]
    assert env["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_the_pushgateway_keeps_its_verdicts_across_a_restart(objects, tmp_path: Path) -> None:
    """The generated Pushgateway stores its pushes in a file on its claim: the real
    Pushgateway, run with the generated arguments (the store under tmp_path), still
    serves a pushed verdict after a stop and a start."""
    import signal
    import urllib.request

    from nautilus_probe.observe import pushgateway_binary
    from nautilus_testkit import free_port, http_get, wait_for

    deployment = one(objects, "Deployment", "nautilus-probe-pushgateway")
    pod = deployment["spec"]["template"]["spec"]
    [c] = pod["containers"]
    [mount] = c["volumeMounts"]
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    claim = one(objects, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert (deployment["spec"]["replicas"], deployment["spec"]["strategy"]["type"]) == (1, "Recreate")
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsUser"]
    [store] = [a.split("=", 1)[1] for a in c["args"] if a.startswith("--persistence.file=")]
    assert store.startswith(mount["mountPath"] + "/")
    args = [a.replace(mount["mountPath"], str(tmp_path)) for a in c["args"]]

    def start() -> tuple[Any, str]:
        binary = pushgateway_binary()
        assert binary, "the Pushgateway is missing: run ./run setup"
        at = f"127.0.0.1:{free_port()}"
        proc = subprocess.Popen([binary, f"--web.listen-address={at}", *args],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: http_get(f"http://{at}/-/ready")[0] == 200, 30)
        return proc, at

    proc, at = start()
    try:
        push = urllib.request.Request(f"http://{at}/metrics/job/loadtest",
                                      data=b"nautilus_probe_capacity_verdict 1\n", method="PUT")
        assert urllib.request.urlopen(push, timeout=5).status == 200
    finally:
        proc.send_signal(signal.SIGTERM)  # writes the store on the way out
        proc.wait(10)
    assert (tmp_path / Path(store).name).stat().st_size > 0
    proc, at = start()
    try:
        status, body = http_get(f"http://{at}/metrics")
        assert status == 200
        assert 'nautilus_probe_capacity_verdict{instance="",job="loadtest"} 1' in body
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
