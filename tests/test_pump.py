"""``backend.files.pump``: an upload's chunks written in a thread while the next are read, in
order, with the first error of either side ending both."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import pytest

from backend.files.pump import pump


async def _chunks(count: int, fail_at: int | None = None) -> AsyncIterator[bytes]:
    for index in range(count):
        if index == fail_at:
            raise ValueError("the client went away")
        yield bytes([index]) * 1000
        await asyncio.sleep(0)


async def test_every_chunk_is_written_in_order_with_reading_ahead() -> None:
    written: list[bytes] = []
    gate = threading.Event()
    seen_ahead = False

    def write(chunk: bytes) -> None:
        gate.wait(5)  # the first write is slow: the reader runs ahead meanwhile
        written.append(chunk)

    async def source() -> AsyncIterator[bytes]:
        nonlocal seen_ahead
        async for chunk in _chunks(50):
            if chunk[0] == 3:
                seen_ahead = not written  # three chunks read while the first is still writing
                gate.set()
            yield chunk

    assert await pump(source(), write, depth=4) == 50_000
    assert written == [bytes([i]) * 1000 for i in range(50)]
    assert seen_ahead


async def test_a_failed_write_stops_the_reading_and_is_raised() -> None:
    read = 0

    def write(chunk: bytes) -> None:
        if chunk[0] == 5:
            raise OSError(28, "No space left on device")

    async def source() -> AsyncIterator[bytes]:
        nonlocal read
        async for chunk in _chunks(1000):
            read += 1
            yield chunk

    with pytest.raises(OSError, match="No space"):
        await pump(source(), write, depth=2)
    assert read < 20  # not the whole stream


async def test_a_failed_source_is_raised_after_what_came_before_it() -> None:
    written: list[bytes] = []
    with pytest.raises(ValueError, match="went away"):
        await pump(_chunks(100, fail_at=10), written.append, depth=4)
    assert written == [bytes([i]) * 1000 for i in range(len(written))]
    assert len(written) <= 10
