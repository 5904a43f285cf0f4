"""An upload spooled to disk, so that its size is known before the tar header that must carry
it, in bounded memory whatever its size.

The spool is an unnamed temporary file in the data directory (``tempfile.TemporaryFile``:
``O_TMPFILE`` on Linux), so it is gone when closed, and even when the backend is killed
mid-upload: nothing is ever left to clean up.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20
# Room kept free on the data directory's disk beyond any spool.
DATA_DISK_MARGIN = 256 << 20


class TooLarge(Exception):
    """The stream passed ``limit`` bytes (what is left of it is not read)."""

    def __init__(self, received: int) -> None:
        self.received = received
        super().__init__(f"more than the limit after {received} bytes")


def spool_dir(data_dir: Path) -> Path:
    return data_dir / "uploads"


def data_disk_room(data_dir: Path) -> int:
    """What a spool may take of the data directory's disk."""
    directory = spool_dir(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    stat = os.statvfs(directory)
    return max(0, stat.f_bavail * stat.f_frsize - DATA_DISK_MARGIN)


async def spool(
    read_chunk: Callable[[int], Awaitable[bytes]], data_dir: Path, limit: int
) -> tuple[BinaryIO, int]:
    """Copy a stream (``read_chunk(n)`` returns ``b""`` at its end) into a new spool; the open
    spool, rewound, and its size. ``TooLarge`` as soon as it passes ``limit`` (the spool is then
    closed, which removes it)."""
    directory = spool_dir(data_dir)
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    handle = await asyncio.to_thread(tempfile.TemporaryFile, "w+b", dir=directory)
    size = 0
    try:
        while True:
            chunk = await read_chunk(CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise TooLarge(size)
            await asyncio.to_thread(handle.write, chunk)
        await asyncio.to_thread(handle.flush)
        await asyncio.to_thread(handle.seek, 0)
    except BaseException:
        handle.close()
        raise
    return handle, size
