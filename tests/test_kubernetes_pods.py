"""The generated manifests' pods as local processes (nautilus_testkit/pods.py): the
exporter StatefulSet's three pods, scraped by a real Prometheus whose scrape config
is derived from the ServiceMonitor and whose rules are the PrometheusRule's, add up
to one unsharded exporter's picture; the Indexed Job's three shares merge to what one
process running the whole load measures."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import redis
import yaml

from alerts.query import PrometheusAPI
from nautilus_loadtest.histogram import LatencyHistogram
from nautilus_probe import kubernetes as k8s
from nautilus_testkit import ROOT, free_port, http_get, pods, rss_bytes, wait_for

BASE = ROOT / k8s.OUT


def manifests(path: Path) -> list[dict[str, Any]]:
    return [d for f in sorted(path.glob("*.yaml")) if f.name != "kustomization.yaml"
            for d in k8s.load_all(f.read_text())]


def scrape_config(monitor: dict[str, Any], service: dict[str, Any], pod_targets: dict[str, str],
                  interval: str) -> dict[str, Any]:
    """The scrape job prometheus-operator makes of a ServiceMonitor, its endpoints
    discovery replaced by the pods' addresses here: the job is the Service's label that
    jobLabel names; path, scheme and honor_labels are the endpoint's; the target labels
    the operator adds. The interval is shortened for the test."""
    [endpoint] = monitor["spec"]["endpoints"]
    meta = service["metadata"]
    return {"job_name": meta["labels"][monitor["spec"]["jobLabel"]],
            "scrape_interval": interval, "metrics_path": endpoint.get("path", "/metrics"),
            "scheme": endpoint.get("scheme", "http"),
            "honor_labels": endpoint.get("honorLabels", False),
            "static_configs": [{"targets": [at], "labels": {
                "pod": pod, "service": meta["name"], "endpoint": endpoint["port"],
                "namespace": "default"}} for pod, at in pod_targets.items()]}


def test_the_statefulsets_pods_add_up_to_one_unsharded_exporter(tmp_path: Path, redis_url: str
                                                                ) -> None:
    objects = manifests(BASE)
    sts = pods.find(objects, "StatefulSet", k8s.NAME)
    spec = sts["spec"]["template"]["spec"]
    [container] = spec["containers"]
    port = container["ports"][0]["containerPort"]
    secrets = json.loads(json.dumps(objects))
    # The Service names the pods resolve, as the loopback addresses they run on here.
    pods.find(secrets, "Secret", k8s.REDIS_SECRET)["stringData"]["url"] = redis_url
    config = pods.find(secrets, "ConfigMap", "nautilus-probe-config")["data"]
    # The WebSocket engines' Services: a loopback port nothing listens on (refused,
    # counted), not the fixed ports a local stack may be using.
    closed = {n: free_port() for n in "123"}
    config["exporter.yml"] = re.sub(r"ws-engine-(\d):\d+", lambda m: f"127.0.0.1:{closed[m[1]]}",
                                    config["exporter.yml"])
    engines = yaml.safe_load((ROOT / "config" / "synthetic.yml").read_text())
    engines["defaults"]["error_ratio"] = 0
    (tmp_path / "synthetic.yml").write_text(yaml.safe_dump(engines))

    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(pods.start([*pods.argv({"args": [
            "engines", f"--config.file={tmp_path / 'synthetic.yml'}", f"--redis.url={redis_url}"]},
            {}, {})], {}, tmp_path / "engines.log"))
        targets = {}
        for ordinal in range(sts["spec"]["replicas"]):
            pod = f"{sts['metadata']['name']}-{ordinal}"
            env = pods.pod_env(container, secrets, pod)
            cmd = pods.argv(container, env, pods.mounts(spec, container, secrets, tmp_path / pod))
            at = f"127.0.0.1:{free_port()}"
            cmd = [a.replace(f"--web.listen-address=:{port}", f"--web.listen-address={at}")
                   for a in cmd]
            assert f"--shard=ordinal/{sts['spec']['replicas']}" in cmd
            procs.append(pods.start(cmd, env, tmp_path / f"{pod}.log"))
            targets[pod] = at
        # One unsharded exporter: the same command line with --shard=1/1.
        env = pods.pod_env(container, secrets, "unsharded")
        whole = f"127.0.0.1:{free_port()}"
        cmd = [a.replace(f"--web.listen-address=:{port}", f"--web.listen-address={whole}")
               .replace(f"--shard=ordinal/{sts['spec']['replicas']}", "--shard=1/1")
               for a in pods.argv(container, env, pods.mounts(spec, container, secrets,
                                                              tmp_path / "unsharded"))]
        procs.append(pods.start(cmd, env, tmp_path / "unsharded.log"))

        monitor = pods.find(objects, "ServiceMonitor", k8s.NAME)
        service = pods.find(objects, "Service", k8s.NAME)
        job = scrape_config(monitor, service, targets, "1s")
        rules = tmp_path / "rules.yml"
        rules.write_text(yaml.safe_dump(
            {"groups": pods.find(objects, "PrometheusRule", k8s.NAME)["spec"]["groups"]}))
        prom_config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                       "rule_files": [str(rules)],
                       "scrape_configs": [job, {"job_name": "unsharded", "scrape_interval": "1s",
                                                "static_configs": [{"targets": [whole]}]}]}
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(prom_config))
        binary = shutil.which("prometheus")
        assert binary, "prometheus is missing: run ./run setup"
        api_port = free_port()
        procs.append(subprocess.Popen(
            [binary, f"--config.file={tmp_path / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{api_port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        api = PrometheusAPI(f"http://127.0.0.1:{api_port}", timeout=10)
        wait_for(lambda: http_get(f"http://127.0.0.1:{api_port}/-/ready")[0] == 200, 30)

        def values(expr: str) -> dict[tuple[str, ...], float]:
            return {tuple(sorted(s["metric"].items())): float(s["value"][1])
                    for s in api.instant(expr)}

        def scraped() -> bool:
            names = ["engines", *targets, "unsharded"]
            for p, name in zip(procs[:len(names)], names, strict=True):
                assert p.poll() is None, (tmp_path / f"{name}.log").read_text()[-2000:]
            return (sum(values('up{job="nautilus-probe"}').values()) == 3
                    and sum(values('up{job="unsharded"}').values()) == 1)

        # Every pod is scraped under the job the rules and dashboards select.
        wait_for(scraped, 40)
        # Each engine × op series is probed by exactly one shard, and together they
        # are the unsharded exporter's series.
        shards = 'nautilus_probe_requests_total{job="nautilus-probe"}'
        wait_for(lambda: len(values(f"count by (engine, op) ({shards})"))
                 == len(values('count by (engine, op) (nautilus_probe_requests_total'
                               '{job="unsharded"})')) > 0, 20)
        per_series = {(dict(k)["engine"], dict(k)["op"]): n
                      for k, n in values(f"count by (engine, op) ({shards})").items()}
        # ... except the trading request's legs: every shard sends its share of it.
        legs = yaml.safe_load(config["exporter.yml"])["trading_request"]["legs"].items()
        assert per_series == {key: 3.0 if key in legs else 1.0 for key in per_series}
        assert len(per_series) > len(legs)
        assert set(per_series) == {(dict(k)["engine"], dict(k)["op"]) for k in values(
            'count by (engine, op) (nautilus_probe_requests_total{job="unsharded"})')}
        assert len(values(f"count by (pod) ({shards})")) == 3
        # The WebSocket pool is split: the shards hold what the one exporter holds.
        desired = values('sum by (job) (nautilus_probe_ws_connections_desired)')
        [(_, sharded), (_, one)] = sorted(desired.items())
        assert sharded == one == 300
        # Open-loop probes: the shards together send what the one exporter sends (a
        # third or three times as much would be a broken split; the tolerance is the
        # window's edges and a busy machine's stalls).
        time.sleep(4)
        window = "4s"
        rates = {job: values(f'sum by (engine) (increase(nautilus_probe_requests_total'
                             f'{{job="{job}"}}[{window}]))') for job in ("nautilus-probe", "unsharded")}
        by_engine = {dict(k)["engine"]: v for k, v in rates["nautilus-probe"].items()}
        whole_by_engine = {dict(k)["engine"]: v for k, v in rates["unsharded"].items()}
        assert set(by_engine) == set(whole_by_engine)
        for engine, n in whole_by_engine.items():
            assert math.isclose(by_engine[engine], n, rel_tol=0.4, abs_tol=2), (engine, rates)
        # The rules evaluate, healthy, over the shards' series.
        def healthy() -> bool:
            groups = api.get("/api/v1/rules")["groups"]
            rules_ = [r for g in groups for r in g["rules"]]
            return bool(rules_) and all(r["health"] == "ok" for r in rules_) and all(
                r.get("lastEvaluation", "").startswith("20") for r in rules_)
        wait_for(healthy, 15)
        recorded = values("nautilus_probe:engine_probe_throughput:rate")
        assert {dict(k)["engine"] for k in recorded} >= set(by_engine) - {"monolith"}
        scraped()
        # Each pod's memory, probing and scraped, stays under its generated limit.
        limit = int(container["resources"]["limits"]["memory"].removesuffix("Mi")) << 20
        for proc in procs[1:1 + len(targets)]:
            assert rss_bytes(proc.pid) < limit, (rss_bytes(proc.pid) >> 20, limit >> 20)
    finally:
        pods.stop(procs)


SERVICE_S = 0.15  # every engine answers in exactly this long: the latency's known truth


def _bucket(ms: float) -> int:
    return LatencyHistogram._bucket(ms / 1e3)


def test_the_indexed_jobs_shares_merge_to_one_process_running_the_whole_load(
        tmp_path: Path, redis_url: str) -> None:
    """The Indexed Job's share command, run as 3 processes with each pod's
    JOB_COMPLETION_INDEX, then the merge Job's first step: the same requests as one
    process running the whole load (counts exactly) and the same latency within one
    bucket of the histogram (1 %)."""
    objects = manifests(BASE / "loadtest")
    job = pods.find(objects, "Job", f"{k8s.NAME}-loadtest")
    [share] = job["spec"]["template"]["spec"]["containers"]
    merge_job = pods.find(objects, "Job", f"{k8s.NAME}-loadtest-merge")
    merge = merge_job["spec"]["template"]["spec"]["initContainers"][0]
    secrets = json.loads(json.dumps(objects))
    secrets.append({"kind": "Secret", "metadata": {"name": k8s.REDIS_SECRET},
                    "stringData": {"url": redis_url}})
    engines = {"defaults": {"service_time": f"{SERVICE_S * 1e3:g}ms", "error_ratio": 0},
               "engines": {e: {} for e in ("analytics", "risk", "factor", "ml", "features",
                                           "websocket", "strategy", "marketdata", "portfolio")}}
    (tmp_path / "synthetic.yml").write_text(yaml.safe_dump(engines))
    # A short run with the known-truth engines: the Job's arguments, then these (the
    # later flag wins); no step may stop on a p99 target.
    short = ["--duration=3.7", "--rate=30", "--concurrency=6", "--p99-target=10"]
    procs = [pods.start([*pods.argv({"args": [
        "engines", f"--config.file={tmp_path / 'synthetic.yml'}", f"--redis.url={redis_url}"]},
        {}, {})], {}, tmp_path / "engines.log")]
    try:
        # The engines' consumer groups exist before the first request.
        wait_for(lambda: "serving engines" in (tmp_path / "engines.log").read_text(), 30)
        # One process running the whole load, first: alone, not beside the shares.
        single = tmp_path / "single.json"
        whole = pods.start([*pods.argv({"args": [
            "loadtest", "containerized", f"--redis.url={redis_url}", "--quiet",
            f"--out={single}", "--pushgateway.url="]}, {}, {}), *short], {},
            tmp_path / "single.log")
        assert whole.wait(60) == 0, (tmp_path / "single.log").read_text()[-2000:]
        shares = []
        for index in range(job["spec"]["completions"]):
            pod = f"{job['metadata']['name']}-{index}"
            env = pods.pod_env(share, secrets, pod, {"JOB_COMPLETION_INDEX": str(index)})
            cmd = pods.argv(share, env, pods.mounts(job["spec"]["template"]["spec"], share,
                                                    secrets, tmp_path / pod))
            shares.append(pods.start(cmd + short, env, tmp_path / f"{pod}.log"))
        for i, p in enumerate(shares):
            assert p.wait(60) == 0, (tmp_path / f"{job['metadata']['name']}-{i}.log"
                                     ).read_text()[-2000:]
        env = pods.pod_env(merge, secrets, "merge-0")
        paths = pods.mounts(merge_job["spec"]["template"]["spec"], merge, secrets,
                            tmp_path / "merge")
        cmd = [a for a in pods.argv(merge, env, paths) if not a.startswith("--pushgateway.url")]
        out = subprocess.run(cmd + ["--wait=10"], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "3 shares of run 'run-1' merged" in out.stdout
    finally:
        pods.stop(procs)
    merged = json.loads((paths["/results"] / "containerized_results.json").read_text())
    one = json.loads(single.read_text())
    a, b = one["raw"], merged["raw"]
    # Open loop: exactly the same requests, every one answered.
    assert a["latency"]["histogram"]["count"] == b["latency"]["histogram"]["count"] > 0
    assert a["latency"]["errors"] == b["latency"]["errors"] == 0
    assert [(s["rate"], s["histogram"]["count"], s["errors"]) for s in a["sustained"]] == \
        [(s["rate"], s["histogram"]["count"], s["errors"]) for s in b["sustained"]]
    assert len(b["sustained"]) == 6
    # Closed loop: the same requests in flight in all (6, split 2 + 2 + 2).
    assert merged["throughput_benchmark"]["concurrent_workers"] == \
        one["throughput_benchmark"]["concurrent_workers"] == 6
    assert merged["metadata"]["offered"]["in_flight"] == 6
    assert merged["metadata"]["offered"]["shares"] == 3
    # The merge is exact: bucket by bucket, the shares' histograms add up.
    stored = [json.loads(v) for v in redis.Redis.from_url(redis_url, decode_responses=True)
              .hgetall("nautilus:probe:loadtest:{run-1}:containerized:merged").values()]
    assert len(stored) == 3
    total = LatencyHistogram()
    for record in stored:
        total.merge(LatencyHistogram.from_json(record["raw"]["latency"]["histogram"]))
    assert total.to_json() == b["latency"]["histogram"]
    # The same latency as the one process: the truth is 150 ms plus the bus's round
    # trips (a few ms). The median within one bucket (1 %) on a quiet machine; two
    # runs, not two merges, are compared, so on a 2-core machine shared with other
    # work the run-to-run noise is allowed (15 %: three processes at once there add
    # tens of ms). The tail above the truth and below twice it.
    truth = SERVICE_S * 1e3
    for q in ("p50_latency", "p90_latency", "p99_latency"):
        x, y = one["latency_benchmark"][q], merged["latency_benchmark"][q]
        assert truth <= x < 2 * truth and truth <= y < 2 * truth, (q, x, y)
    x, y = one["latency_benchmark"]["p50_latency"], merged["latency_benchmark"]["p50_latency"]
    assert abs(_bucket(x) - _bucket(y)) <= 1 or abs(x - y) <= 0.15 * truth, (x, y)
