"""docs/engines.md as an engine team reads it: every fenced Python block runs as
written, against a real redis-server, and `is_probe()` is what its table says in
every place the table names."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from exporter.probes.self_report import parse_report
from nautilus_testkit import ROOT, free_port, wait_for
from nautilus_wire import Request, Responder, carry_probe, connect, current_probe, is_probe, protocol

DOC = ROOT / "docs" / "engines.md"
PREFIX = protocol.DEFAULT_PREFIX
REPLY = protocol.reply_key(PREFIX, "docs")


def python_blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", DOC.read_text(), re.S | re.M)


def engine_blocks() -> list[int]:
    """The blocks that are engines (the others probe one)."""
    return [i for i, block in enumerate(python_blocks()) if "Responder" in block]


def test_the_page_has_its_python_blocks() -> None:
    """The threads, the quick start, trying it locally, FastAPI and the synchronous
    self-report."""
    blocks = python_blocks()
    assert len(blocks) == 5 and len(engine_blocks()) == 4
    for block in blocks:
        compile(block, "engines.md", "exec")


def probe(r: redis.Redis, engine: str, op: str, seq: int) -> dict[str, str]:
    """One request as the prober sends it; the reply's fields."""
    req = Request(f"docs-{seq}", "docs", engine, op, seq, "normal", REPLY,
                  int((time.time() + 10) * 1000))
    last = r.xrevrange(REPLY, count=1)
    after = last[0][0] if last else "0-0"
    r.xadd(protocol.request_stream(PREFIX, engine, "normal"), req.fields())
    replies = r.xread({REPLY: after}, block=10_000)
    assert replies, f"no reply from {engine} to {op}"
    return replies[0][1][0][1]


def serving_engine(r: redis.Redis) -> str | None:
    """The engine whose responder made its consumer group."""
    for key in r.scan_iter(f"{PREFIX}:*:req:normal"):
        if r.xinfo_groups(key):
            return key.split("{")[1].split("}")[0]
    return None


# The blocks that need nothing but nautilus-wire also run on the oldest redis-py it
# supports (the venv `./run setup` makes for tests/test_wire_package.py).
OLDEST = ROOT / ".venv-wire" / "redis__5_0_1" / "bin" / "python"
RUNS = [(i, sys.executable) for i in engine_blocks()] + [
    (i, str(OLDEST)) for i in engine_blocks() if "fastapi" not in python_blocks()[i]]


@pytest.mark.parametrize(("index", "python"), RUNS,
                         ids=[f"{i}-{'oldest' if p == str(OLDEST) else 'venv'}" for i, p in RUNS])
def test_each_python_block_runs_as_written(index: int, python: str, redis_url: str,
                                           tmp_path: Path) -> None:
    """Run as a program with the Redis URL in NAUTILUS_REDIS_URL: the engine it
    starts answers every operation it names `ok`, self-reports validly, and stops
    cleanly on SIGTERM (the group left, the report withdrawn), without a traceback."""
    script = tmp_path / "block.py"
    script.write_text(python_blocks()[index])
    out = tmp_path / "out.log"
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    with open(out, "wb") as log:
        proc = subprocess.Popen([python, str(script)], cwd=tmp_path, stdout=log,
                                stderr=subprocess.STDOUT,
                                env={**os.environ, "NAUTILUS_REDIS_URL": redis_url,
                                     "NAUTILUS_WIRE_CONSUMER": "docs-0",
                                     "PORT": str(free_port())})
    try:
        wait_for(lambda: serving_engine(r) is not None or proc.poll() is not None, 20)
        assert proc.poll() is None, out.read_text()
        engine = serving_engine(r)
        assert engine is not None
        # An unknown operation's error lists the operations the engine answers.
        error = probe(r, engine, "no_such_op", 1)["error"]
        ops = re.fullmatch(r"unknown operation 'no_such_op' \(this engine answers: (.*)\)",
                           error)
        assert ops, error
        for seq, op in enumerate(ops.group(1).split(", "), 2):
            reply = probe(r, engine, op, seq)
            assert reply["status"] == "ok", (op, reply, out.read_text())
        wait_for(lambda: r.exists(f"metrics:{engine}"), 5)
        raw = r.get(f"metrics:{engine}")
        assert parse_report(raw)["timestamp"] > time.time() - 5
        if "figures=" in python_blocks()[index]:  # the engine's figures went in
            report = json.loads(raw)
            assert report["source"] == "engine", raw
            # The four work figures together, from the engine: a consistent report.
            assert {"throughput", "latency", "error_rate", "operations"} <= \
                set(report["from_engine"]), raw
            assert sum(report["operations"].values()) == pytest.approx(report["throughput"])
        if '"limit_check": limit_check, "alert": alert' in python_blocks()[index]:
            # The quick start answers what the recipe of "Try your engine locally" sends.
            tried = subprocess.run([python, "-c", local_try_block()], capture_output=True,
                                   text=True, timeout=30,
                                   env={**os.environ, "NAUTILUS_REDIS_URL": redis_url})
            assert tried.returncode == 0, (tried.stdout, tried.stderr)
            lines = tried.stdout.splitlines()
            assert [line.split(":")[0] for line in lines] == ["limit_check", "alert"], lines
            assert all(re.fullmatch(r"\w+: ok after [\d.]+ ms \(handler \d+ us\) ", line)
                       for line in lines), lines
        proc.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal once its graceful shutdown is done.
        assert proc.wait(10) in (0, -signal.SIGTERM), out.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = out.read_text()
    assert "Traceback" not in text and "Error" not in text, text
    stream = protocol.request_stream(PREFIX, engine, "normal")
    assert r.xinfo_consumers(stream, protocol.RESPONDER_GROUP) == []
    assert r.get(f"metrics:{engine}") is None
    r.close()


def local_try_block() -> str:
    return next(block for block in python_blocks() if "StreamsTransport" in block)


def test_trying_an_engine_locally_names_what_went_unanswered(redis_url: str) -> None:
    """The recipe without an engine running: exit status 1, each operation named."""
    started = time.monotonic()
    tried = subprocess.run([sys.executable, "-c", local_try_block()], capture_output=True,
                           text=True, timeout=30, env={**os.environ, "NAUTILUS_REDIS_URL": redis_url})
    assert tried.returncode == 1, tried.stderr
    assert tried.stdout.splitlines() == [
        f"{op}: no reply in 5 s (is the engine running, on this Redis and prefix?)"
        for op in ("limit_check", "alert")]
    assert 4.5 <= time.monotonic() - started <= 15


# -- is_probe() in threads, as the table of "The rule" says ------------------------

def _table() -> dict[str, tuple[str, str]]:
    """First-column code -> (what is_probe() reads, how to carry it), from the page."""
    text = DOC.read_text()
    start = text.index("| code running in | `is_probe()` for a probe | to carry it |")
    rows = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = (cells[1].strip("*"), cells[2])
    return rows


POOL = concurrent.futures.ThreadPoolExecutor(2)


def _in_thread(fn: Callable[[], bool]) -> bool:
    out: list[bool] = []
    thread = threading.Thread(target=lambda: out.append(fn()))
    thread.start()
    thread.join()
    return out[0]


# Each place of the table: (reads without help, reads with the way the table gives).
PLACES: dict[str, tuple[Callable[[], Awaitable[bool]], Callable[[], Awaitable[bool]] | None]] = {
    "the handler, `async def` or plain": (lambda: _now(), None),
    "a task the handler starts (`asyncio.create_task`, `gather`, `TaskGroup`)": (
        lambda: asyncio.create_task(_now()), None),
    "`asyncio.to_thread(fn)`": (lambda: asyncio.to_thread(is_probe), None),
    "`loop.run_in_executor(None, fn)`": (
        lambda: asyncio.get_running_loop().run_in_executor(None, is_probe),
        lambda: asyncio.get_running_loop().run_in_executor(None, carry_probe(is_probe))),
    "the engine's own `ThreadPoolExecutor`: `pool.submit(fn)`": (
        lambda: asyncio.wrap_future(POOL.submit(is_probe)),
        lambda: asyncio.wrap_future(POOL.submit(carry_probe(is_probe)))),
    "a worker already running that takes work from a queue": (lambda: _via_queue(), None),
    "`threading.Thread(target=fn)`": (
        lambda: asyncio.to_thread(lambda: _in_thread(is_probe)),
        # to_thread only to keep the loop free; the carried one is made in the handler
        lambda: _thread_carried()),
}


async def _now() -> bool:
    return is_probe()


QUEUE: list[asyncio.Queue[asyncio.Future[bool]]] = []  # the worker's, made by the test


async def _worker(queue: asyncio.Queue[asyncio.Future[bool]]) -> None:
    """Started before any probe: its context is its own."""
    while True:
        (await queue.get()).set_result(is_probe())


async def _via_queue() -> bool:
    done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    await QUEUE[0].put(done)
    return await done


async def _thread_carried() -> bool:
    carried = carry_probe(is_probe)
    return await asyncio.to_thread(lambda: _in_thread(carried))


async def probed(redis_url: str, handler: Any) -> dict[str, str]:
    """One real probe through a Responder on a real Redis to `handler`; the reply."""
    client = connect(redis_url)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        async with Responder(client, "risk", {"alert": handler}, self_report=None):
            await asyncio.to_thread(wait_for, lambda: serving_engine(r) == "risk", 5)
            return await asyncio.to_thread(probe, r, "risk", "alert", 1)
    finally:
        await client.aclose()
        r.close()


@pytest.mark.parametrize("place", list(PLACES))
async def test_is_probe_is_what_the_table_says(place: str, redis_url: str) -> None:
    """Inside a real probe handler, the place reads what the table's second column
    says, and True once carried as its third column says; `copy_context().run`
    carries it too. Outside a probe, it reads False, carried or not."""
    said, how = _table()[place]
    plain, carried = PLACES[place]
    seen: list[Any] = []

    async def handler(req: Request) -> None:
        copied = await asyncio.get_running_loop().run_in_executor(
            None, contextvars.copy_context().run, is_probe)
        seen.extend([await plain(), await carried() if carried else None, copied])
        assert current_probe() is req

    QUEUE[:] = [asyncio.Queue()]
    worker = asyncio.create_task(_worker(QUEUE[0]))
    reply = await probed(redis_url, handler)
    assert reply["status"] == "ok", reply
    assert seen[0] is (said == "True"), (seen, said)
    if carried is not None:
        assert "carry_probe(" in how and seen[1] is True, (how, seen)
    elif said == "True":
        assert how == "—"  # nothing to carry
    assert seen[2] is True
    assert await plain() is False
    if carried is not None:
        assert await carried() is False
    worker.cancel()


async def test_a_plain_handler_reads_true_and_carries_it_to_its_own_pool(redis_url: str) -> None:
    seen: list[bool] = []

    def handler(req: Request) -> None:  # runs on the loop's default thread pool
        seen.append(is_probe())
        seen.append(POOL.submit(is_probe).result())
        seen.append(POOL.submit(carry_probe(is_probe)).result())

    reply = await probed(redis_url, handler)
    assert reply["status"] == "ok" and seen == [True, False, True], (reply, seen)


def test_carry_probe_runs_in_several_threads_at_once() -> None:
    """Unlike one copy_context(), one carried function can run in two threads at once
    (pool.map), and each call keeps its caller's probe."""
    from nautilus_wire.handlers import _probe

    req = Request("p1", "docs", "risk", "alert", 1, "normal", REPLY, 0)
    token = _probe.set(req)
    try:
        barrier = threading.Barrier(4)

        def probe_id(_: Any) -> str | None:
            barrier.wait(5)
            p = current_probe()
            return p.id if p else None

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            assert list(pool.map(carry_probe(probe_id), range(4))) == ["p1"] * 4
        ctx = contextvars.copy_context()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            gate = threading.Event()
            first = pool.submit(ctx.run, gate.wait, 5)
            time.sleep(0.05)
            with pytest.raises(RuntimeError, match="already entered"):
                pool.submit(ctx.run, is_probe).result(5)
            gate.set()
            first.result(5)
    finally:
        _probe.reset(token)
    assert carry_probe(is_probe)() is False  # made outside a probe: carries none


def test_the_statistics_table_names_every_field_once() -> None:
    import dataclasses

    from nautilus_wire import ResponderStats

    text = DOC.read_text()
    table = text[text.index("## Statistics"):text.index("## What the prober reads")]
    named = re.findall(r"`(\w+)`", "\n".join(line.split("|")[1] for line in table.splitlines()
                                              if line.startswith("| `")))
    assert sorted(named) == sorted(f.name for f in dataclasses.fields(ResponderStats))
