"""The minimal WebSocket reference: the websockets asyncio client, one reader task
per connection, no metrics. Prints JSON.

    python bench/ws_reference.py hold URL N SECONDS
    python bench/ws_reference.py rate URL CONNECTIONS RATE SECONDS
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time

from websockets.asyncio.client import connect


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


async def open_many(url: str, n: int) -> list:
    sem = asyncio.Semaphore(200)

    async def one():
        async with sem:
            return await connect(url, compression=None, ping_interval=None)
    return await asyncio.gather(*(one() for _ in range(n)))


async def hold(url: str, n: int, seconds: float) -> dict:
    base = rss_bytes()
    t0 = time.monotonic()
    conns = await open_many(url, n)
    opened = time.monotonic() - t0
    await asyncio.sleep(seconds)
    out = {"connections": n, "open_seconds": opened,
           "rss_per_connection_bytes": (rss_bytes() - base) / n}
    for c in conns:
        c.transport.abort()
    return out


async def rate(url: str, n: int, per_second: float, seconds: float) -> dict:
    conns = await open_many(url, n)
    for c in conns:
        await c.recv()  # engine_status
    sent: dict[str, float] = {}
    lat: list[float] = []

    async def reader(c) -> None:
        async for msg in c:
            obj = json.loads(msg)
            t0 = sent.pop(obj.get("id"), None)
            if t0 is not None:
                lat.append(time.monotonic() - t0)

    readers = [asyncio.create_task(reader(c)) for c in conns]
    start = time.monotonic()
    k = 0
    while time.monotonic() - start < seconds:
        now = time.monotonic()
        while start + k / per_second <= now:
            hb = str(k)
            sent[hb] = start + k / per_second  # from the scheduled time, as the exporter
            await conns[k % n].send(json.dumps({"type": "heartbeat", "id": hb}))
            k += 1
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.5)
    for r in readers:
        r.cancel()
    for c in conns:
        c.transport.abort()
    lat.sort()
    return {"sent": k, "received": len(lat), "p50_ms": 1e3 * lat[len(lat) // 2],
            "p99_ms": 1e3 * lat[int(len(lat) * 0.99)]}


def main() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    mode, url = sys.argv[1], sys.argv[2]
    if mode == "hold":
        result = asyncio.run(hold(url, int(sys.argv[3]), float(sys.argv[4])))
    else:
        result = asyncio.run(rate(url, int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
