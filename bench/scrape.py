"""Do scrapes move the numbers? Probe latency with no scraping, with one scrape/s
(Prometheus) and with 20 clients scraping back to back, in one run.

The exporter probes 15 engine × op series (500 probes/s in all) against the
minimal reference responder on a private redis-server; each phase's p50/p99
come from the exporter's own latency histogram (the difference of two scrapes
around the phase). Phases alternate and repeat; figures are medians. The
Prometheus phase asks as Prometheus does (OpenMetrics, gzip); the 20 clients ask
for the text format, uncompressed.

    PYTHONPATH=. .venv/bin/python bench/scrape.py [--seconds 10] [--repeats 5] [--out results/bench-scrape.json]
        [--rev REV]   (the exporter of another commit, e.g. to measure a change's before)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path


from nautilus_testkit import ROOT, RedisServer, cpu_seconds, http_get
from nautilus_testkit.exposition import bucket_delta, histogram_quantile
from nautilus_testkit.reference_run import checkout, exporter_on_reference

PY = sys.executable
SERIES = 15
RATE = 500.0
# What Prometheus 2.x asks for when it scrapes.
PROMETHEUS = {"Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                        "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
              "Accept-Encoding": "gzip"}


class Scrapers:
    """`clients` threads scraping /metrics, each every `interval` s (0: back to back),
    sending `headers`."""

    def __init__(self, url: str, clients: int, interval: float, headers: dict[str, str]) -> None:
        self.url, self.clients, self.interval, self.headers = url, clients, interval, headers
        self.stop = threading.Event()
        self.times: list[float] = []
        self.sizes: list[int] = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _run(self) -> None:
        while not self.stop.is_set():
            t0 = time.monotonic()
            request = urllib.request.Request(self.url, headers=self.headers)
            with urllib.request.urlopen(request, timeout=30) as resp:
                self.sizes.append(len(resp.read()))
            self.times.append(time.monotonic() - t0)
            if self.interval:
                self.stop.wait(max(self.interval - (time.monotonic() - t0), 0))

    def __enter__(self) -> Scrapers:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(35)


def phase(base: str, pid: int, seconds: float, clients: int, interval: float,
          headers: dict[str, str]) -> dict:
    _, before = http_get(f"{base}/metrics", timeout=30)
    t0, cpu0 = time.monotonic(), cpu_seconds(pid)
    with Scrapers(f"{base}/metrics", clients, interval, headers) as s:
        time.sleep(seconds)
    t1, cpu1 = time.monotonic(), cpu_seconds(pid)
    _, after = http_get(f"{base}/metrics", timeout=30)
    delta = bucket_delta(before, after, "nautilus_probe_latency_seconds")
    return {"clients": clients, "scrapes": len(s.times),
            "scrape_ms": 1e3 * statistics.median(s.times) if s.times else None,
            "bytes": statistics.median(s.sizes) if s.sizes else len(after.encode()),
            "answered": delta[-1][1],
            "p50_ms": 1e3 * histogram_quantile(0.5, delta),
            "p99_ms": 1e3 * histogram_quantile(0.99, delta),
            "cpu_share": (cpu1 - cpu0) / (t1 - t0)}


PHASES = {"none": (0, 0.0, {}), "prometheus_1s": (1, 1.0, PROMETHEUS), "20_clients": (20, 0.0, {})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default="results/bench-scrape.json")
    ap.add_argument("--rev", help="measure the exporter of this commit instead")
    args = ap.parse_args()
    code = checkout(args.rev) if args.rev else ROOT
    if code is None:
        sys.exit(f"bench/scrape.py: cannot check out {args.rev} (git worktree failed)")
    server = RedisServer().start()
    total = 3 * args.seconds * args.repeats + 20
    ops = {f"op{i:02d}": RATE / SERIES for i in range(SERIES)}
    runs: dict[str, list[dict]] = {name: [] for name in PHASES}
    try:
        with exporter_on_reference(server.url, ops, total, code=code) as (base, exporter):
            time.sleep(2)  # warm up
            for i in range(args.repeats):
                print(f"repeat {i + 1}/{args.repeats} ...", file=sys.stderr, flush=True)
                for name, (clients, interval, headers) in PHASES.items():
                    runs[name].append(phase(base, exporter.pid, args.seconds, clients, interval,
                                            headers))
    finally:
        server.remove()
    summary = {name: {key: statistics.median(r[key] for r in rs)
                      for key in ("p50_ms", "p99_ms", "cpu_share", "bytes", "answered")}
               for name, rs in runs.items()}
    for name, rs in runs.items():
        summary[name]["scrapes_per_s"] = statistics.median(r["scrapes"] for r in rs) / args.seconds
    base_p99 = summary["none"]["p99_ms"]
    print(f"{'phase':<15} {'p50 ms':>8} {'p99 ms':>8} {'p99 vs none':>12} {'scrapes/s':>10} "
          f"{'CPU':>6} {'bytes':>9}")
    for name, s in summary.items():
        print(f"{name:<15} {s['p50_ms']:8.2f} {s['p99_ms']:8.2f} {s['p99_ms'] / base_p99:11.2f}x "
              f"{s['scrapes_per_s']:10.1f} {100 * s['cpu_share']:5.0f}% {s['bytes']:9.0f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"summary": summary, "runs": runs}, indent=2))
    # The aims (docs/performance.md), each repeat against the no-scraping phase beside it.
    added = summary["prometheus_1s"]["p99_ms"] - base_p99
    worst = max(r["p99_ms"] / n["p99_ms"] for r, n in zip(runs["20_clients"], runs["none"],
                                                            strict=True))
    print(f"""
one scrape/s: p99 over no scraping (ms, median)          {added:+6.2f}   aim < +0.5  {'met' if added < 0.5 else 'NOT MET'}
20 scrapers: p99 / no scraping, worst of {args.repeats} repeats       {worst:6.2f}   aim <= 2    {'met' if worst <= 2 else 'NOT MET'}""")


if __name__ == "__main__":
    main()
