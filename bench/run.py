"""MessageBus benchmark: the exporter beside a bare redis-py request/reply loop,
beside itself on redis-py (exporter.yml `redis_client: redis-py`), and beside the
exporter as it was before the lean path (a git worktree of that commit).

Everything runs on loopback against a redis-server this script starts, in one
run, alternating the sides and repeating, so that the machine's noise hits all of
them; figures are medians of the repeats. Three measurements:

1. round trips/s at saturation: the reference with 64 requests in flight (closed
   loop), the exporter as the highest open-loop rate it sustains;
2. p50/p99 at a fixed 1,000 probes/s (latency from the scheduled send time);
3. CPU per probe at 1,000 probes/s.

It ends with each aim of docs/performance.md as a ratio, met or not met.

    ./run bench [--seconds 5] [--repeats 3] [--out results/bench-messagebus.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path


from nautilus_testkit import ROOT, RedisServer, cpu_seconds, http_get
from nautilus_testkit.exposition import bucket_delta, histogram_quantile, samples
from nautilus_testkit.reference_run import BEFORE, checkout, exporter_on_reference, reference_responder

PY = sys.executable


def reference(url: str, seconds: float, rate: float | None) -> dict:
    responder = reference_responder(url, seconds + 2)
    time.sleep(0.5)
    args = ["--rate", str(rate)] if rate else ["--inflight", "64"]
    out = subprocess.run([PY, "bench/reference.py", "prober", url, str(seconds), *args],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    responder.wait()
    return json.loads(out.stdout)


def exporter_run(url: str, seconds: float, rate: float, side: str) -> dict:
    client, code = SIDES[side]
    with exporter_on_reference(url, {"limit_check": rate}, seconds + 10,
                               redis_client=client, code=code) as (base, exporter):
        metrics = f"{base}/metrics"
        time.sleep(1.0)  # warm up
        t0, cpu0, (_, before) = time.monotonic(), cpu_seconds(exporter.pid), http_get(metrics)
        time.sleep(seconds)
        t1, cpu1, (_, after) = time.monotonic(), cpu_seconds(exporter.pid), http_get(metrics)
    name = "nautilus_probe_latency_seconds"
    delta = bucket_delta(before, after, name)
    ok = delta[-1][1]
    s_after, s_before = samples(after), samples(before)
    failures = sum(v - s_before.get(k, 0.0) for k, v in s_after.items()
                   if k[0] == "nautilus_probe_failures_total")
    skipped = sum(v - s_before.get(k, 0.0) for k, v in s_after.items()
                  if k[0] == "nautilus_probe_probes_skipped_total")
    return {"offered": rate, "per_second": ok / (t1 - t0), "failures": failures,
            "skipped": skipped,
            "p50_ms": 1e3 * histogram_quantile(0.5, delta),
            "p99_ms": 1e3 * histogram_quantile(0.99, delta),
            "cpu_share": (cpu1 - cpu0) / (t1 - t0)}


def med(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def us_per_probe(runs: list[dict]) -> float:
    """CPU per answered probe, microseconds (median over runs)."""
    return statistics.median(1e6 * r["cpu_share"] / r["per_second"] for r in runs)


SWEEP = (2000, 4000, 8000, 12000, 16000, 20000, 24000, 28000, 32000, 40000, 48000)
# The exporter three ways: now (the thin hot path), now on redis-py for every command
# (exporter.yml `redis_client`), and the code before the lean path (git worktree).
SIDES: dict[str, tuple[str, Path]] = {"auto": ("auto", ROOT), "redis-py": ("redis-py", ROOT)}
BEFORE_CODE = checkout()
if BEFORE_CODE is not None:
    SIDES["before"] = ("auto", BEFORE_CODE)
CLIENTS = tuple(SIDES)


def answered_in_full(r: dict) -> bool:
    return r["per_second"] >= 0.99 * r["offered"] and r["failures"] == 0


def sustained(runs: list[dict]) -> dict:
    """The highest offered rate answered in full: >= 99 % answered, nothing failed."""
    good = [r for r in runs if answered_in_full(r)]
    return max(good, key=lambda r: r["offered"]) if good else {"offered": 0, "per_second": 0}


# Halvings of the gap between the highest rate answered in full and the next one
# tried: the sweep's steps alone made the ratio of two sides a ratio of steps.
BISECTIONS = 2


def aim(name: str, ratio: float, limit: float, at_most: bool) -> str:
    met = ratio <= limit if at_most else ratio >= limit
    return (f"{name:<58} {ratio:6.2f}   aim {'<=' if at_most else '>='} {limit:<4g}  "
            f"{'met' if met else 'NOT MET'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="results/bench-messagebus.json")
    args = ap.parse_args()
    server = RedisServer().start()
    runs: dict[str, list] = {"ref_sat": [], "ref_1k": [],
                             **{f"sweep_{c}": [] for c in CLIENTS}, **{f"1k_{c}": [] for c in CLIENTS}}
    try:
        for i in range(args.repeats):
            print(f"repeat {i + 1}/{args.repeats} ...", file=sys.stderr, flush=True)
            runs["ref_sat"].append(reference(server.url, args.seconds, None))
            for client in CLIENTS:
                sweep = []
                for rate in SWEEP:
                    sweep.append(exporter_run(server.url, args.seconds, rate, client))
                    if sweep[-1]["per_second"] < 0.9 * rate:
                        break  # past saturation
                for _ in range(BISECTIONS):
                    good = sustained(sweep)["offered"]
                    above = [r["offered"] for r in sweep if r["offered"] > good]
                    if not good or not above:
                        break
                    sweep.append(exporter_run(server.url, args.seconds,
                                              (good + min(above)) / 2, client))
                runs[f"sweep_{client}"].append(sweep)
            runs["ref_1k"].append(reference(server.url, args.seconds, 1000))
            for client in CLIENTS:
                runs[f"1k_{client}"].append(exporter_run(server.url, args.seconds, 1000, client))
    finally:
        server.remove()
    s: dict[str, float] = {
        "reference_round_trips_per_second": med(runs["ref_sat"], "per_second"),
        "reference_1k_p50_ms": med(runs["ref_1k"], "p50_ms"),
        "reference_1k_p99_ms": med(runs["ref_1k"], "p99_ms"),
        "reference_1k_cpu_share": med(runs["ref_1k"], "cpu_share"),
        "reference_1k_cpu_us_per_probe": us_per_probe(runs["ref_1k"]),
    }
    for c in CLIENTS:
        k = c.replace("-", "_")
        s[f"{k}_sustained_per_second"] = statistics.median(
            sustained(sweep)["per_second"] for sweep in runs[f"sweep_{c}"])
        s[f"{k}_peak_per_second"] = statistics.median(
            max(r["per_second"] for r in sweep) for sweep in runs[f"sweep_{c}"])
        for key in ("p50_ms", "p99_ms", "cpu_share"):
            s[f"{k}_1k_{key}"] = med(runs[f"1k_{c}"], key)
        s[f"{k}_1k_cpu_us_per_probe"] = us_per_probe(runs[f"1k_{c}"])
        s[f"{k}_1k_failures"] = sum(r["failures"] for r in runs[f"1k_{c}"])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"summary": s, "runs": runs}, indent=2))
    have_before = "before" in SIDES

    def b(key: str, fmt: str, scale: float = 1.0) -> str:
        return format(scale * s[f"before_{key}"], fmt) if have_before else "-"

    print(f"""
                                  bare loop    exporter  exporter (redis-py)  before ({BEFORE})
round trips/s at saturation       {s['reference_round_trips_per_second']:9.0f}  {s['auto_sustained_per_second']:9.0f}  {s['redis_py_sustained_per_second']:9.0f}  {b('sustained_per_second', '9.0f'):>18}   (peaks {s['auto_peak_per_second']:.0f}, {s['redis_py_peak_per_second']:.0f})
p50 at 1,000/s (ms)               {s['reference_1k_p50_ms']:9.2f}  {s['auto_1k_p50_ms']:9.2f}  {s['redis_py_1k_p50_ms']:9.2f}  {b('1k_p50_ms', '9.2f'):>18}
p99 at 1,000/s (ms)               {s['reference_1k_p99_ms']:9.2f}  {s['auto_1k_p99_ms']:9.2f}  {s['redis_py_1k_p99_ms']:9.2f}  {b('1k_p99_ms', '9.2f'):>18}
CPU at 1,000/s (% of one core)    {100 * s['reference_1k_cpu_share']:9.1f}  {100 * s['auto_1k_cpu_share']:9.1f}  {100 * s['redis_py_1k_cpu_share']:9.1f}  {b('1k_cpu_share', '9.1f', 100):>18}
CPU per probe at 1,000/s (us)     {s['reference_1k_cpu_us_per_probe']:9.0f}  {s['auto_1k_cpu_us_per_probe']:9.0f}  {s['redis_py_1k_cpu_us_per_probe']:9.0f}  {b('1k_cpu_us_per_probe', '9.0f'):>18}

{aim("CPU per probe at 1,000/s / the bare redis-py loop's", s['auto_1k_cpu_us_per_probe'] / s['reference_1k_cpu_us_per_probe'], 0.5, True)}
{aim("p99 at 1,000/s / the bare loop's", s['auto_1k_p99_ms'] / s['reference_1k_p99_ms'], 1.0, True)}
{aim("sustained probes/s / the exporter's on redis-py", s['auto_sustained_per_second'] / max(s['redis_py_sustained_per_second'], 1), 2.0, False)}""")
    if have_before:
        print(aim(f"sustained probes/s / the exporter's before ({BEFORE})",
                  s['auto_sustained_per_second'] / max(s['before_sustained_per_second'], 1), 2.0,
                  False))
    print(f"""
Bare loop: bench/reference.py, 64 requests in flight (closed loop) at saturation.
Exporter: the highest open-loop rate answered in full (>= 99 %, no failures) in a
sweep over {', '.join(map(str, SWEEP))}/s, then {BISECTIONS} halvings of the gap
above it. All against the same minimal responder.
Before: the exporter at {BEFORE} (main before the lean path), from a git worktree.
(medians of {args.repeats} repeats of {args.seconds:g} s; raw runs in {args.out})""")


if __name__ == "__main__":
    main()
