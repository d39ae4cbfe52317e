"""Where the exporter's CPU goes: cProfile of its event loop (the probes, the reply
reader, the accounting; /metrics renders on another thread, not profiled) while it
probes the minimal reference responder at a fixed rate, and its CPU share.

    PYTHONPATH=. python bench/profile.py [--rates 1000 8000] [--seconds 10] [--top 15]

Prints, per rate, the CPU share and the functions with the most own time (tottime)
and the most time including callees (cumtime). cProfile slows the profiled code
(roughly 1.5-2× here), so read the shares, not the absolute times.
"""

from __future__ import annotations

import argparse
import io
import pstats
import tempfile
import time
from pathlib import Path

from nautilus_testkit import RedisServer, cpu_seconds, http_get
from nautilus_testkit.exposition import samples
from nautilus_testkit.reference_run import exporter_on_reference


def profile(url: str, rate: float, seconds: float, out: Path) -> dict[str, float]:
    with exporter_on_reference(url, {"limit_check": rate}, seconds + 10, profile=out) as (
            base, exporter):
        time.sleep(1.0)  # warm up
        t0, cpu0, (_, before) = time.monotonic(), cpu_seconds(exporter.pid), http_get(f"{base}/metrics")
        time.sleep(seconds)
        t1, cpu1, (_, after) = time.monotonic(), cpu_seconds(exporter.pid), http_get(f"{base}/metrics")
    name = ("nautilus_probe_latency_seconds_count", (("engine", "risk"), ("op", "limit_check")))
    answered = samples(after).get(name, 0.0) - samples(before).get(name, 0.0)
    return {"cpu_share": (cpu1 - cpu0) / (t1 - t0), "answered_per_second": answered / (t1 - t0)}


def top(path: Path, key: str, n: int) -> str:
    buf = io.StringIO()
    stats = pstats.Stats(str(path), stream=buf)
    stats.strip_dirs().sort_stats(key).print_stats(n)
    lines = buf.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls"))
    return "\n".join(lines[start:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", type=float, nargs="+", default=[1000.0, 8000.0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    server = RedisServer().start()
    try:
        with tempfile.TemporaryDirectory(prefix="np-profile-") as tmp:
            for rate in args.rates:
                out = Path(tmp) / f"exporter-{rate:g}.prof"
                got = profile(server.url, rate, args.seconds, out)
                print(f"\n## {rate:,.0f} probes/s offered: {got['answered_per_second']:,.0f}/s "
                      f"answered, exporter CPU {got['cpu_share'] * 100:.0f} % of one core "
                      "(under cProfile)\n")
                print("### own time (tottime)\n")
                print(top(out, "tottime", args.top))
                print("\n### including callees (cumtime)\n")
                print(top(out, "cumulative", args.top))
    finally:
        server.remove()


if __name__ == "__main__":
    main()
