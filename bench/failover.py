"""Failover: kill -9 of the MessageBus master while the exporter probes nine engines,
on Redis Sentinel (1 master, 1 replica, 3 sentinels, down-after 1 s) and on a Redis
Cluster (3 masters with a replica each, node timeout 1 s), --runs times each.

Per run: seconds from the kill to the first scrape with answers again (scrapes
every 0.2 s), probes lost and the reason they were counted under, the answer
rate over the 10 s after, whether every scrape balanced (requests = answered +
failed + in flight), and the failovers the exporter counted.

    PYTHONPATH=. .venv/bin/python bench/failover.py [--runs 5] [--rate 20] [--out results/bench-failover.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from collections.abc import Iterator
from pathlib import Path

import yaml

from nautilus_testkit import ROOT, free_port, http_get, wait_for
from nautilus_testkit.exposition import value
from nautilus_testkit.failover import Failover, OK, through_failover
from nautilus_testkit.sentinel import Cluster, Sentinels
from nautilus_wire import protocol
from nautilus_wire.protocol import ENGINE_OPERATIONS

PY = sys.executable


@contextmanager
def probing(url: str, rate: float) -> Iterator[str]:
    """Nine synthetic engines and an exporter on `url`; yields the exporter's base URL."""
    tmp = Path(tempfile.mkdtemp(prefix="np-failover-"))
    (tmp / "syn.yml").write_text(yaml.safe_dump({"redis_url": url, "report_interval": "1s"}))
    engines = {e: {ops[0]: {"rate": rate, "timeout": "500ms"}} for e, ops in ENGINE_OPERATIONS.items()}
    (tmp / "exp.yml").write_text(yaml.safe_dump({"redis_url": url, "engines": engines}))
    port = free_port()
    procs = [subprocess.Popen([PY, "-m", "nautilus_probe", "engines", "--config.file",
                               str(tmp / "syn.yml")], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=open(tmp / "engines.log", "wb")),
             subprocess.Popen([PY, "-m", "nautilus_probe", "exporter", "--config.file",
                               str(tmp / "exp.yml"), "--web.listen-address", f"127.0.0.1:{port}",
                               "--web.render-max-age", "0"], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=open(tmp / "exporter.log", "wb"))]
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: value(http_get(f"{base}/metrics")[1], OK) >= 9 * rate, 30)
        yield base
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def figures(run: Failover, rate: float, hit: int) -> dict:
    sent, answered = run.window_rate()
    return {"engines_hit": hit, "first_answer_s": round(run.first_answer_s, 2),
            "lost": run.lost(), "lost_total": sum(run.lost().values()),
            "skipped": run.after.skipped - run.killed.skipped,
            "answers_per_s_after": round(answered, 1), "configured_per_s": 9 * rate,
            "sent_per_s_after": round(sent, 1),
            "scrapes": len(run.scrapes), "unbalanced_scrapes": len(run.unbalanced()),
            "failovers_counted": run.after.changes - run.killed.changes}


def sentinel_run(rate: float) -> dict:
    group = Sentinels().start()
    try:
        with probing(group.url, rate) as base:
            return figures(through_failover(base, group.kill_master), rate, 9)
    finally:
        group.stop()


def cluster_run(rate: float) -> dict:
    cluster = Cluster(masters=3, replicas=1).start()
    try:
        with probing(cluster.url, rate) as base:
            victim = cluster.master_of(protocol.request_stream(protocol.DEFAULT_PREFIX, "risk",
                                                               "normal"))
            replies = protocol.reply_key(protocol.DEFAULT_PREFIX, "exporter")
            hit = tuple(ENGINE_OPERATIONS) if cluster.master_of(replies) is victim else tuple(
                e for e in ENGINE_OPERATIONS if cluster.master_of(
                    protocol.request_stream(protocol.DEFAULT_PREFIX, e, "normal")) is victim)

            def kill() -> float:
                victim.kill()
                return time.monotonic()

            return figures(through_failover(base, kill, engines=hit), rate, len(hit))
    finally:
        cluster.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--rate", type=float, default=20, help="probes/s per engine")
    ap.add_argument("--out", default="results/bench-failover.json")
    args = ap.parse_args()
    out: dict = {"rate_per_engine": args.rate}
    for name, one in (("sentinel", sentinel_run), ("cluster", cluster_run)):
        runs = []
        for i in range(args.runs):
            runs.append(one(args.rate))
            print(f"{name} run {i + 1}: {runs[-1]}", file=sys.stderr, flush=True)
        first = [r["first_answer_s"] for r in runs]
        out[name] = {"runs": runs, "first_answer_s": {"min": min(first), "median":
                     statistics.median(first), "max": max(first)},
                     "lost_total": {"min": min(r["lost_total"] for r in runs),
                                    "max": max(r["lost_total"] for r in runs)},
                     "unbalanced_scrapes": sum(r["unbalanced_scrapes"] for r in runs)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(json.dumps({k: v if k == "rate_per_engine" else {kk: vv for kk, vv in v.items()
                                                            if kk != "runs"}
                      for k, v in out.items()}, indent=1))


if __name__ == "__main__":
    main()
