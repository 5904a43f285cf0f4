"""Work that must run once per engine, not once per replica (the Docker watcher and its
reconciliation, the event-log prune): run only by the replica that holds an advisory lock.

Each ``Leadership`` keeps a dedicated connection and tries ``pg_try_advisory_lock`` on it every
``retry_s``. The holder runs the work; when its process dies its connection closes, PostgreSQL
releases the lock, and another replica takes it on its next try (about ``retry_s`` later). A
holder that loses its connection stops the work at once, since another may now hold the lock.
Without a database DSN (SQLite: one process) the work simply runs.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg

from backend.cluster.keys import advisory_key
from corral.aio import Backoff, TaskOwner

log = logging.getLogger(__name__)

Work = Callable[[], Coroutine[Any, Any, None]]
RETRY = Backoff(initial_s=0.25, maximum_s=2.0)
_CONNECTION_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


class Leadership:
    def __init__(self, dsn: str | None, name: str, work: Work, retry_s: float = 1.0) -> None:
        self._dsn = dsn
        self.name = name
        self._key = advisory_key(f"corral:leader:{name}")
        self._work = work
        self._retry_s = retry_s
        self._tasks = TaskOwner(f"leader-{name}")
        self.leading = asyncio.Event()
        self.terms = 0  # how many times this process became the leader

    def start(self) -> None:
        self._tasks.spawn(self._run() if self._dsn else self._alone(), name=f"leader-{self.name}")

    async def close(self) -> None:
        await self._tasks.close()
        self.leading.clear()

    async def _alone(self) -> None:
        self.terms += 1
        self.leading.set()
        await self._work()

    async def _run(self) -> None:
        attempt = 0
        while True:
            try:
                await self._term()
                attempt = 0
            except _CONNECTION_ERRORS as exc:
                log.warning("leadership of %s: the database connection failed: %s", self.name, exc)
            finally:
                self.leading.clear()
            await asyncio.sleep(RETRY.delay(attempt))  # reconnect backoff
            attempt += 1

    async def _term(self) -> None:
        """Connect, wait to become the leader, and run the work until the connection fails."""
        assert self._dsn is not None
        name = f"corral-leader {os.getpid()} {self.name}"[:63]
        conn = await asyncpg.connect(self._dsn, server_settings={"application_name": name})
        try:
            # Polling PostgreSQL's lock: no event to await here.
            while not await conn.fetchval("select pg_try_advisory_lock($1)", self._key):  # noqa: ASYNC110
                await asyncio.sleep(self._retry_s)  # polling the lock: another replica leads
            self.terms += 1
            self.leading.set()
            log.info("leading %s", self.name)
            await self._lead(conn)
        finally:
            conn.terminate()  # releases the lock, if this process held it

    async def _lead(self, conn: asyncpg.Connection) -> None:
        work = asyncio.create_task(self._work(), name=f"led-{self.name}")
        try:
            while True:
                done, _ = await asyncio.wait({work}, timeout=self._retry_s)
                if done:
                    if not work.cancelled() and work.exception() is not None:
                        log.error("%s failed", self.name, exc_info=work.exception())
                    return
                async with asyncio.timeout(self._retry_s * 3):
                    await conn.fetchval("select 1")  # still connected: still the leader
        finally:
            work.cancel()
            await asyncio.wait({work})
