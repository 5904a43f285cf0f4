"""Running the backend: headless (``corral serve``) or embedded in the console's process.

The embedded backend runs on its own thread and event loop, bound to loopback on a free port; the
console then talks to it over HTTP and WebSocket exactly as it would to a remote one.

Either way it first takes the data directory's lock (``backend.data_dir_lock``) and, once it
listens, publishes its address there: one data directory never has two backends. Local commands
use ``local_backend``, which finds the one already running, or starts one in this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass

from aiohttp import web

from backend.access_log import AccessLogger
from backend.app import create_app
from backend.data_dir_lock import DataDirBusy, DataDirLock, published_address
from backend.http_server import JsonErrorRunner
from backend.settings import Settings

log = logging.getLogger(__name__)


def serve(settings: Settings) -> None:
    """Run until interrupted (SIGINT/SIGTERM), closing every resource on the way out. Raises
    ``DataDirBusy`` at once when another process serves the data directory."""
    lock = DataDirLock(settings.data_dir)
    lock.acquire()
    try:
        asyncio.run(_serve(settings, lock))
    finally:
        lock.release()


async def _serve(settings: Settings, lock: DataDirLock) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def ready(url: str) -> None:
        log.info("serving %s on %s (pid %d)", settings.data_dir, url, os.getpid())

    await _run_until(settings, settings.host, settings.port, lock, stop, ready)


def make_runner(app: web.Application) -> web.AppRunner:
    """The runner that serves ``app``: signals are the caller's, the access log never holds a
    token (``backend.access_log``), and aiohttp's own refusals are answered as JSON
    (``backend.http_server``)."""
    return JsonErrorRunner(app, handle_signals=False, access_log_class=AccessLogger)


async def _run_until(
    settings: Settings,
    host: str,
    port: int,
    lock: DataDirLock,
    stop: asyncio.Event,
    ready: Callable[[str], None],
) -> None:
    """Serve on ``host:port`` until ``stop`` is set; the address is published once it listens."""
    runner = make_runner(create_app(settings))
    await runner.setup()
    try:
        await web.TCPSite(runner, host=host, port=port).start()
        url = _local_url(host, int(runner.addresses[0][1]))
        lock.publish(url)
        ready(url)
        await stop.wait()
    finally:
        await runner.cleanup()


def _local_url(host: str, port: int) -> str:
    """How a process on this host reaches a backend bound to ``host``."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class EmbeddedBackend:
    """The backend on a background thread, for the console's default, single-command mode."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = ""
        self._lock = DataDirLock(settings.data_dir)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready: Future[str] = Future()
        self._stop = asyncio.Event()

    def start(self, timeout_s: float = 30.0) -> str:
        """Serve the data directory; raises ``DataDirBusy`` (nothing started) when another
        process serves it already."""
        self._lock.acquire()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run, args=(self._loop,), name="corral-backend", daemon=True
        )
        self._thread.start()
        try:
            self.url = self._ready.result(timeout=timeout_s)
        except BaseException:
            self.stop()
            raise
        return self.url

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(
                _run_until(
                    self.settings,
                    "127.0.0.1",
                    self.settings.port,
                    self._lock,
                    self._stop,
                    self._ready.set_result,
                )
            )
        except BaseException as exc:
            if not self._ready.done():
                self._ready.set_exception(exc)
        finally:
            loop.close()
            self._lock.release()  # only once the backend has let go of everything

    def stop(self, timeout_s: float = 15.0) -> None:
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=timeout_s)


class BackendDidNotStart(Exception):
    """Starting a backend in this process failed (the message says why)."""


@dataclass(frozen=True)
class LocalBackend:
    """The backend a local command talks to: ``embedded`` when this process started it."""

    url: str
    pid: int
    embedded: bool


@contextlib.contextmanager
def local_backend(settings: Settings, wait_s: float = 60.0) -> Iterator[LocalBackend]:
    """The backend serving ``settings.data_dir``: the one already running there (a console, a
    ``corral serve``, another command), or else one started in this process for the block.

    A holder that is still starting has not published its address yet: that is waited for (up
    to ``wait_s``; then ``DataDirBusy``), never answered by starting a second backend. A backend
    that cannot start here raises ``BackendDidNotStart``."""
    deadline = time.monotonic() + wait_s
    while True:
        address = published_address(settings.data_dir)
        if address is not None:
            yield LocalBackend(address.url, address.pid, embedded=False)
            return
        backend = EmbeddedBackend(settings)
        try:
            url = backend.start()
        except DataDirBusy:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
            continue
        except Exception as exc:
            raise BackendDidNotStart(str(exc)) from exc
        try:
            yield LocalBackend(url, os.getpid(), embedded=True)
        finally:
            backend.stop()  # containers keep running: only the backend stops
        return
