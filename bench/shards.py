"""How exporter throughput grows from 1 to 2 exporter processes (`--shard i/N`) on
this machine: the same offered load (four probe streams, beyond what one process
sustains) against the minimal responder, answered probes/s summed over shards.

    PYTHONPATH=. .venv/bin/python bench/shards.py [--rate 16000] [--seconds 5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


from nautilus_testkit import ROOT, RedisServer, cpu_seconds, free_port, http_get, wait_for
from nautilus_testkit.exposition import value
from nautilus_testkit.reference_run import reference_responder

PY = sys.executable
OPS = ("limit_check", "breach_detection", "alert", "position_check")


def run(url: str, shards: int, rate: float, seconds: float, tmp: Path) -> dict:
    cfg = tmp / "exp.yml"
    cfg.write_text(yaml.safe_dump({
        "redis_url": url, "self_reports": {"engines": []},
        "engines": {"risk": {op: {"rate": rate / len(OPS), "timeout": "2s"} for op in OPS}}}))
    responder = reference_responder(url, seconds + 15)
    procs, bases = [], []
    for i in range(1, shards + 1):
        port = free_port()
        procs.append(subprocess.Popen([PY, "-m", "nautilus_probe", "exporter", "--config.file", str(cfg),
                                       "--shard", f"{i}/{shards}",
                                       "--web.listen-address", f"127.0.0.1:{port}"],
                                      cwd=ROOT, stderr=subprocess.DEVNULL))
        bases.append(f"http://127.0.0.1:{port}")
    try:
        for base in bases:
            wait_for(lambda base=base: http_get(f"{base}/-/ready")[0] == 200, 15)
        time.sleep(1.5)

        def answered() -> float:
            return sum(value(http_get(f"{b}/metrics")[1], "nautilus_probe_latency_seconds_count")
                       for b in bases)
        t0, n0, c0 = time.monotonic(), answered(), sum(cpu_seconds(p.pid) for p in procs)
        time.sleep(seconds)
        t1, n1, c1 = time.monotonic(), answered(), sum(cpu_seconds(p.pid) for p in procs)
    finally:
        for p in (*procs, responder):
            p.terminate()
            p.wait()
    return {"per_second": (n1 - n0) / (t1 - t0), "cpu_cores": (c1 - c0) / (t1 - t0)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=16000)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    server = RedisServer().start()
    tmp = Path(tempfile.mkdtemp(prefix="np-shards-"))
    one, two = [], []
    try:
        for _ in range(args.repeats):
            one.append(run(server.url, 1, args.rate, args.seconds, tmp))
            two.append(run(server.url, 2, args.rate, args.seconds, tmp))
    finally:
        server.remove()
    m1 = statistics.median(r["per_second"] for r in one)
    m2 = statistics.median(r["per_second"] for r in two)
    print(f"offered {args.rate:.0f}/s; answered: 1 exporter {m1:.0f}/s "
          f"({statistics.median(r['cpu_cores'] for r in one):.2f} cores), 2 shards {m2:.0f}/s "
          f"({statistics.median(r['cpu_cores'] for r in two):.2f} cores); x{m2 / m1:.2f}\n"
          f"runs 1: {[round(r['per_second']) for r in one]}, 2: {[round(r['per_second']) for r in two]}")


if __name__ == "__main__":
    main()
