"""Load generator benchmark: trading requests/s one `loadtest` worker drives, now and
as it was before the lean hot path, in one run.

Each side is the load test's own request path (nautilus_loadtest.caller.Caller,
drivers.closed_loop, the four legs of the trading request in parallel), run as one
process against the minimal reference responder answering the four leg engines
(bench/reference.py). "Before" is the same code at the commit before the lean path
(nautilus_testkit.reference_run.BEFORE), checked out with `git worktree` beside this
one; the sides alternate and repeat, figures are medians.

    PYTHONPATH=. python bench/loadgen.py [--seconds 5] [--repeats 3] [--concurrency 64]
    (the worker itself: python bench/loadgen.py drive REDIS_URL SECONDS CONCURRENCY)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

PREFIX = "nautilus:probe"


async def drive(url: str, seconds: float, concurrency: int) -> dict[str, float]:
    """One worker: closed loop of trading requests; what it completed and its CPU."""
    from nautilus_loadtest.caller import Caller
    from nautilus_loadtest.drivers import Tally, closed_loop
    from nautilus_wire.protocol import TRADING_REQUEST_LEGS as LEGS
    from nautilus_wire.redis_client import connect

    client = connect(url)
    async with Caller(client, "streams", PREFIX, f"loadgen_{os.getpid()}") as caller:
        async def trading_request() -> None:
            replies = await asyncio.gather(*(caller.call(e, op, timeout=2.0) for e, op in LEGS))
            if any(r.status != "ok" for r in replies):
                raise RuntimeError("not ok")

        tally = Tally("loadgen", False)
        cpu0 = time.process_time()
        duration = await closed_loop(trading_request, concurrency, seconds, asyncio.Event(), tally)
        cpu = time.process_time() - cpu0
    await client.aclose()
    return {"per_second": tally.hist.count / duration, "errors": tally.errors,
            "cpu_share": cpu / duration, "p99_ms": 1e3 * tally.hist.quantile(0.99)}


def side(code: Path, url: str, seconds: float, concurrency: int) -> dict[str, float]:
    from nautilus_testkit.reference_run import python_env

    out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "drive", url,
                          str(seconds), str(concurrency)], env=python_env(code), cwd=code,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main() -> None:
    if sys.argv[1:2] == ["drive"]:
        try:
            import uvloop
            uvloop.install()
        except ImportError:
            pass
        url, seconds, concurrency = sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
        print(json.dumps(asyncio.run(drive(url, seconds, concurrency))))
        return
    from nautilus_testkit import ROOT, RedisServer
    from nautilus_testkit.reference_run import BEFORE, checkout, reference_responder
    from nautilus_wire.protocol import TRADING_REQUEST_LEGS as LEGS

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=64)
    args = ap.parse_args()
    before = checkout()
    if before is None:
        print(f"loadgen: no git checkout of {BEFORE} to compare with; skipped", file=sys.stderr)
        return
    sides = {"before": before, "now": ROOT}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    server = RedisServer().start()
    try:
        for i in range(args.repeats):
            print(f"repeat {i + 1}/{args.repeats} ...", file=sys.stderr, flush=True)
            for name, code in sides.items():
                responder = reference_responder(server.url, args.seconds + 3,
                                                tuple(e for e, _ in LEGS))
                time.sleep(0.5)
                runs[name].append(side(code, server.url, args.seconds, args.concurrency))
                responder.wait()
    finally:
        server.remove()
    med = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items()}
    ratio = med["now"]["per_second"] / max(med["before"]["per_second"], 1e-9)
    print(f"""
                                        before ({BEFORE})       now
trading requests/s, one worker         {med['before']['per_second']:9.0f}  {med['now']['per_second']:9.0f}
engine operations/s (4 legs each)      {4 * med['before']['per_second']:9.0f}  {4 * med['now']['per_second']:9.0f}
worker CPU (% of one core)             {100 * med['before']['cpu_share']:9.0f}  {100 * med['now']['cpu_share']:9.0f}
worker CPU per trading request (us)    {1e6 * med['before']['cpu_share'] / med['before']['per_second']:9.0f}  {1e6 * med['now']['cpu_share'] / med['now']['per_second']:9.0f}
p99 (ms)                               {med['before']['p99_ms']:9.2f}  {med['now']['p99_ms']:9.2f}
errors (all runs)                      {sum(r['errors'] for r in runs['before']):9.0f}  {sum(r['errors'] for r in runs['now']):9.0f}

{'loadtest trading requests/s per worker / before':<58} {ratio:6.2f}   aim >= 2     {'met' if ratio >= 2 else 'NOT MET'}
(closed loop, {args.concurrency} in flight, medians of {args.repeats} × {args.seconds:g} s, against
bench/reference.py answering {', '.join(e for e, _ in LEGS)})""")


if __name__ == "__main__":
    main()
