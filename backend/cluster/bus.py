"""The notification bus between replicas: PostgreSQL LISTEN/NOTIFY on a dedicated connection.

A notification is only a wake-up or a small hint (a cache to drop, a token revoked): the tables
stay the truth. Notifications sent while a replica was not listening are lost, so every
(re)connect runs the ``on_connect`` callbacks, which catch up from the tables and drop every
cache, before anything else is heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
from collections.abc import Awaitable, Callable, Sequence

import asyncpg

from corral.aio import Backoff, TaskOwner

log = logging.getLogger(__name__)

Handler = Callable[[str], None]  # a channel's payload; must not block
OnConnect = Callable[[], Awaitable[None] | None]
RECONNECT = Backoff(initial_s=0.1, maximum_s=2.0)
KEEPALIVE_S = 2.0  # how often a quiet listening connection is checked


class NotificationBus:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._handlers: dict[str, list[Handler]] = {}
        self._on_connect: list[OnConnect] = []
        self._tasks = TaskOwner("cluster-bus")
        self._sender: asyncpg.Connection | None = None
        self._send_lock = asyncio.Lock()
        self.connected = asyncio.Event()
        self.connects = 0  # how many times the listening connection was (re)made

    def on(self, channel: str, handler: Handler) -> None:
        """Call ``handler(payload)`` for each notification on ``channel`` (before ``start``)."""
        self._handlers.setdefault(channel, []).append(handler)

    def on_connect(self, callback: OnConnect) -> None:
        """Run ``callback`` after each (re)connect: what was sent meanwhile was not heard."""
        self._on_connect.append(callback)

    async def start(self, timeout_s: float = 10.0) -> None:
        """Listen in the background; returns once listening (or raises after ``timeout_s``)."""
        self._tasks.spawn(self._listen_forever(), name="cluster-bus")
        async with asyncio.timeout(timeout_s):
            await self.connected.wait()

    async def notify(self, channel: str, payload: str = "") -> None:
        """Send one notification (outside any transaction: it is delivered at once)."""
        await self.notify_many(channel, [payload])

    async def notify_many(self, channel: str, payloads: Sequence[str]) -> None:
        """Send several notifications in one round trip, delivered in this order. They are one
        transaction, and PostgreSQL delivers identical payloads of one transaction once: make
        each payload unique."""
        async with self._send_lock:
            for attempt in range(2):
                try:
                    if self._sender is None or self._sender.is_closed():
                        self._sender = await asyncpg.connect(self._dsn)
                    await self._sender.execute(  # unnest yields the array's elements in order
                        "select pg_notify($1, p) from unnest($2::text[]) as t(p)",
                        channel,
                        list(payloads),
                    )
                    return
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    await self._drop_sender()
                    if attempt:
                        raise

    def notify_soon(self, channel: str, payload: str = "") -> None:
        """``notify`` from synchronous code; a failure is logged (the receivers' caches expire
        by themselves, and a reconnect drops them all)."""
        self._tasks.spawn(self._notify_logged(channel, payload), name="cluster-notify")

    async def _notify_logged(self, channel: str, payload: str) -> None:
        try:
            await self.notify(channel, payload)
        except Exception:
            log.warning("could not notify the other replicas on %s", channel, exc_info=True)

    async def _drop_sender(self) -> None:
        sender, self._sender = self._sender, None
        if sender is not None:
            sender.terminate()

    async def close(self) -> None:
        await self._tasks.close()
        await self._drop_sender()
        self.connected.clear()

    async def _listen_forever(self) -> None:
        attempt = 0
        while True:
            try:
                await self._listen_once()
                attempt = 0
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("the cluster's notification connection failed: %s", exc)
            finally:
                self.connected.clear()
            await asyncio.sleep(RECONNECT.delay(attempt))  # reconnect backoff
            attempt += 1

    async def _listen_once(self) -> None:
        name = f"corral-bus {os.getpid()}"
        conn = await asyncpg.connect(self._dsn, server_settings={"application_name": name})
        lost = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            for channel in self._handlers:
                await conn.add_listener(channel, self._dispatch)
            self.connects += 1
            for callback in self._on_connect:
                result = callback()
                if inspect.isawaitable(result):
                    await result
            self.connected.set()
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(KEEPALIVE_S):
                        await lost.wait()
                if not lost.is_set():
                    async with asyncio.timeout(KEEPALIVE_S):
                        await conn.fetchval("select 1")
        finally:
            conn.terminate()

    def _dispatch(self, _conn: object, _pid: int, channel: str, payload: str) -> None:
        for handler in self._handlers.get(channel, ()):
            try:
                handler(payload)
            except Exception:
                log.exception("a cluster notification handler failed on %s", channel)
