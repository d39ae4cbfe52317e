"""Soak: the exporter probing 1,000/s for ten minutes, its memory sampled throughout.

RSS growth is measured from the end of the first minute (warm: buffers and
caches filled) to the end; every probe must be accounted for at the end
(requests = answered + failed + in flight, from one consistent scrape).

    PYTHONPATH=. .venv/bin/python bench/soak.py [--minutes 10] [--rate 1000] [--out results/bench-soak.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


from nautilus_testkit import RedisServer, cpu_seconds, http_get, rss_bytes
from nautilus_testkit.exposition import value
from nautilus_testkit.reference_run import exporter_on_reference

PY = sys.executable


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--rate", type=float, default=1000)
    ap.add_argument("--out", default="results/bench-soak.json")
    args = ap.parse_args()
    seconds = args.minutes * 60
    server = RedisServer().start()
    ops = {op: args.rate / 4 for op in ("limit_check", "breach_detection", "alert", "op3")}
    samples = []
    try:
        with exporter_on_reference(server.url, ops, seconds + 30) as (base, exporter):
            t0, cpu0 = time.monotonic(), cpu_seconds(exporter.pid)
            while (now := time.monotonic()) - t0 < seconds:
                text = http_get(f"{base}/metrics", timeout=10)[1]
                rss_mb = round(rss_bytes(exporter.pid) / 2**20, 2)
                samples.append({"t": round(now - t0, 1), "rss_mb": rss_mb,
                                "requests": value(text, "nautilus_probe_requests_total"),
                                "failures": value(text, "nautilus_probe_failures_total"),
                                "skipped": value(text, "nautilus_probe_probes_skipped_total")})
                print(f"\r{samples[-1]}", end="", file=sys.stderr, flush=True)
                time.sleep(10)
            cpu = (cpu_seconds(exporter.pid) - cpu0) / (time.monotonic() - t0)
            text = http_get(f"{base}/metrics", timeout=10)[1]
    finally:
        server.remove()
    print(file=sys.stderr)
    warm = next(s for s in samples if s["t"] >= 60)
    end = samples[-1]
    requests = value(text, "nautilus_probe_requests_total")
    settled = (value(text, "nautilus_probe_latency_seconds_count")
               + value(text, "nautilus_probe_failures_total") + value(text, "nautilus_probe_in_flight"))
    summary = {"minutes": args.minutes, "rate": args.rate, "probes": requests,
               "failures": end["failures"], "skipped": end["skipped"],
               "rss_mb_after_1min": warm["rss_mb"], "rss_mb_end": end["rss_mb"],
               "rss_growth": end["rss_mb"] / warm["rss_mb"] - 1, "cpu_share": cpu,
               "accounted": requests == settled}
    print(json.dumps(summary, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"summary": summary, "samples": samples}, indent=2))


if __name__ == "__main__":
    main()
