"""`nautilus-probe loadtest baseline|containerized|websocket`: running one, honestly.

A run (scenarios.py) goes on `--workers N` processes whose raw results are merged
exactly (report.py: counts add, histograms merge), shaped into the typed results
of results.py (the migration plan's keys, full percentiles) with provenance
(provenance.py), and written as JSON. A baseline or containerized run counts the
requests other clients sent the service it measured meanwhile (a baseline with any is
refused; a containerized result is marked, and its console and report say so); a run
in which nothing was answered writes no result.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from redis.exceptions import ResponseError

from nautilus_wire.protocol import BASELINE_ENGINE, ENGINES, PRIORITIES, request_stream
from nautilus_wire.redis_client import BUS_ERRORS, connect

from .provenance import host_load, load_1m, metadata
from .report import merge, report
from .results import Baseline, Containerized, Contamination, encode, Result
from .scenarios import RUNS


class NothingAnswered(Exception):
    """A run in which no request was answered: no result worth judging."""


def _answered(raw: Any) -> int:
    """Answered requests over every phase of a raw result."""
    if isinstance(raw, dict):
        own = raw.get("histogram", {}).get("count", 0) if isinstance(raw.get("histogram"), dict) else 0
        return own + sum(_answered(v) for k, v in raw.items() if k != "histogram")
    if isinstance(raw, list):
        return sum(_answered(v) for v in raw)
    return 0


class Contaminated(Exception):
    """A baseline run during which something else also sent requests to the monolith."""


# The request streams a run counts other clients' requests on: the service it measures.
MEASURED_ENGINES: dict[str, tuple[str, ...]] = {"baseline": (BASELINE_ENGINE,),
                                                "containerized": ENGINES}


def _requests_added(opts: dict[str, Any], engines: tuple[str, ...]) -> int | None:
    """Requests ever added to the engines' request streams (XINFO STREAM entries-added):
    read before and after a run, the difference is everyone's traffic. None when the
    transport keeps no count (pub/sub) or Redis cannot say (unreachable, or older
    than 7.0, whose XINFO has no entries-added)."""
    if opts["transport"] != "streams":
        return None

    async def read() -> int | None:
        client = connect(opts["redis_url"])
        total = 0
        try:
            for engine in engines:
                for priority in PRIORITIES:
                    try:
                        info = await client.xinfo_stream(request_stream(opts["prefix"], engine,
                                                                        priority))
                    except ResponseError:
                        continue  # no such stream yet: nothing was ever sent at this priority
                    if "entries-added" not in info:
                        return None
                    total += int(info["entries-added"])
        finally:
            await client.aclose()
        return total
    try:
        return asyncio.run(read())
    except BUS_ERRORS:
        return None


def contamination(before: int | None, after: int | None, own: int) -> Contamination:
    """Other clients' requests from the streams' counts around a run and the run's own
    requests (counted as made, sent or not: never more than it added, so a request
    whose send failed is never taken for someone else's)."""
    foreign = None if before is None or after is None else after - before - own
    return Contamination(checked=foreign is not None, foreign_requests=max(foreign or 0, 0),
                         own_requests=own)


def run(kind: str, opts: dict[str, Any], workers: int, out_path: str) -> Result:
    """Run `kind` on `workers` processes (1: in this process), merge, write JSON."""
    started, load_start = time.time(), load_1m()
    engines = MEASURED_ENGINES.get(kind, ())
    before = _requests_added(opts, engines) if engines else None
    if workers == 1:
        result = merge([_in_process(kind, opts)])
    else:
        import signal

        # Ctrl-C reaches every worker, which stops early and returns what it measured;
        # this parent ignores it, then merges and writes as usual.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
                futures = [pool.submit(_in_process, kind, {
                    **opts, "prober": f"{opts['prober']}_{i}",
                    "progress": opts["progress"] and i == 0}) for i in range(workers)]
                result = merge([f.result() for f in futures])
        finally:
            signal.signal(signal.SIGINT, previous)
    after = _requests_added(opts, engines) if engines else None
    if kind != "websocket" and _answered(result) == 0:
        raise NothingAnswered(f"no request was answered: is the MessageBus at "
                              f"{opts['redis_url']} reachable, and are the engines running? "
                              f"No result was written to {out_path}.")
    load = host_load(load_start, load_1m())
    final = dataclasses.replace(report(result, workers, opts.get("concurrency", 1)),
                                metadata=metadata(kind, opts, workers, started, time.time(), load))
    problem = None
    if isinstance(final, Baseline | Containerized):
        found = contamination(before, after, result["requests_sent"])
        final = dataclasses.replace(final, contamination=found)
        if isinstance(final, Baseline) and found.foreign_requests:
            problem = (f"{found.foreign_requests} requests from other clients reached the "
                       f"monolith during the baseline run (we sent {found.own_requests}): its "
                       "figures are not the monolith alone. Run it against a monolith nothing "
                       "else probes (the local stack runs one for load tests: --prefix "
                       f"nautilus:loadtest) and run again. The result in {out_path} is marked "
                       "contaminated; validate refuses it.")
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as fh:
        json.dump(encode(final), fh, indent=2)
    if problem:
        raise Contaminated(problem)
    return final


def _in_process(kind: str, opts: dict[str, Any]) -> dict[str, Any]:
    """One run in this process (or a worker): its own event loop, Redis client and
    prober id; Ctrl-C stops it early and what was measured is still returned."""
    import signal

    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass

    async def body() -> dict[str, Any]:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
        return await RUNS[kind](opts, stop)
    return asyncio.run(body())
