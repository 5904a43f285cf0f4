"""A shell with a TTY, wherever it runs. The WebSocket bridge (``bridge.py``) speaks to this
interface only, so a sandbox's shell and an agent's shell behave the same to clients."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Protocol

from backend.containers.sandbox import MOUNT_POINT
from backend.docker_service import DockerService
from backend.errors import DockerError, DockerUnavailable
from backend.terminal.exec_stream import ExecStream

log = logging.getLogger(__name__)


class Shell(Protocol):
    async def read(self) -> bytes:
        """Output as it comes; ``b""`` once the shell has ended."""
        ...

    async def write(self, data: bytes) -> None: ...

    async def resize(self, cols: int, rows: int) -> None: ...

    async def exit_code(self) -> int | None:
        """The shell's exit code once it has ended (None if unknown)."""
        ...

    async def close(self) -> None:
        """End the shell if it still runs, and release everything."""
        ...


class DockerShell:
    """A login shell in a running sandbox, through ``docker exec`` with a TTY.

    Closing the exec's socket does not end the process in the sandbox, so the shell records its
    PID first and ``close`` hangs it up explicitly: a closed terminal never leaves a shell behind.
    """

    def __init__(self, docker: DockerService, container_id: str) -> None:
        self._docker = docker
        self._container = container_id
        self._pidfile = f"/tmp/.corral-term-{uuid.uuid4().hex}.pid"
        self._exec_id = ""
        self._stream: ExecStream | None = None

    async def open(self, cols: int, rows: int) -> None:
        script = (
            f"echo $$ > {self._pidfile}; "
            "if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi"
        )
        self._exec_id, sock = await self._docker.exec_tty(
            self._container,
            ["/bin/sh", "-c", script],
            environment={"TERM": "xterm-256color", "HOME": MOUNT_POINT},
            workdir=MOUNT_POINT,
            cols=cols,
            rows=rows,
        )
        try:
            self._stream = await ExecStream.over(sock)
        except BaseException:
            sock.close()
            raise

    async def read(self) -> bytes:
        return b"" if self._stream is None else await self._stream.read()

    async def write(self, data: bytes) -> None:
        if self._stream is not None and data:
            await self._stream.write(data)

    async def resize(self, cols: int, rows: int) -> None:
        await self._docker.exec_resize(self._exec_id, cols, rows)

    async def exit_code(self) -> int | None:
        for _ in range(50):
            running, code = await self._docker.exec_state(self._exec_id)
            if not running:
                return code
            await asyncio.sleep(0.02)  # the exec is being reaped; its code follows at once
        return None

    async def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close()
        if not self._exec_id:
            return
        try:
            running, _ = await self._docker.exec_state(self._exec_id)
            script = (
                f"p=$(cat {self._pidfile} 2>/dev/null); rm -f {self._pidfile}; "
                'if [ -n "$p" ]; then kill -HUP "$p" 2>/dev/null; sleep 0.2; '
                'kill -KILL "$p" 2>/dev/null; fi; true'
            )
            if running:
                await self._docker.exec_run(self._container, ["/bin/sh", "-c", script])
            else:
                await self._docker.exec_run(self._container, ["rm", "-f", self._pidfile])
        except (DockerError, DockerUnavailable) as exc:
            log.debug("could not end the shell in %s: %s", self._container[:12], exc)
