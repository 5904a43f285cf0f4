"""A ``docker exec`` TTY socket, read and written by the event loop itself.

Keystroke latency is the point of a terminal. ``loop.sock_recv`` registers the socket with the
selector for every chunk and unregisters it after (a failed ``recv`` and two ``epoll_ctl`` calls
per chunk); as an ``asyncio.Protocol`` the socket stays registered, each chunk lands in a buffer
from the selector's own callback, and input is handed to the transport without a suspension.
Output that arrives while the previous chunk is being sent is coalesced into one read.

Both directions have flow control: reading pauses while ``HIGH_WATER`` bytes of output wait for a
slow client, and ``write`` waits while the transport cannot take more input.
"""

from __future__ import annotations

import asyncio
import socket
from typing import cast

HIGH_WATER = 256 * 1024


class ExecStream(asyncio.Protocol):
    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._eof = False
        self._reading_paused = False
        self._readable: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None

    @classmethod
    async def over(cls, sock: socket.socket) -> ExecStream:
        """Take over ``sock`` (connected, non-blocking); the stream owns it from now on."""
        loop = asyncio.get_running_loop()
        _, stream = await loop.create_connection(cls, sock=sock)
        return stream

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) >= HIGH_WATER and self._transport is not None:
            self._transport.pause_reading()
            self._reading_paused = True
        self._wake_reader()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake_reader()
        return False  # the transport closes itself: the exec has ended

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self._wake_reader()
        self._wake_writer()

    def pause_writing(self) -> None:
        if self._writable is None:
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._wake_writer()

    # -- the stream ------------------------------------------------------------------------------

    async def read(self) -> bytes:
        """Everything output since the last read (at least one byte); ``b""`` once it ended."""
        if not self._buffer and not self._eof:
            self._readable = asyncio.get_running_loop().create_future()
            try:
                await self._readable
            finally:
                self._readable = None
        data = bytes(self._buffer)
        self._buffer.clear()
        if self._reading_paused and self._transport is not None and not self._eof:
            self._reading_paused = False
            self._transport.resume_reading()
        return data

    async def write(self, data: bytes) -> None:
        """Send input; waits only while the transport's buffer is over its high-water mark."""
        if self._transport is None or self._transport.is_closing():
            return
        self._transport.write(data)
        if self._writable is not None:
            await asyncio.shield(self._writable)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        self._eof = True
        self._wake_reader()

    def _wake_reader(self) -> None:
        if self._readable is not None and not self._readable.done():
            self._readable.set_result(None)

    def _wake_writer(self) -> None:
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)
