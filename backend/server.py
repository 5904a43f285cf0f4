"""Running the backend: headless (``corral serve``) or embedded in the console's process.

The embedded backend runs on its own thread and event loop, bound to loopback on a free port; the
console then talks to it over HTTP and WebSocket exactly as it would to a remote one.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from concurrent.futures import Future

from aiohttp import web

from backend.app import create_app
from backend.settings import Settings

log = logging.getLogger(__name__)


def serve(settings: Settings) -> None:
    """Run until interrupted (SIGINT/SIGTERM), closing every resource on the way out."""
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        print=lambda text: log.info("%s", text),
    )


class EmbeddedBackend:
    """The backend on a background thread, for the console's default, single-command mode."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="corral-backend", daemon=True)
        self._ready: Future[str] = Future()
        self._stop: asyncio.Event | None = None

    def start(self, timeout_s: float = 30.0) -> str:
        self._thread.start()
        self.url = self._ready.result(timeout=timeout_s)
        return self.url

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:
            if not self._ready.done():
                self._ready.set_exception(exc)
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        runner = web.AppRunner(create_app(self.settings), handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host="127.0.0.1", port=self.settings.port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        port = sockets[0].getsockname()[1] if sockets else self.settings.port
        self._ready.set_result(f"http://127.0.0.1:{port}")
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def stop(self, timeout_s: float = 15.0) -> None:
        if self._stop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=timeout_s)
