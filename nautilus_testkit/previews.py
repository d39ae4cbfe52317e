"""Render the dashboards' previews from a real run:
`python -m nautilus_testkit.previews [--out DIR | --update-docs]` (or `./run previews`).

Runs the local stack with Prometheus for 9 minutes, injecting faults through the
synthetic engines' knobs so every panel has something to show (a latency breach
on risk, a stall on factor, errors on ml and risk), then renders each dashboard,
as generated from thresholds.yml now, over that window with `python -m dashboards
preview`. The pictures go to a new folder of their own (printed) unless
`--update-docs` asks for the repository's: then dashboards/generated/ and
docs/img/ are rewritten.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from nautilus_wire.protocol import DEFAULT_PREFIX
from synthetic.engine import knobs_key

from . import ROOT
from .live import live_stack

# (seconds after the start, engine, knobs or None to clear them; "loadtest": a short
# containerized load test that pushes its verdicts to the Pushgateway)
# The faults end early enough (5.5 min before the end) that the "Service now" row
# shows the recovery too: its stats read the last 5 minutes.
SCRIPT = (
    (20, "loadtest", None),
    (45, "risk", {"*": {"service_time": "150ms"}}),
    (75, "factor", {"*": {"stall": {"duration": "30s", "period": "30.001s"}}}),
    (100, "risk", None),
    (110, "factor", None),
    (110, "ml", {"*": {"error_ratio": 0.05}}),
    (140, "ml", None),
    (140, "risk", {"*": {"error_ratio": 1}}),
    (200, "risk", None),
)


# The shipped windows (the dashboards' error-budget panels read their recorded
# series), with `for:` short enough that a few minutes' faults reach the alert list.
PREVIEW_ALERTING = {"for": {"page": "30s", "ticket": "60s"}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nautilus_testkit.previews",
                                 description=__doc__.split("\n\n")[0])
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--out", help="folder for the pictures (default: a new one in $TMPDIR)")
    where.add_argument("--update-docs", action="store_true",
                       help="regenerate dashboards/generated/ and write docs/img/ (tracked)")
    ap.add_argument("--seconds", type=float, default=540, help="length of the run")
    args = ap.parse_args(argv)
    if args.update_docs:
        subprocess.run([sys.executable, "-m", "dashboards"], cwd=ROOT, check=True)
        out, boards = ROOT / "docs" / "img", ROOT / "dashboards" / "generated"
    else:
        out = Path(args.out or tempfile.mkdtemp(prefix="nautilus-previews-"))
    begun = time.monotonic()
    print(f"A {args.seconds / 60:.0f}-minute run of the local stack, then the pictures "
          f"(~1 min): {out}", flush=True)
    with tempfile.TemporaryDirectory(prefix="np-previews-") as tmp, \
            live_stack(Path(tmp), duration=args.seconds + 120, alerting=PREVIEW_ALERTING,
                       pushgateway=True) as live:
        if not args.update_docs:  # the dashboards as thresholds.yml makes them now
            boards = Path(tmp) / "dashboards"
            subprocess.run([sys.executable, "-m", "dashboards", "--out", str(boards)],
                           cwd=ROOT, check=True)
        start = time.time()
        with redis.Redis.from_url(live.redis_url) as r:
            for at, engine, knobs in SCRIPT:
                if at >= args.seconds:
                    break
                time.sleep(max(start + at - time.time(), 0))
                if engine == "loadtest":
                    print(f"+{at:.0f}s a 20 s containerized load test", flush=True)
                    subprocess.run([sys.executable, "-m", "nautilus_probe", "loadtest",
                                    "containerized", "--redis.url", live.redis_url,
                                    "--duration", "20", "--quiet", "--out",
                                    f"{tmp}/containerized.json", "--pushgateway.url",
                                    str(live.pushgateway)], cwd=ROOT, check=True)
                    continue
                print(f"+{at:.0f}s {engine}: {knobs or 'healthy again'}", flush=True)
                key = knobs_key(DEFAULT_PREFIX, engine)
                r.set(key, json.dumps(knobs)) if knobs else r.delete(key)
            time.sleep(max(start + args.seconds - time.time(), 0))
            print(f"+{args.seconds:.0f}s the pictures", flush=True)
        done = subprocess.run([sys.executable, "-m", "dashboards", "preview", "--out", str(out),
                               "--dashboards", str(boards), "--prometheus", live.api,
                               "--start", str(start), "--end", str(time.time()),
                               "--rate-interval", "15s"], cwd=ROOT).returncode
    print(f"took {(time.monotonic() - begun) / 60:.1f} min", flush=True)
    return done


if __name__ == "__main__":
    sys.exit(main())
