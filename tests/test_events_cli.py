"""``corral events --server`` when its backend goes away (issue 11, item 6): it says on stderr that
it lost the connection, each retry with its delay, and when it is back, and it notices a silent
(frozen) backend within a few seconds through WebSocket pings, not minutes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from backend.admin import Admin
from backend.settings import Settings
from corral.client import CorralClient
from devkit.backend_process import BackendProcess
from tests.conftest import BUSYBOX
from tests.test_cli import _clean_env


async def _until_line(stream: asyncio.StreamReader, text: str, timeout_s: float) -> list[str]:
    """Lines from ``stream`` up to the first that contains ``text`` (fails after the deadline)."""
    lines: list[str] = []
    try:
        async with asyncio.timeout(timeout_s):
            while not lines or text not in lines[-1]:
                line = await stream.readline()
                assert line, f"the stream ended before {text!r}: {lines}"
                lines.append(line.decode().rstrip("\n"))
    except TimeoutError:
        raise AssertionError(f"no {text!r} within {timeout_s} s; got {lines}") from None
    return lines


@asynccontextmanager
async def _following(
    settings: Settings, instance: str
) -> AsyncIterator[tuple[BackendProcess, asyncio.subprocess.Process, str]]:
    """A backend process, and ``corral events`` following it over --server (first line read)."""
    backend = BackendProcess(settings.data_dir, instance)
    await asyncio.to_thread(backend.start)
    async with Admin(settings) as admin:
        token = await admin.local_admin_jwt()
    follower = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "corral.cli",
        "--server",
        backend.url,
        "--token",
        token,
        "events",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_clean_env(),
    )
    assert follower.stdout is not None
    try:
        assert "list" in (await _until_line(follower.stdout, "list", 30))[-1]
        yield backend, follower, token
    finally:
        if follower.returncode is None:
            follower.send_signal(signal.SIGINT)
            async with asyncio.timeout(20):
                await follower.wait()
        await asyncio.to_thread(backend.stop)


async def test_it_says_when_the_backend_goes_and_comes_back(
    settings: Settings, instance: str
) -> None:
    async with _following(settings, instance) as (backend, follower, token):
        assert follower.stdout is not None and follower.stderr is not None
        await asyncio.to_thread(backend.stop)
        lost = await _until_line(follower.stderr, "lost the connection", 20)
        assert f"lost the connection to {backend.url}: closed by the server (code 1001" in lost[-1]
        retry = await _until_line(follower.stderr, "retrying in", 10)
        assert retry[-1].startswith("corral events: retrying in ") and " s" in retry[-1]

        await asyncio.to_thread(backend.start)  # the same port and data directory
        back = await _until_line(follower.stderr, "connected again", 40)
        assert all("retrying in" in line for line in back[:-1]), back
        assert f"connected again to {backend.url} after " in back[-1]
        # It resumed: a change made now is printed.
        async with CorralClient(backend.url, token) as client:
            await client.create_container(BUSYBOX, name="after-restart")
        created = await _until_line(follower.stdout, "container_created", 30)
        assert "after-restart" in created[-1]
        assert "Traceback" not in "".join(back + lost)


async def test_a_frozen_backend_is_noticed_within_seconds(
    settings: Settings, instance: str
) -> None:
    async with _following(settings, instance) as (backend, follower, _):
        assert follower.stderr is not None and backend.pid is not None
        os.kill(backend.pid, signal.SIGSTOP)  # its sockets stay open; nothing answers
        try:
            # The default heartbeat (5 s, pong due 2.5 s later) says so well before 20 s; the
            # old 30 s one would take 45 s, and a connect to a frozen server up to 300 s.
            lost = await _until_line(follower.stderr, "lost the connection", 20)
            assert "PONG" in lost[-1] or "ping" in lost[-1].lower()
        finally:
            os.kill(backend.pid, signal.SIGCONT)
        back = await _until_line(follower.stderr, "connected again", 40)
        assert f"connected again to {backend.url}" in back[-1]
