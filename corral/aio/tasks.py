"""The one way an object owns background tasks: ``TaskOwner``.

The event loop keeps only weak references to tasks, so a task nobody holds can vanish mid-way;
and a task nobody cancels outlives the object that started it. An owner holds each task it
spawned until the task ends, counts the ones still running, and at shutdown either lets them
finish within a bound (``drain``) or cancels them (``close``), waiting until they have ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


class TaskOwner:
    """The background tasks of one object (a service, a watcher, a sampler, an agent)."""

    def __init__(self, name: str) -> None:
        self.name = name  # the tasks' default name, so a stuck one says whose it is
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, T], name: str | None = None) -> asyncio.Task[T]:
        """Run ``coro`` as a task held until it ends."""
        task = asyncio.create_task(coro, name=name or self.name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def __contains__(self, task: object) -> bool:
        """Whether ``task`` is one of the owner's (and has not ended)."""
        return task in self._tasks

    @property
    def running(self) -> int:
        """How many of the tasks have not ended yet."""
        return sum(not task.done() for task in self._tasks)

    async def drain(self, timeout_s: float) -> None:
        """Let the tasks finish for up to ``timeout_s``, then cancel the rest (and wait)."""
        if not self._tasks:
            return
        _done, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
        await _cancel(pending)

    async def close(self) -> None:
        """Cancel every task and wait until each has ended."""
        await _cancel(set(self._tasks))


async def _cancel(tasks: Iterable[asyncio.Task[Any]]) -> None:
    pending = list(tasks)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
