"""Waiting for a condition with a deadline: the one way tests, benchmarks and scripts wait for
something to happen (a sleep is never synchronisation). The check is polled every
``interval_s``; past ``timeout_s`` the wait fails saying what it waited for."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable


async def wait_for(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool],
    timeout_s: float = 10.0,
    interval_s: float = 0.05,
    what: str = "condition",
    pause: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> None:
    """Poll ``check`` (sync or async) until it is true; AssertionError after ``timeout_s``.
    ``pause`` is how to let time pass between polls (a Textual pilot's ``pause``, so the app
    under test runs meanwhile)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await pause(interval_s)


def wait_for_sync(
    check: Callable[[], bool],
    timeout_s: float = 10.0,
    interval_s: float = 0.05,
    what: str = "condition",
) -> None:
    """``wait_for`` for code without an event loop (starting a process, a thread's result)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)
