"""The terminal WebSocket protocol, between a client and a ``Shell``.

Client to server: ``{"type": "input", "data"}``, ``{"type": "resize", "cols", "rows"}``,
``{"type": "ping"}``; binary frames, and text frames that are not one of these messages, are raw
input (existing clients send keystrokes as plain text). Server to client: ``{"type":
"connected"}``, ``{"type": "output", "data"}``, ``{"type": "exit", "code"}``, ``{"type":
"error", "data"}``, ``{"type": "pong"}``.

A frame that opens like a message (``{``) but nests deeper than ``bounded_json`` allows is
answered with an ``error`` message and dropped (it reaches neither the parser's recursion nor the
shell); a frame over ``MAX_FRAME`` closes the socket with 1009.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import logging
from typing import Any

from aiohttp import WSMsgType, web

from backend import bounded_json
from backend.terminal.shell import Shell

log = logging.getLogger(__name__)

MAX_DIMENSION = 1000
# The largest frame a client may send (a paste); aiohttp closes the socket with 1009 past it.
MAX_FRAME = 1024 * 1024


def parse_message(text: str) -> dict[str, Any] | None:
    """The JSON control message in a text frame, or None when the frame is raw input.
    ``bounded_json.TooDeep`` for one nested past the bounds."""
    if not text.startswith("{"):
        return None
    try:
        message = bounded_json.loads(text)
    except bounded_json.TooDeep:
        raise
    except ValueError:
        return None
    if isinstance(message, dict) and message.get("type") in ("input", "resize", "ping"):
        return message
    return None


def size_of(message: dict[str, Any]) -> tuple[int, int] | None:
    cols, rows = message.get("cols"), message.get("rows")
    if (
        type(cols) is int
        and type(rows) is int
        and 0 < cols <= MAX_DIMENSION
        and 0 < rows <= MAX_DIMENSION
    ):
        return cols, rows
    return None


async def bridge(ws: web.WebSocketResponse, shell: Shell) -> None:
    """Carry one terminal session until the shell exits or the client leaves."""
    await ws.send_json({"type": "connected"})
    output = asyncio.ensure_future(_pump_output(ws, shell))
    try:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                await shell.write(msg.data)
            elif msg.type == WSMsgType.TEXT:
                await _handle_text(ws, shell, msg.data)
            if output.done():
                break
    finally:
        if not output.done():
            # The client left first: end the shell rather than leave it running.
            output.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await output
        await shell.close()
        await ws.close()


async def _handle_text(ws: web.WebSocketResponse, shell: Shell, text: str) -> None:
    try:
        message = parse_message(text)
    except bounded_json.TooDeep as exc:
        await ws.send_json({"type": "error", "data": f"message ignored: {exc}"})
        return
    if message is None:
        await shell.write(text.encode())
    elif message["type"] == "input":
        data = message.get("data")
        if isinstance(data, str):
            await shell.write(data.encode())
    elif message["type"] == "resize":
        size = size_of(message)
        if size is None:
            await ws.send_json({"type": "error", "data": "resize needs integer cols and rows"})
        else:
            await shell.resize(*size)
    else:
        await ws.send_json({"type": "pong"})


async def _pump_output(ws: web.WebSocketResponse, shell: Shell) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    while chunk := await shell.read():
        text = decoder.decode(chunk)
        if text and not ws.closed:
            await ws.send_json({"type": "output", "data": text})
    tail = decoder.decode(b"", final=True)
    if tail and not ws.closed:
        await ws.send_json({"type": "output", "data": tail})
    code = await shell.exit_code()
    if not ws.closed:
        await ws.send_json({"type": "exit", "code": code})
        await ws.close()
