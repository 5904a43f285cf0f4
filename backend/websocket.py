"""Pieces every long-lived server WebSocket shares (the events and stats streams, put together
in ``backend.json_stream``), and the close request a subscription carries (``CloseRequest``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import WSCloseCode, WSMessage, WSMsgType, web

from backend import bounded_json
from backend.db.models import utcnow

log = logging.getLogger(__name__)


def cap_send_buffer(request: web.Request, size: int | None) -> None:
    """Cap the socket's kernel send buffer, so a client that stops reading is noticed after
    about ``size`` bytes instead of the kernel's autotuned megabytes."""
    transport = request.transport
    # asyncio hands out a TransportSocket wrapper, which has setsockopt but is no socket.
    sock = transport.get_extra_info("socket") if transport is not None else None
    if size and sock is not None and hasattr(sock, "setsockopt"):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


def expiry_timer(expires_at: datetime | None, name: str) -> asyncio.Task[None] | None:
    """A task that ends when the token a stream was opened with expires: an open stream must
    not outlive its credentials."""
    if expires_at is None:
        return None
    delay = max(0.0, (expires_at - utcnow()).total_seconds())
    return asyncio.create_task(asyncio.sleep(delay), name=name)


def revoked_frame(message: str) -> str:
    """The last message of a stream whose token was revoked, before its close (1008)."""
    return json.dumps({"type": "error", "error": "unauthorized", "message": message})


async def close_bounded(
    ws: web.WebSocketResponse,
    request: web.Request,
    code: int,
    reason: str,
    timeout_s: float,
    final: str | None = None,
) -> None:
    """Close with ``code`` (after sending ``final``, when given), waiting a bounded time for the
    client's close reply; a client that does not answer (it stopped reading) has its connection
    aborted, so it keeps no buffers alive on the server."""
    if ws.closed:
        return
    timed_out = False
    try:
        async with asyncio.timeout(timeout_s):
            if final is not None:
                await ws.send_str(final)
            await ws.close(code=code, message=reason.encode())
    except TimeoutError:
        timed_out = True
    except (ConnectionError, RuntimeError) as exc:
        log.debug("closing a WebSocket failed: %r", exc)
    transport = request.transport
    if transport is not None and (timed_out or transport.get_write_buffer_size()):
        transport.abort()


# The largest frame a client may send a stream that takes only ``{"type": "ping"}``; a larger
# one closes the socket with 1009 (aiohttp's ``max_msg_size``).
MAX_CLIENT_MESSAGE = 4096
CLOSE_UNSUPPORTED = int(WSCloseCode.UNSUPPORTED_DATA)  # 1003
CLOSE_INVALID = int(WSCloseCode.INVALID_TEXT)  # 1007


@dataclass(frozen=True)
class Refusal:
    """Why a stream closes on a client's frame: the close code and its reason."""

    code: int
    reason: str


def client_message(msg: WSMessage) -> dict[str, Any] | Refusal | None:
    """A client's frame on a stream whose clients send small JSON objects: the object; a
    ``Refusal`` (1003 for a binary frame, 1007 for text that is not a JSON object within
    ``bounded_json``'s bounds); None for what is not a message (a close, an error aiohttp has
    already closed the socket for, such as a frame over ``max_msg_size``: 1009)."""
    if msg.type is WSMsgType.BINARY:
        return Refusal(CLOSE_UNSUPPORTED, "binary frames are not accepted")
    if msg.type is not WSMsgType.TEXT:
        return None
    try:
        data = bounded_json.loads(msg.data)
    except ValueError as exc:
        return Refusal(CLOSE_INVALID, f"invalid message: {exc}"[:120])
    if not isinstance(data, dict):
        return Refusal(CLOSE_INVALID, "invalid message: not a JSON object")
    return data


def refusal_of(reader: asyncio.Task[Refusal | None]) -> Refusal | None:
    """The ``Refusal`` a finished reader task returned, if it returned one."""
    if reader.cancelled() or reader.exception() is not None:
        return None
    return reader.result()


# -- what a subscription carries ------------------------------------------------------------------


class CloseRequest:
    """Whether (and why) a subscriber's socket must be closed; the first reason given wins."""

    def __init__(self) -> None:
        self.close_code: int | None = None
        self.close_reason = ""
        self.final: str | None = None  # a last message before the close (a revoked token's)
        self.must_close = asyncio.Event()

    def close(self, code: int, reason: str, final: str | None = None) -> None:
        """Ask the subscriber's connection to close with ``code`` (after ``final``, when
        given)."""
        if self.close_code is not None:
            return
        self.close_code, self.close_reason, self.final = code, reason, final
        self.must_close.set()
