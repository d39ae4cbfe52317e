"""One load test over several machines: `loadtest KIND --shares N` runs share i of N
(i from `--share.index`, else `$JOB_COMPLETION_INDEX`, which a Kubernetes Indexed
Job gives each pod) and leaves its raw result in the MessageBus Redis under the run
id; `loadtest merge KIND --shares N` waits for all N, merges them exactly (counts add,
histograms merge bucket by bucket) and writes the result as one process would.

How the load is shared, so that the N shares are the one process's run:
- an open-loop phase (the latency phase, the sustained-rate steps) keeps the whole
  schedule in every share, and share i sends the requests k with k mod N = i:
  together they send exactly the requests one process would, at the same times;
- a closed-loop phase splits its requests in flight (`--concurrency`), the first
  shares taking the remainder;
- a WebSocket run splits its connections, connect rate and heartbeat rate.
The baseline is serial (one request in flight) and is not shared.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import socket
import time
from typing import Any

from nautilus_wire.redis_client import connect

from .provenance import iso, metadata
from .report import merge, report
from .results import Containerized, Result

INDEX_ENV = "JOB_COMPLETION_INDEX"  # what a Kubernetes Indexed Job sets in each pod
KEEP_S = 7 * 86_400  # a run's shares stay this long in Redis
POLL_S = 1.0
SHARED_KINDS = ("containerized", "websocket")
# What a share's record says of the host it ran on (provenance.host_load).
SHARE_HOST_KEYS = ("host", "host_cpus", "host_load_1m_start", "host_load_1m_end")


class ShareError(Exception):
    """Shares that cannot be run or merged; the message says which and why."""


def share_index(given: int | None, count: int) -> int:
    """This share's index, 0..count-1: `given`, else $JOB_COMPLETION_INDEX."""
    if given is None:
        text = os.environ.get(INDEX_ENV)
        if text is None:
            raise ShareError(f"--shares {count}: which share is this? Give --share.index, or "
                             f"set {INDEX_ENV} (a Kubernetes Indexed Job does)")
        if not text.isdigit():
            raise ShareError(f"{INDEX_ENV}={text!r} is not a share index")
        given = int(text)
    if not 0 <= given < count:
        raise ShareError(f"share index {given} is outside 0..{count - 1} (--shares {count})")
    return given


def _part(total: int, index: int, count: int) -> int:
    return total // count + (index < total % count)


def share_options(kind: str, opts: dict[str, Any], index: int, count: int) -> dict[str, Any]:
    """The options share `index` of `count` runs with."""
    if kind not in SHARED_KINDS:
        raise ShareError(f"a {kind} run is serial (one request in flight) and is not shared: "
                         "run it in one process")
    if kind == "containerized":
        if opts["concurrency"] < count:
            raise ShareError(f"--concurrency {opts['concurrency']} cannot be shared by "
                             f"{count} shares: give each at least one request in flight")
        return {**opts, "share": (index, count), "prober": f"{opts['prober']}_{index}",
                "concurrency": _part(opts["concurrency"], index, count)}
    if opts["connections"] < count:
        raise ShareError(f"--connections {opts['connections']} cannot be shared by {count} shares")
    return {**opts, "prober": f"{opts['prober']}_{index}",
            "connections": _part(opts["connections"], index, count),
            "rate": opts["rate"] / count, "connect_rate": opts["connect_rate"] / count}


def _key(prefix: str, run_id: str, kind: str) -> str:
    # One hash per run and kind: one slot on a Redis Cluster.
    return f"{prefix}:loadtest:{{{run_id}}}:{kind}"


def _comparable(opts: dict[str, Any]) -> dict[str, Any]:
    """The options every share of a run must agree on."""
    skip = ("share", "prober", "progress", "redis_url")
    return {k: v for k, v in opts.items() if k not in skip}


def store(opts: dict[str, Any], run_id: str, kind: str, index: int, count: int,
          whole: dict[str, Any], raw: dict[str, Any], started: float, ended: float,
          load: dict[str, Any] | None = None) -> None:
    """Leave a share's raw result in Redis, where `merge` finds it, with the host it ran
    on and (`load`: provenance.host_load) how busy that was."""
    record = json.dumps({"index": index, "count": count, "options": _comparable(whole),
                         "started": started, "ended": ended, "raw": raw,
                         "host": socket.gethostname(), **(load or {})})

    async def write() -> None:
        client = connect(opts["redis_url"])
        try:
            key = _key(opts["prefix"], run_id, kind)
            await client.hset(key, str(index), record)  # type: ignore[misc]  # redis-py types it sync or async
            await client.expire(key, KEEP_S)
        finally:
            await client.aclose()
    asyncio.run(write())


def fetch(redis_url: str, prefix: str, run_id: str, kind: str, count: int,
          wait_s: float) -> list[dict[str, Any]]:
    """The run's `count` shares, ordered by index, once all are there (polling, at most
    `wait_s` seconds)."""
    async def read() -> dict[str, str]:
        client = connect(redis_url)
        try:
            deadline = time.monotonic() + wait_s
            while True:
                found: dict[str, str] = await client.hgetall(  # type: ignore[misc]  # redis-py types it sync or async
                    _key(prefix, run_id, kind))
                if len(found) >= count or time.monotonic() >= deadline:
                    return found
                await asyncio.sleep(POLL_S)
        finally:
            await client.aclose()
    found = asyncio.run(read())
    missing = [i for i in range(count) if str(i) not in found]
    if missing:
        raise ShareError(f"run {run_id!r}: share{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(map(str, missing))} of {count} not in Redis after "
                         f"{wait_s:g} s; nothing merged")
    records = [json.loads(found[str(i)]) for i in range(count)]
    extra = sorted(set(found) - {str(i) for i in range(count)})
    if extra or any(r["count"] != count for r in records):
        raise ShareError(f"run {run_id!r} was run with another number of shares than {count} "
                         f"(found shares {', '.join(sorted(found))}); use a new run id")
    first = records[0]["options"]
    for r in records[1:]:
        if r["options"] != first:
            diff = sorted(k for k in set(first) | set(r["options"])
                          if first.get(k) != r["options"].get(k))
            raise ShareError(f"run {run_id!r}: share {r['index']} ran with other options than "
                             f"share 0 ({', '.join(diff)}); nothing merged")
    return records


def retire(redis_url: str, prefix: str, run_id: str, kind: str) -> None:
    """Move a merged run's shares aside (kept as long as before), so the run id can be
    used again without merging an old share with new ones."""
    async def move() -> None:
        client = connect(redis_url)
        try:
            key = _key(prefix, run_id, kind)
            await client.rename(key, f"{key}:merged")
            await client.expire(f"{key}:merged", KEEP_S)
        finally:
            await client.aclose()
    asyncio.run(move())


def merge_shares(kind: str, records: list[dict[str, Any]], whole: dict[str, Any],
                 run_id: str) -> Result:
    """The shares' raw results merged exactly, reported as the whole run."""
    raws = [r["raw"] for r in records]
    raw = merge(raws)
    if kind == "containerized":
        # Each share ran every sustained step's whole schedule (its slice of it): the
        # step's rate is the schedule's, not the shares' sum.
        for i, step in enumerate(raw.get("sustained", [])):
            step["rate"] = raws[0]["sustained"][i]["rate"]
    count = len(records)
    final = report(raw, count, max(whole.get("concurrency", 1) // count, 1))
    if isinstance(final, Containerized):
        final = dataclasses.replace(final, throughput_benchmark=dataclasses.replace(
            final.throughput_benchmark, concurrent_workers=whole["concurrency"]))
    started = min(r["started"] for r in records)
    ended = max(r["ended"] for r in records)
    meta = metadata(kind, whole, count, started, ended)
    # `whole` holds the run's totals (in flight, connections), not one share's.
    if kind == "containerized":
        meta["offered"]["in_flight"] = whole["concurrency"]
    else:
        meta["offered"]["connections"] = whole["connections"]
    meta["offered"]["shares"] = count
    meta["run_id"] = run_id
    # Each share's host and its load (a share stored before they were kept has none):
    # the merged run's own `host` is where it was merged.
    meta["shares"] = [{"index": r["index"], "started": iso(r["started"]), "ended": iso(r["ended"]),
                       **{k: r[k] for k in SHARE_HOST_KEYS if k in r}} for r in records]
    return dataclasses.replace(final, metadata=meta)
