"""Pieces every long-lived server WebSocket shares (the events and stats streams)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from datetime import datetime

from aiohttp import web

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
