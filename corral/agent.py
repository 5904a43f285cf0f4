"""``corral agent``: attach this machine to a Corral backend.

The agent dials out (no port to open), registers with facts about the machine, sends a heartbeat
with its load, and serves terminals as PTYs on this machine, multiplexed over its one WebSocket.
When the connection drops it reconnects by itself (``BACKOFF``: exponential, full jitter). A token
the backend rejects (the agent was deleted, or the token revoked) ends it: retrying cannot help.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import fcntl
import json
import logging
import os
import platform
import pty
import shutil
import signal
import socket
import struct
import termios
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from corral.aio import Backoff, TaskOwner

log = logging.getLogger("corral.agent")

HEARTBEAT_S = 10.0  # unless the backend says otherwise at registration
BACKOFF = Backoff(initial_s=0.5, maximum_s=30.0)

Send = Callable[[dict[str, Any]], Awaitable[None]]


class TokenRejected(Exception):
    """The backend refused the token: this agent was deleted or its token revoked."""


def machine_facts() -> dict[str, Any]:
    try:
        memory_mb = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20
    except (ValueError, OSError):
        memory_mb = None
    return {
        "hostname": socket.gethostname(),
        "os": f"{platform.system()} {platform.release()}",
        "arch": platform.machine(),
        "cpus": os.cpu_count() or 1,
        "memory_mb": memory_mb,
        "version": "1",
    }


def _heartbeat_s(told: object) -> float:
    """How often to report: what the backend said at registration (an older one says
    nothing), within sane bounds."""
    if isinstance(told, int | float) and not isinstance(told, bool):
        return min(max(float(told), 0.1), 300.0)
    return HEARTBEAT_S


def machine_load() -> dict[str, float]:
    one, five, fifteen = os.getloadavg()
    load: dict[str, float] = {"1m": one, "5m": five, "15m": fifteen}
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                load["memory_available_mb"] = int(line.split()[1]) // 1024
    return load


def _default_shell() -> str:
    for candidate in (os.environ.get("SHELL"), "/bin/bash", "/bin/sh"):
        if candidate and shutil.which(candidate):
            return candidate
    return "/bin/sh"


class PtySession:
    """One login shell on a PTY of this machine."""

    def __init__(self, session: str, send: Send) -> None:
        self.session = session
        self._send = send
        self._master = -1
        self._proc: asyncio.subprocess.Process | None = None
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._out: asyncio.Queue[str | None] = asyncio.Queue()
        self._tasks = TaskOwner(f"pty-{session}")
        self._pumped: asyncio.Task[None] | None = None

    async def start(self, cols: int, rows: int) -> None:
        master, slave = pty.openpty()
        self._master = master
        self._set_size(cols, rows)

        def controlling_tty() -> None:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        env = {**os.environ, "TERM": "xterm-256color"}
        self._proc = await asyncio.create_subprocess_exec(
            _default_shell(),
            "-l",
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            preexec_fn=controlling_tty,
            env=env,
            cwd=Path.home(),
        )
        os.close(slave)
        os.set_blocking(master, False)
        asyncio.get_running_loop().add_reader(master, self._readable)
        self._pumped = self._tasks.spawn(self._pump())
        self._tasks.spawn(self._wait())

    def _set_size(self, cols: int, rows: int) -> None:
        fcntl.ioctl(self._master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def _readable(self) -> None:
        try:
            data = os.read(self._master, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self._master)
            self._out.put_nowait(None)
            return
        text = self._decoder.decode(data)
        if text:
            self._out.put_nowait(text)

    async def _pump(self) -> None:
        """Send output in order, one message at a time."""
        while (text := await self._out.get()) is not None:
            await self._send({"type": "output", "session": self.session, "data": text})

    async def _wait(self) -> None:
        assert self._proc is not None and self._pumped is not None
        code = await self._proc.wait()
        # Send what the shell wrote last before saying it ended.
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._pumped), 1.0)
        self._release()
        await self._send({"type": "exit", "session": self.session, "code": code})

    def write(self, data: str) -> None:
        if self._master >= 0:
            os.write(self._master, data.encode())

    def resize(self, cols: int, rows: int) -> None:
        if self._master >= 0:
            self._set_size(cols, rows)

    def close(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGHUP)

    def _release(self) -> None:
        if self._master >= 0:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self._master)
            os.close(self._master)
            self._master = -1


class Agent:
    def __init__(self, server: str, token: str, name: str | None) -> None:
        self.server = server.rstrip("/")
        self.token = token
        self.name = name or socket.gethostname()
        self.sessions: dict[str, PtySession] = {}

    async def run_forever(self) -> None:
        attempt = 0
        while True:
            try:
                await self._connect_once()
                attempt = 0  # it was up: start the next wait small
            except TokenRejected:
                raise
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                log.warning("connection to %s failed: %s", self.server, exc)
            delay = BACKOFF.delay(attempt)
            log.info("reconnecting in %.1f s", delay)
            await asyncio.sleep(delay)
            attempt += 1

    async def _connect_once(self) -> None:
        url = f"{self.server}/ws/agents/connect"
        headers = {"Authorization": f"Bearer {self.token}"}
        async with aiohttp.ClientSession() as http:
            try:
                ws = await http.ws_connect(
                    url, headers=headers, heartbeat=30, protocols=("corral.v1",)
                )
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status in (401, 403):
                    raise TokenRejected(
                        "the backend refused this agent's token (deleted or revoked)"
                    ) from exc
                raise
            async with ws:
                await ws.send_json(
                    {"type": "register", "name": self.name, "facts": machine_facts()}
                )
                reply = await ws.receive_json(timeout=10)
                if reply.get("type") != "registered":
                    raise aiohttp.ClientError(f"registration refused: {reply.get('data')}")
                log.info("connected to %s as %s", self.server, reply.get("id"))
                await self._serve(ws, _heartbeat_s(reply.get("heartbeat_s")))

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse, heartbeat_s: float) -> None:
        lock = asyncio.Lock()

        async def send(message: dict[str, Any]) -> None:
            if not ws.closed:
                async with lock:
                    await ws.send_json(message)

        async def heartbeat() -> None:
            while True:
                await send({"type": "heartbeat", "load": machine_load()})
                await asyncio.sleep(heartbeat_s)

        tasks = TaskOwner("agent-heartbeat")
        tasks.spawn(heartbeat())
        try:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.TEXT:
                    await self._handle(json.loads(msg.data), send)
        finally:
            await tasks.close()
            for session in self.sessions.values():
                session.close()
            self.sessions.clear()

    async def _handle(self, message: dict[str, Any], send: Send) -> None:
        kind, sid = message.get("type"), str(message.get("session", ""))
        if kind == "open":
            session = PtySession(sid, send)
            try:
                await session.start(int(message.get("cols", 80)), int(message.get("rows", 24)))
            except OSError as exc:
                await send({"type": "error", "session": sid, "data": str(exc)})
                return
            self.sessions[sid] = session
            await send({"type": "opened", "session": sid})
            return
        existing = self.sessions.get(sid)
        if existing is None:
            return
        if kind == "input":
            existing.write(str(message.get("data", "")))
        elif kind == "resize":
            existing.resize(int(message.get("cols", 80)), int(message.get("rows", 24)))
        elif kind == "close":
            existing.close()
            self.sessions.pop(sid, None)
