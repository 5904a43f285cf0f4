"""With replicas: the one way committed events reach this process's listeners.

Every replica reads the event log from where it is (``id > cursor``, in ID order) and hands each
event to its listeners, so each is delivered exactly once, in order, wherever it was written.
The writers make that sound: every transaction that records events holds the log's advisory
lock until it commits (``EventLog``), so row IDs are assigned in commit order and a reader that
has seen ID ``n`` has seen every committed event below it. What starts a read: a commit in this
process, a ``NOTIFY`` from another, and every (re)connect of the bus (notifications sent while
it was not listening are lost; the table is not).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.db.models import EventRecord
from corral.aio import TaskOwner

log = logging.getLogger(__name__)

BATCH = 500


class EventFeed:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], deliver: Callable[[EventRecord], None]
    ) -> None:
        self._sessions = sessions
        self._deliver = deliver
        self._cursor: int | None = None
        self._lock = asyncio.Lock()
        self._tasks = TaskOwner("event-feed")
        self._wanted = False
        self._waking: asyncio.Task[None] | None = None
        self.delivered = 0  # events handed to the listeners since start

    @property
    def cursor(self) -> int | None:
        return self._cursor

    async def start(self) -> None:
        """Begin at the log's end: nobody here was subscribed to anything older."""
        async with self._lock, self._sessions() as session:
            value = await session.scalar(select(func.coalesce(func.max(EventRecord.id), 0)))
            self._cursor = int(value or 0)

    async def catch_up(self) -> int:
        """Deliver every committed event past the cursor, in order; the new cursor."""
        async with self._lock:
            if self._cursor is None:
                raise RuntimeError("EventFeed.start was not called")
            while True:
                async with self._sessions() as session:
                    rows = (
                        await session.scalars(
                            select(EventRecord)
                            .where(EventRecord.id > self._cursor)
                            .order_by(EventRecord.id)
                            .limit(BATCH)
                        )
                    ).all()
                for record in rows:
                    self._cursor = record.id
                    self.delivered += 1
                    self._deliver(record)
                if len(rows) < BATCH:
                    return self._cursor

    async def committed_here(self, last_id_before: int, records: list[EventRecord]) -> bool:
        """Deliver ``records``, just committed by this process, without reading them back, when
        nothing lies between the cursor and them (``last_id_before``: the log's last ID when
        their transaction took the log's lock); False when the feed must read the table."""
        async with self._lock:
            if self._cursor is None:
                return False
            if self._cursor >= max(record.id for record in records):
                return True  # a wake read them already
            if self._cursor != last_id_before:
                return False
            for record in sorted(records, key=lambda r: r.id):
                self._cursor = record.id
                self.delivered += 1
                self._deliver(record)
            return True

    def wake(self) -> None:
        """Catch up soon (a notification arrived); wakes that come during one catch-up make one
        more, not one each."""
        self._wanted = True
        if self._waking is None or self._waking.done():
            self._waking = self._tasks.spawn(self._wake(), name="event-feed")

    async def _wake(self) -> None:
        while self._wanted:
            self._wanted = False
            try:
                await self.catch_up()
            except Exception:
                # The next notification or bus reconnect catches up from the same cursor.
                log.warning("could not read new events from the log", exc_info=True)
                return

    async def close(self) -> None:
        await self._tasks.close()
