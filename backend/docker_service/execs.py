"""Commands run in a container: to completion, interactively (a TTY), or streamed; and the
reader of Docker's multiplexed exec stream."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from backend.docker_service.containers import ContainerCalls
from backend.errors import DockerError


class ExecCalls(ContainerCalls):
    async def exec_run(
        self,
        container_id: str,
        cmd: list[str],
        user: str = "",
        workdir: str | None = None,
        timeout_s: float = 30.0,
    ) -> tuple[int, bytes]:
        """Run a command to completion inside a container; its exit code and combined output.

        Read from the event loop with a deadline: an exec whose sandbox dies under it can keep
        its stream open forever (seen under runsc), and a blocking read would hold a worker
        thread, and the process's exit, with it. Raises DockerError when it does not finish."""
        exec_id, sock = await self.exec_stream(container_id, cmd, {}, workdir, user)

        async def still_running() -> bool:
            running, _ = await self.exec_state(exec_id)
            state = await self.inspect(container_id)
            return running and state is not None and state.running

        output = bytearray()
        try:
            async with asyncio.timeout(timeout_s):
                async for chunk in read_exec_output(sock, 1.0, still_running):
                    output += chunk
        except TimeoutError as exc:
            raise DockerError(f"the command did not finish within {timeout_s:.0f} s") from exc
        finally:
            sock.close()
        for _ in range(50):
            running, code = await self.exec_state(exec_id)
            if not running:
                return (code if code is not None else -1), bytes(output)
            await asyncio.sleep(0.02)  # Docker records the exit just after the stream ends
        return -1, bytes(output)

    async def exec_tty(
        self,
        container_id: str,
        cmd: list[str],
        environment: dict[str, str],
        workdir: str,
        cols: int,
        rows: int,
    ) -> tuple[str, socket.socket]:
        """Start an interactive exec with a TTY; its ID and the raw, non-blocking socket that
        carries its input and output."""
        created: dict[str, Any] = await self.run(
            lambda: self._api().exec_create(
                container_id,
                cmd,
                tty=True,
                stdin=True,
                environment=environment,
                workdir=workdir,
            )
        )
        exec_id = str(created["Id"])
        sock = await self._start_exec(exec_id, tty=True)
        try:
            await self.exec_resize(exec_id, cols, rows)
        except BaseException:
            sock.close()
            raise
        return exec_id, sock

    async def exec_stream(
        self,
        container_id: str,
        cmd: list[str],
        environment: dict[str, str],
        workdir: str | None,
        user: str = "",
    ) -> tuple[str, socket.socket]:
        """Start a non-interactive exec (no TTY, no stdin) whose output is read as it comes: its
        ID and the raw, non-blocking socket carrying Docker's multiplexed stream (see
        ``read_exec_output``). The process keeps running if the socket is closed early."""
        created: dict[str, Any] = await self.run(
            lambda: self._api().exec_create(
                container_id,
                cmd,
                stdout=True,
                stderr=True,
                stdin=False,
                tty=False,
                environment=environment,
                workdir=workdir,
                user=user,
            )
        )
        exec_id = str(created["Id"])
        return exec_id, await self._start_exec(exec_id, tty=False)

    async def _start_exec(self, exec_id: str, *, tty: bool) -> socket.socket:
        """Start a created exec and take over its connection (``engine_socket``, as ``docker
        exec`` does; the SDK hands the socket out only through private attributes)."""
        path = await self._path("/exec/{0}/start", exec_id)
        return await self._socket.hijack(path, None, {"Detach": False, "Tty": tty})

    async def exec_resize(self, exec_id: str, cols: int, rows: int) -> None:
        await self.run(lambda: self._api().exec_resize(exec_id, height=rows, width=cols))

    async def exec_state(self, exec_id: str) -> tuple[bool, int | None]:
        """Whether an exec still runs, and its exit code once it has ended."""
        info: dict[str, Any] = await self.run(lambda: self._api().exec_inspect(exec_id))
        code = info.get("ExitCode")
        return bool(info.get("Running")), (int(code) if code is not None else None)


async def read_exec_output(
    sock: socket.socket,
    idle_s: float,
    still_running: Callable[[], Awaitable[bool]],
) -> AsyncIterator[bytes]:
    """The payloads of Docker's multiplexed exec stream (8-byte frame headers: stream type,
    three zero bytes, big-endian length), stdout and stderr alike, until it ends.

    A stream can stay open after its process is gone (seen: a sandbox killed for memory left
    ``docker exec`` waiting forever), so after ``idle_s`` without data ``still_running()`` is
    asked, and a False ends the stream."""
    loop = asyncio.get_running_loop()
    buffer = b""
    while True:
        try:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), timeout=idle_s)
        except TimeoutError:
            if await still_running():
                continue
            return
        except OSError:
            return
        if not chunk:
            return
        buffer += chunk
        while len(buffer) >= 8:
            size = int.from_bytes(buffer[4:8], "big")
            if len(buffer) < 8 + size:
                break
            yield buffer[8 : 8 + size]
            buffer = buffer[8 + size :]
