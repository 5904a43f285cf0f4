"""A bare WebSocket client on a plain socket, for what a library client cannot do on purpose:
stop reading altogether (with a small receive buffer, so the kernel stops the sender soon), then
read what piled up, frame by frame, down to the server's close frame."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import struct
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Frames:
    texts: list[str] = field(default_factory=list)
    close_code: int | None = None
    close_reason: str = ""


class RawWebSocket:
    def __init__(self, sock: socket.socket, leftover: bytes) -> None:
        self.sock = sock
        self.buffer = leftover

    @classmethod
    async def connect(
        cls, host: str, port: int, path: str, token: str, *, receive_buffer: int = 4096
    ) -> RawWebSocket:
        """Handshake (with the token in the Authorization header) and return without reading
        past the 101 response's headers."""
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        await loop.sock_connect(sock, (host, port))
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {token}\r\n\r\n"
        )
        await loop.sock_sendall(sock, request.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = await loop.sock_recv(sock, 1)  # byte by byte: read nothing past the headers
            if not chunk:
                raise ConnectionError("closed during the handshake")
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            raise ConnectionError(f"handshake refused: {status.decode()}")
        return cls(sock, rest)

    async def read_until_close(self, timeout_s: float = 30.0) -> Frames:
        """Resume reading: every text frame that piled up, then the close frame."""
        loop = asyncio.get_running_loop()
        frames = Frames()
        async with asyncio.timeout(timeout_s):
            while True:
                parsed = self._parse_one()
                if parsed is None:
                    chunk = await loop.sock_recv(self.sock, 65536)
                    if not chunk:
                        return frames  # closed without a close frame
                    self.buffer += chunk
                    continue
                opcode, payload = parsed
                if opcode == 0x1:
                    frames.texts.append(payload.decode())
                elif opcode == 0x8:
                    if len(payload) >= 2:
                        frames.close_code = struct.unpack("!H", payload[:2])[0]
                        frames.close_reason = payload[2:].decode(errors="replace")
                    await self._send_close()
                    return frames

    def messages(self, frames: Frames) -> list[dict[str, Any]]:
        return [json.loads(text) for text in frames.texts]

    def _parse_one(self) -> tuple[int, bytes] | None:
        buf = self.buffer
        if len(buf) < 2:
            return None
        opcode = buf[0] & 0x0F
        length = buf[1] & 0x7F
        offset = 2
        if length == 126:
            if len(buf) < 4:
                return None
            length = struct.unpack("!H", buf[2:4])[0]
            offset = 4
        elif length == 127:
            if len(buf) < 10:
                return None
            length = struct.unpack("!Q", buf[2:10])[0]
            offset = 10
        if len(buf) < offset + length:
            return None
        self.buffer = buf[offset + length :]
        return opcode, buf[offset : offset + length]

    async def _send_close(self) -> None:
        """A masked close frame (clients must mask), echoing 1000."""
        mask = os.urandom(4)
        payload = struct.pack("!H", 1000)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        frame = bytes([0x88, 0x80 | len(payload)]) + mask + masked
        with contextlib.suppress(OSError):
            await asyncio.get_running_loop().sock_sendall(self.sock, frame)

    def close(self) -> None:
        self.sock.close()
