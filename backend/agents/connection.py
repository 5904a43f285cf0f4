"""One agent's live connection, and the shells multiplexed over it.

Protocol (JSON text frames), agent → server: ``register`` (first), ``heartbeat``, ``opened``,
``output``, ``exit``, ``error``; server → agent: ``registered``, ``open``, ``input``,
``resize``, ``close``. Every shell message carries its ``session`` ID.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

OPEN_TIMEOUT_S = 10.0


class AgentShell:
    """A PTY shell on an agent's machine, as a ``backend.terminal.shell.Shell``."""

    def __init__(self, connection: AgentConnection, session: str) -> None:
        self._connection = connection
        self.session = session
        self._output: asyncio.Queue[bytes] = asyncio.Queue()
        self._code: int | None = None
        self.ended = False
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def feed(self, data: str) -> None:
        self._output.put_nowait(data.encode())

    def finish(self, code: int | None) -> None:
        if not self.ended:
            self.ended = True
            self._code = code
            self._output.put_nowait(b"")
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("the agent closed the shell"))

    async def read(self) -> bytes:
        return await self._output.get()

    def read_nowait(self) -> bytes | None:
        """Output already waiting (``b""`` once the shell has ended), or None."""
        try:
            return self._output.get_nowait()
        except asyncio.QueueEmpty:
            return None

    async def write(self, data: bytes) -> None:
        if not self.ended:
            text = data.decode(errors="replace")
            await self._connection.send({"type": "input", "session": self.session, "data": text})

    async def resize(self, cols: int, rows: int) -> None:
        if not self.ended:
            await self._connection.send(
                {"type": "resize", "session": self.session, "cols": cols, "rows": rows}
            )

    async def exit_code(self) -> int | None:
        return self._code

    async def close(self) -> None:
        if not self.ended:
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._connection.send({"type": "close", "session": self.session})
            self.finish(None)
        self._connection.sessions.pop(self.session, None)


class AgentConnection:
    def __init__(self, agent_id: str, user_id: str, ws: web.WebSocketResponse) -> None:
        self.agent_id = agent_id
        self.user_id = user_id
        self.ws = ws
        self.sessions: dict[str, AgentShell] = {}
        self._send_lock = asyncio.Lock()

    async def send(self, message: dict[str, Any]) -> None:
        if self.ws.closed:
            raise ConnectionError("the agent is not connected")
        async with self._send_lock:
            await self.ws.send_json(message)

    async def open_shell(self, cols: int, rows: int) -> AgentShell:
        shell = AgentShell(self, uuid.uuid4().hex)
        self.sessions[shell.session] = shell
        await self.send({"type": "open", "session": shell.session, "cols": cols, "rows": rows})
        try:
            await asyncio.wait_for(asyncio.shield(shell.opened), OPEN_TIMEOUT_S)
        except BaseException:
            await shell.close()
            raise
        return shell

    def dispatch(self, message: dict[str, Any]) -> None:
        """Route one message from the agent to the shell it belongs to."""
        shell = self.sessions.get(str(message.get("session", "")))
        if shell is None:
            return
        kind = message.get("type")
        if kind == "output" and isinstance(message.get("data"), str):
            shell.feed(message["data"])
        elif kind == "opened" and not shell.opened.done():
            shell.opened.set_result(None)
        elif kind == "exit":
            code = message.get("code")
            shell.finish(code if isinstance(code, int) else None)
            self.sessions.pop(shell.session, None)
        elif kind == "error":
            if not shell.opened.done():
                shell.opened.set_exception(ConnectionError(str(message.get("data", ""))))
            else:
                shell.feed(f"\r\n[agent error: {message.get('data', '')}]\r\n")

    def end_all(self) -> None:
        for shell in list(self.sessions.values()):
            shell.finish(None)
        self.sessions.clear()

    async def close(self) -> None:
        self.end_all()
        await self.ws.close()
