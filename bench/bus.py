"""Buffered MessageBus publish throughput beside a bare redis-py pipeline of the
same batch size, in one run (medians of repeats). Counted to Redis's acknowledgement.

    PYTHONPATH=. .venv/bin/python bench/bus.py [--messages 200000] [--batch 100] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time


from nautilus_loadtest.buffered_bus import BufferedMessageBus, BufferPolicy, BusConfig, Priority
from nautilus_testkit import RedisServer
from nautilus_wire.redis_client import connect


async def bare(url: str, n: int, batch: int) -> float:
    r = connect(url)
    t0 = time.perf_counter()
    for start in range(0, n, batch):
        pipe = r.pipeline(transaction=False)
        for _ in range(min(batch, n - start)):  # each message serialised, as the bus does
            pipe.publish("nautilus:bus:benchmark.test", json.dumps({"timestamp": 0.0}))
        await pipe.execute()
    rate = n / (time.perf_counter() - t0)
    await r.aclose()
    return rate


async def buffered(url: str, n: int, batch: int) -> float:
    r = connect(url)
    config = BusConfig({p: BufferPolicy(batch, 0.01) for p in Priority})
    t0 = time.perf_counter()
    async with BufferedMessageBus(r, config=config) as bus:
        for _ in range(n):
            await bus.publish("benchmark.test", {"timestamp": 0.0}, "HIGH")
    rate = bus.stats.acknowledged / (time.perf_counter() - t0)
    assert bus.stats.acknowledged == n
    await r.aclose()
    return rate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    server = RedisServer().start()
    try:
        ref, buf = [], []
        for _ in range(args.repeats):
            ref.append(asyncio.run(bare(server.url, args.messages, args.batch)))
            buf.append(asyncio.run(buffered(server.url, args.messages, args.batch)))
    finally:
        server.remove()
    r, b = statistics.median(ref), statistics.median(buf)
    print(f"bare pipeline (batch {args.batch}): {r:10.0f} msgs/s\n"
          f"buffered bus   (batch {args.batch}): {b:10.0f} msgs/s   ratio {b / r:.2f} (aim >= 0.90)\n"
          f"runs: bare {[round(x) for x in ref]}, buffered {[round(x) for x in buf]}")


if __name__ == "__main__":
    main()
