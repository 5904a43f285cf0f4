"""Attaching this terminal to a shell in a container or on an agent (``corral shell``, and the
console's ``enter``).

The local terminal goes into raw mode, keystrokes go to the shell as they are typed, the shell's
output is written straight back, a window resize (SIGWINCH) is passed on, and the escape key
(ctrl+], as in telnet and docker attach) detaches. The terminal is restored on every way out:
the shell exiting, the escape key, the connection dropping, an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import termios
import tty
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

from corral.client.errors import TransportError, api_error, handshake_headers

if TYPE_CHECKING:
    from corral.client.api import CorralClient

ESCAPE = b"\x1d"  # ctrl+]
TERMINAL_PATH = "/ws/terminal/{}"


@dataclass(frozen=True)
class ShellEnd:
    """How a session ended: the shell's exit code, or ``detached`` when the user left it."""

    code: int | None
    detached: bool = False
    message: str = ""


@contextlib.contextmanager
def raw_mode(fd: int) -> Iterator[None]:
    """Raw mode for the session; the previous settings come back however the block ends."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def terminal_size(fd: int) -> tuple[int, int]:
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return 80, 24
    return size.columns, size.lines


async def open_terminal(
    client: CorralClient, ident: str, cols: int, rows: int
) -> aiohttp.ClientWebSocketResponse:
    """The terminal WebSocket; a refusal (404, 400 not running, 401, 403) raises its typed
    ``ApiError``."""
    url = client.url(TERMINAL_PATH.format(ident))
    try:
        ws = await client.session.ws_connect(
            url,
            headers=client.auth_headers(),
            params={"cols": cols, "rows": rows},
            protocols=("corral.v1",),
            heartbeat=30,
        )
    except aiohttp.WSServerHandshakeError as exc:
        # The handshake error drops the body: ask again for the contract's error.
        headers = {**client.auth_headers(), **handshake_headers()}
        async with client.session.get(url, headers=headers) as resp:
            try:
                body: Any = await resp.json(content_type=None)
            except ValueError:
                body = {"error": "unknown", "message": resp.reason or ""}
        raise api_error(exc.status, body) from exc
    except aiohttp.ClientError as exc:
        raise TransportError(f"cannot reach {client.server}: {exc}") from exc
    first = await ws.receive_json(timeout=30)
    if first.get("type") != "connected":
        await ws.close()
        raise TransportError(f"the terminal did not connect: {first}")
    return ws


async def attach(
    client: CorralClient,
    ident: str,
    *,
    stdin: int | None = None,
    stdout: int | None = None,
    escape: bytes = ESCAPE,
) -> ShellEnd:
    """Run an interactive session on this terminal until the shell exits or ctrl+] is pressed."""
    in_fd = sys.stdin.fileno() if stdin is None else stdin
    out_fd = sys.stdout.fileno() if stdout is None else stdout
    cols, rows = terminal_size(out_fd)
    ws = await open_terminal(client, ident, cols, rows)
    loop = asyncio.get_running_loop()
    # Keystrokes, and window sizes after a resize, in the order they happened.
    keys: asyncio.Queue[bytes | tuple[int, int]] = asyncio.Queue()

    def on_stdin() -> None:
        try:
            data = os.read(in_fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        keys.put_nowait(data)

    def on_resize() -> None:
        keys.put_nowait(terminal_size(out_fd))

    end = ShellEnd(code=None, message="connection closed")
    with raw_mode(in_fd):
        loop.add_reader(in_fd, on_stdin)
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGWINCH, on_resize)
        try:
            end = await _session(ws, keys, out_fd, escape)
        finally:
            loop.remove_reader(in_fd)
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signal.SIGWINCH)
            await ws.close()
    return end


async def _session(
    ws: aiohttp.ClientWebSocketResponse,
    keys: asyncio.Queue[bytes | tuple[int, int]],
    out_fd: int,
    escape: bytes,
) -> ShellEnd:
    async def forward_keys() -> ShellEnd:
        while True:
            data = await keys.get()
            if isinstance(data, tuple):
                await ws.send_json({"type": "resize", "cols": data[0], "rows": data[1]})
                continue
            if not data:
                return ShellEnd(code=None, detached=True, message="input closed")
            if escape in data:
                before = data.split(escape, 1)[0]
                if before:
                    await ws.send_bytes(before)
                return ShellEnd(code=None, detached=True, message="detached")
            await ws.send_bytes(data)

    async def show_output() -> ShellEnd:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            message = msg.json()
            kind = message.get("type")
            if kind == "output":
                os.write(out_fd, str(message.get("data", "")).encode())
            elif kind == "exit":
                return ShellEnd(code=message.get("code"), message="shell exited")
            elif kind == "error":
                os.write(out_fd, f"\r\n[corral: {message.get('data')}]\r\n".encode())
        return ShellEnd(code=None, message="connection closed")

    tasks = [asyncio.ensure_future(forward_keys()), asyncio.ensure_future(show_output())]
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return next(iter(done)).result()
