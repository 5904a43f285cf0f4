"""``corral shell``: raw mode on a real PTY, resize on SIGWINCH, ctrl+] to detach, and the
terminal restored on every way out."""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import struct
import subprocess
import sys
import termios
import time

from tests.conftest import Api


class PtyProcess:
    """``corral`` running on a pseudo-terminal, as a person would run it."""

    def __init__(self, *args: str) -> None:
        self.master, slave = os.openpty()
        self._set_size(slave, 100, 30)

        def controlling() -> None:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "corral.cli", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            preexec_fn=controlling,
            env=env,
        )
        os.close(slave)
        os.set_blocking(self.master, False)
        self.output = ""

    @staticmethod
    def _set_size(fd: int, cols: int, rows: int) -> None:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def resize(self, cols: int, rows: int) -> None:
        self._set_size(self.master, cols, rows)  # the kernel sends SIGWINCH to the process

    def write(self, data: bytes) -> None:
        os.write(self.master, data)

    async def expect(self, pattern: str, timeout_s: float = 20.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while (found := re.search(pattern, self.output)) is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} in: {self.output[-600:]!r}")
            try:
                chunk = os.read(self.master, 65536).decode(errors="replace")
                # Answer cursor-position queries as a terminal would (busybox's line editor
                # waits for the answer before it reads a key).
                for _ in range(chunk.count("\x1b[6n")):
                    os.write(self.master, b"\x1b[1;1R")
                self.output += chunk
            except BlockingIOError:
                await asyncio.sleep(0.02)  # poll interval for the PTY, bounded by the deadline
            except OSError:
                break
        if found is None:
            raise AssertionError(f"no {pattern!r} in: {self.output[-600:]!r}")
        return found

    def local_mode(self) -> tuple[bool, bool]:
        """Whether the terminal is back in cooked mode (ICANON) with echo (ECHO)."""
        lflag = termios.tcgetattr(self.master)[3]
        return bool(lflag & termios.ICANON), bool(lflag & termios.ECHO)

    async def wait(self, timeout_s: float = 20.0) -> int:
        return await asyncio.to_thread(self.proc.wait, timeout_s)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def _token(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


async def test_shell_runs_resizes_and_exits_with_the_shells_code(api: Api) -> None:
    _, headers = await api.user(tier="test")
    made = await api.create(headers)
    term = PtyProcess("shell", made["id"], "--server", api.url, "--token", _token(headers))
    try:
        await term.expect(r"# ")
        term.write(b"stty size; echo ready-$((2+3))\n")
        await term.expect(r"30 100")
        await term.expect(r"ready-5")
        assert term.local_mode() == (False, False)  # raw while attached
        term.resize(120, 40)
        for _ in range(40):  # the resize travels asynchronously: ask until it shows
            term.write(b"stty size\n")
            try:
                await term.expect(r"40 120", timeout_s=0.5)
                break
            except AssertionError:
                continue
        else:
            raise AssertionError("the resize never reached the shell")
        term.write(b"exit 3\n")
        assert await term.wait() == 3
        assert term.local_mode() == (True, True)  # restored
    finally:
        term.close()


async def test_ctrl_bracket_detaches_and_restores_the_terminal(api: Api) -> None:
    _, headers = await api.user(tier="test")
    made = await api.create(headers)
    term = PtyProcess("shell", made["id"], "--server", api.url, "--token", _token(headers))
    try:
        await term.expect(r"# ")
        term.write(b"echo attached\n")
        await term.expect(r"attached\r?\n")
        term.write(b"\x1d")
        assert await term.wait() == 0
        await term.expect(r"detached")
        assert term.local_mode() == (True, True)
    finally:
        term.close()


async def test_shell_on_a_stopped_container_fails_cleanly(api: Api) -> None:
    _, headers = await api.user(tier="test")
    made = await api.create(headers)
    await api.client.post(f"/api/containers/{made['id']}/stop", headers=headers)
    term = PtyProcess("shell", made["id"], "--server", api.url, "--token", _token(headers))
    try:
        await term.expect(r"container is not running|not running")
        assert await term.wait() == 1
        assert term.local_mode() == (True, True)
    finally:
        term.close()
