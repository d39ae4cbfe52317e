"""SIGTERM's deadline counts from the signal, not from when a busy event loop gets
round to it (the audit measured 2.07-2.42 s to exit under a runaway load)."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from exporter.signals import until_signalled


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_on_signal_runs_inside_a_busy_callback(loop: str) -> None:
    seen: dict[str, float] = {}

    async def body(stop: asyncio.Event) -> None:
        def busy() -> None:  # a callback that holds the loop for 0.5 s
            os.kill(os.getpid(), signal.SIGTERM)
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                pass
            seen["busy_done"] = time.monotonic()

        asyncio.get_running_loop().call_soon(busy)
        await stop.wait()
        seen["stopped"] = time.monotonic()

    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        factory = asyncio.new_event_loop
        if loop == "uvloop":
            factory = pytest.importorskip("uvloop").new_event_loop  # the exporter runs on it
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(until_signalled(body, lambda: seen.setdefault("signal", time.monotonic())))
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])
    # The deadline started at the signal, 0.5 s before the loop could see it.
    assert seen["busy_done"] - seen["signal"] > 0.4, seen
    assert seen["stopped"] >= seen["busy_done"]
