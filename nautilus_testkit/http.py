"""Plain HTTP calls and polling, as a test or a benchmark driver makes them."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from typing import Any
from collections.abc import Callable


def http_get(url: str, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def http_post(url: str, timeout: float = 10.0, method: str = "POST") -> tuple[int, str]:
    req = urllib.request.Request(url, method=method, data=b"")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def eventually(predicate: Callable[[], Any], timeout: float, interval: float = 0.02) -> Any:
    """wait_for inside an event loop: poll without blocking it."""
    import asyncio

    deadline = time.monotonic() + timeout
    value: Any = None
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """Poll until predicate() is truthy; return its value, or fail with the last one.
    A series not exported yet (MissingSeries) or a refused connection counts as
    not yet."""
    from .exposition import MissingSeries

    deadline = time.monotonic() + timeout
    value: Any = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (OSError, MissingSeries) as exc:
            value = exc
        if value and not isinstance(value, BaseException):
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value {value!r})")
