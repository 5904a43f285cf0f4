"""Copying a stream of chunks to blocking writes without waiting for each write before reading
the next chunk.

A chunk written in a thread and only then the next one read makes the copy take the sum of
receiving and writing: while a write runs, the request's buffer fills and the client stops
sending. Here a few chunks wait in a queue while the thread writes, so the two overlap and the
copy takes about the longer of them, with at most ``depth`` chunks held in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable


async def pump(source: AsyncIterator[bytes], write: Callable[[bytes], None], depth: int = 4) -> int:
    """Write every chunk of ``source`` with ``write`` (blocking, run in a thread, one at a time,
    in order); the bytes read. The first error of either side is raised and ends the other. A
    write under way in its thread when the copy is cancelled runs to its end after this
    returns (a thread cannot be stopped): ``write``'s owner waits for it before closing what
    it writes to."""
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(depth)

    async def drain() -> None:
        while (chunk := await queue.get()) is not None:
            await asyncio.to_thread(write, chunk)

    writer = asyncio.create_task(drain(), name="upload-writer")
    put: asyncio.Task[None] | None = None
    read = 0
    try:
        async for chunk in _then_end(source):
            if chunk:
                read += len(chunk)
            put = asyncio.create_task(queue.put(chunk or None))
            await asyncio.wait({put, writer}, return_when=asyncio.FIRST_COMPLETED)
            if not put.done():  # the writer ended first: it failed
                break
        await writer  # its error, if any; else every chunk is written
    finally:
        if put is not None and not put.done():
            put.cancel()
        if not writer.done():
            writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(_settled(writer))
    return read


async def _then_end(source: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The source's chunks, then an empty one that tells the writer to stop."""
    async for chunk in source:
        if chunk:
            yield chunk
    yield b""


async def _settled(task: asyncio.Task[None]) -> None:
    with contextlib.suppress(BaseException):
        await task
