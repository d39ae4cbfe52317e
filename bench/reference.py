"""The minimal reference: a bare redis-py request/reply loop, protocol-v1 messages.

No metrics, no accounting, no validation. `responder` is the minimal engine both
sides of the benchmark talk to (so the comparison is prober against prober);
`prober` is the bare loop the exporter is compared with (bench/run.py):

    python bench/reference.py responder REDIS_URL SECONDS [--engines risk,analytics]
    python bench/reference.py prober REDIS_URL SECONDS (--rate R | --inflight N)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import redis.asyncio as aioredis

REQ = "nautilus:probe:{risk}:req:normal"
REPLY = "nautilus:probe:{reference}:reply"
GROUP = "responders"


async def responder(url: str, seconds: float, engines: list[str]) -> None:
    r = aioredis.from_url(url, decode_responses=True)
    streams = [REQ.replace("{risk}", f"{{{e}}}") for e in engines]
    for stream in streams:
        try:
            await r.xgroup_create(stream, GROUP, id="0", mkstream=True)
        except aioredis.ResponseError:
            pass
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        resp = await r.xreadgroup(GROUP, "c", {s: ">" for s in streams}, count=512, block=100)
        if not resp:
            continue
        pipe = r.pipeline(transaction=False)
        for stream, entries in resp:
            for _entry_id, f in entries:
                pipe.xadd(f["reply_to"], {"v": "1", "id": f["id"], "seq": f["seq"],
                                          "engine": f["engine"], "op": f["op"], "status": "ok",
                                          "service_us": "0"}, maxlen=10000, approximate=True)
            pipe.xack(stream, GROUP, *[e for e, _ in entries])
        await pipe.execute()
    await r.aclose()


def request(n: int) -> dict[str, str]:
    return {"v": "1", "id": str(n), "prober": "reference", "engine": "risk",
            "op": "limit_check", "seq": str(n), "prio": "normal", "reply_to": REPLY,
            "deadline_ms": str(int(time.time() * 1000) + 2000), "payload": "x" * 64}


async def prober(url: str, seconds: float, rate: float | None, inflight: int) -> dict:
    r = aioredis.from_url(url, decode_responses=True)
    clock = time.monotonic  # uvloop's loop.time() has millisecond steps
    sent: dict[str, float] = {}
    latencies: list[float] = []
    done = asyncio.Event()
    free = asyncio.Semaphore(inflight)
    start = clock()
    end = start + seconds
    n = 0

    async def receive() -> None:
        last = f"{int(time.time() * 1000)}-0"
        while not done.is_set():
            resp = await r.xread({REPLY: last}, count=4096, block=100)
            now = clock()
            for _s, entries in resp or ():
                for entry_id, fields in entries:
                    last = entry_id
                    t0 = sent.pop(fields["id"], None)
                    if t0 is not None:
                        latencies.append(now - t0)
                        if rate is None:
                            free.release()

    async def send_closed() -> None:  # saturation: keep `inflight` requests outstanding
        nonlocal n
        while clock() < end:
            await free.acquire()
            pipe = r.pipeline(transaction=False)
            while True:  # every free slot goes out in one pipeline
                n += 1
                sent[str(n)] = clock()
                pipe.xadd(REQ, request(n), maxlen=100000, approximate=True)
                if free.locked():
                    break
                await free.acquire()
            await pipe.execute()

    async def send_open() -> None:  # fixed rate, latency from the scheduled time
        nonlocal n
        k = 0
        while clock() < end:
            now = clock()
            pipe = r.pipeline(transaction=False)
            while start + k / rate <= now:
                n += 1
                sent[str(n)] = start + k / rate
                pipe.xadd(REQ, request(n), maxlen=100000, approximate=True)
                k += 1
            await pipe.execute()
            await asyncio.sleep(max(start + k / rate - clock(), 0.001))

    rx = asyncio.create_task(receive())
    cpu0 = time.process_time()
    await (send_open() if rate else send_closed())
    cpu_share = (time.process_time() - cpu0) / seconds
    await asyncio.sleep(0.5)
    done.set()
    await rx
    await r.aclose()
    lat = sorted(latencies)
    return {"replies": len(lat), "per_second": len(lat) / seconds, "cpu_share": cpu_share,
            "p50_ms": 1e3 * lat[len(lat) // 2] if lat else None,
            "p99_ms": 1e3 * lat[int(len(lat) * 0.99)] if lat else None,
            "mean_ms": 1e3 * statistics.fmean(lat) if lat else None}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("role", choices=("responder", "prober"))
    ap.add_argument("url")
    ap.add_argument("seconds", type=float)
    ap.add_argument("--rate", type=float)
    ap.add_argument("--inflight", type=int, default=64)
    ap.add_argument("--engines", default="risk", help="responder: the engines it answers for")
    args = ap.parse_args()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    if args.role == "responder":
        asyncio.run(responder(args.url, args.seconds, args.engines.split(",")))
    else:
        print(json.dumps(asyncio.run(prober(args.url, args.seconds, args.rate, args.inflight))))


if __name__ == "__main__":
    main()
