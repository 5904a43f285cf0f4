"""The file routes' transfers for ``CorralClient``: an upload streamed from a local file as
multipart/form-data (with its length, so the server can refuse what cannot fit before a byte
is sent... and a progress callback), and a download streamed to a local file."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import aiohttp
from aiohttp.abc import AbstractStreamWriter

CHUNK = 1 << 20
UPLOAD_PART = "file"

# Called with (bytes done, bytes in all; None when the server did not say).
Progress = Callable[[int, int | None], None]


def part_disposition(name: str) -> str:
    """The part's ``Content-Disposition``: ``filename`` as a browser writes it (``"``, CR and
    LF escaped), and the exact name in ``filename*`` (RFC 5987), which the server prefers."""
    plain = name.replace("\n", "%0A").replace("\r", "%0D").replace('"', "%22")
    plain = plain.encode("ascii", "replace").decode("ascii")  # header text stays ASCII
    exact = quote(name.encode("utf-8", "surrogateescape"), safe="")
    return f'form-data; name="{UPLOAD_PART}"; filename="{plain}"; filename*=UTF-8\'\'{exact}'


class FilePayload(aiohttp.payload.Payload):
    """A local file sent a chunk at a time (read in a thread), its size known up front."""

    def __init__(self, handle: BinaryIO, size: int, progress: Progress | None) -> None:
        super().__init__(handle, content_type="application/octet-stream")
        self._handle = handle
        self._length = size
        self._progress = progress

    @property
    def size(self) -> int:
        return self._length

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        raise TypeError("a file upload is not text")

    async def write(self, writer: AbstractStreamWriter) -> None:
        sent = 0
        while sent < self._length:
            chunk = await asyncio.to_thread(self._handle.read, min(CHUNK, self._length - sent))
            if not chunk:
                break
            await writer.write(chunk)
            sent += len(chunk)
            if self._progress is not None:
                self._progress(sent, self._length)


def body_size(handle: BinaryIO) -> int:
    return os.fstat(handle.fileno()).st_size


def upload_body(handle: BinaryIO, name: str, progress: Progress | None) -> aiohttp.MultipartWriter:
    size = body_size(handle)
    writer = aiohttp.MultipartWriter("form-data")
    payload = FilePayload(handle, size, progress)
    payload.headers["Content-Disposition"] = part_disposition(name)
    writer.append_payload(payload)
    return writer


async def save_stream(resp: aiohttp.ClientResponse, target: Path, progress: Progress | None) -> int:
    """Write a download to ``target`` as it arrives; the bytes written."""
    total = resp.content_length
    done = 0
    handle: Any = await asyncio.to_thread(target.open, "wb")
    try:
        async for chunk in resp.content.iter_chunked(CHUNK):
            await asyncio.to_thread(handle.write, chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
    finally:
        await asyncio.to_thread(handle.close)
    return done
