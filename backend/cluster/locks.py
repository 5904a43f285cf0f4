"""Locks that hold across processes: PostgreSQL session advisory locks, each held on its own
connection for as long as the lock is held.

``KeyedLocks`` takes the process's asyncio lock for a key first and this second, so one process
waits on at most one connection per key. Connections are kept idle for reuse and made on demand
without a cap: a cap could deadlock (every connection held by a container lock whose holder
waits for a user lock). A process that dies closes its connections, and PostgreSQL releases its
locks with them.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from backend.cluster.keys import advisory_key
from backend.errors import DatabaseBusy

log = logging.getLogger(__name__)

IDLE_CONNECTIONS = 8


class AdvisoryLocks:
    def __init__(self, dsn: str, idle: int = IDLE_CONNECTIONS) -> None:
        self._dsn = dsn
        self._idle: list[asyncpg.Connection] = []
        self._keep = idle
        self.held = 0  # locks held now, by this process

    @asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[None]:
        """Hold the advisory lock named ``name`` (waiting for other processes to release it).
        503 ``database busy`` when PostgreSQL cannot be reached."""
        key = advisory_key(name)
        conn = await self._connection()
        try:
            await conn.execute("select pg_advisory_lock($1)", key)
        except BaseException as exc:
            conn.terminate()  # a cancelled wait leaves the connection unusable
            if isinstance(exc, OSError | asyncpg.PostgresError | asyncpg.InterfaceError):
                raise DatabaseBusy("The database cannot be reached; try again shortly.") from exc
            raise
        self.held += 1
        try:
            yield
        finally:
            self.held -= 1
            await self._release(conn, key)

    async def _connection(self) -> asyncpg.Connection:
        while self._idle:
            conn = self._idle.pop()
            if not conn.is_closed():
                return conn
        try:
            return await asyncpg.connect(self._dsn)
        except (OSError, asyncpg.PostgresError) as exc:
            raise DatabaseBusy("The database cannot be reached; try again shortly.") from exc

    async def _release(self, conn: asyncpg.Connection, key: int) -> None:
        try:
            await conn.execute("select pg_advisory_unlock($1)", key)
        except Exception:
            conn.terminate()  # closing the session releases the lock
            return
        except BaseException:
            conn.terminate()
            raise
        if len(self._idle) < self._keep:
            self._idle.append(conn)
        else:
            await conn.close()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.terminate()
