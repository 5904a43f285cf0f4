"""The event log: every change to a user's containers and agents, numbered per user.

Each event is written to the database before it is delivered, so a client that reconnects with
``?since=<seq>`` can be given exactly what it missed. ``seq`` increases by one per user; an admin's
all-users stream is ordered by the row ID instead.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.db.models import EventRecord, iso, utcnow

log = logging.getLogger(__name__)

EVENT_TYPES = (
    "container_created",
    "container_progress",
    "container_started",
    "container_stopped",
    "container_deleted",
    "container_updated",
    "agent_connected",
    "agent_disconnected",
)


@dataclass(frozen=True)
class Event:
    id: int
    user_id: str
    seq: int
    type: str
    container: dict[str, Any]
    timestamp: datetime

    def message(self, seq: int | None = None) -> dict[str, Any]:
        """The wire form; ``seq`` may be overridden for the admin's all-users stream."""
        return {
            "type": self.type,
            "container": self.container,
            "timestamp": iso(self.timestamp),
            "seq": self.seq if seq is None else seq,
        }

    @classmethod
    def from_record(cls, record: EventRecord) -> Event:
        return cls(
            id=record.id,
            user_id=record.user_id,
            seq=record.seq,
            type=record.type,
            container=dict(record.payload),
            timestamp=record.timestamp,
        )


Listener = Callable[[Event], None]


class EventTransaction:
    """Events staged inside one database transaction (see ``EventLog.transaction``)."""

    def __init__(self, log: EventLog, session: AsyncSession) -> None:
        self._log = log
        self.session = session
        self.staged: list[EventRecord] = []

    async def add(self, user_id: str, type_: str, container: dict[str, Any]) -> None:
        assert type_ in EVENT_TYPES, type_
        mine = [record.seq for record in self.staged if record.user_id == user_id]
        seq = mine[-1] + 1 if mine else await self._log._next_seq(self.session, user_id)
        record = EventRecord(
            user_id=user_id,
            seq=seq,
            type=type_,
            container_id=str(container.get("id")) if container.get("id") else None,
            payload=container,
            timestamp=utcnow(),
        )
        self.session.add(record)
        self.staged.append(record)

    def events(self) -> list[Event]:
        return [Event.from_record(record) for record in self.staged]


class EventLog:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], keep_per_user: int) -> None:
        self._sessions = sessions
        self._keep = keep_per_user
        self._last_seq: dict[str, int] = {}
        self._lock = asyncio.Lock()
        self._listeners: list[Listener] = []

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[EventTransaction]:
        """A database transaction whose events commit with it, atomically.

        A state change and its announcement are written together, so the log never claims a
        change the database does not hold (or the reverse). Listeners hear the events only after
        the commit."""
        async with self._lock, self._sessions() as session:
            tx = EventTransaction(self, session)
            yield tx
            await session.commit()
            for record in tx.staged:
                self._last_seq[record.user_id] = record.seq
        for event in tx.events():
            self._deliver(event)

    async def publish(self, user_id: str, type_: str, container: dict[str, Any]) -> Event | None:
        """Record one event on its own and hand it to the live listeners. Never raises: a change
        that happened must not be reported as failed because its announcement was not stored."""
        try:
            async with self.transaction() as tx:
                await tx.add(user_id, type_, container)
        except Exception:
            log.exception("could not record %s event for user %s", type_, user_id)
            return None
        return tx.events()[0]

    def _deliver(self, event: Event) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed")

    async def _next_seq(self, session: AsyncSession, user_id: str) -> int:
        last = self._last_seq.get(user_id)
        if last is None:
            last = (
                await session.execute(
                    select(func.coalesce(func.max(EventRecord.seq), 0)).where(
                        EventRecord.user_id == user_id
                    )
                )
            ).scalar_one()
        return int(last) + 1

    async def last_seq(self, user_id: str) -> int:
        async with self._lock:
            if user_id in self._last_seq:
                return self._last_seq[user_id]
            async with self._sessions() as session:
                value = (
                    await session.execute(
                        select(func.coalesce(func.max(EventRecord.seq), 0)).where(
                            EventRecord.user_id == user_id
                        )
                    )
                ).scalar_one()
            self._last_seq[user_id] = int(value)
            return int(value)

    async def since(self, user_id: str, seq: int, limit: int = 10_000) -> list[Event] | None:
        """Events after ``seq`` in order, or None when some of them were already pruned."""
        async with self._sessions() as session:
            rows = (
                (
                    await session.execute(
                        select(EventRecord)
                        .where(EventRecord.user_id == user_id, EventRecord.seq > seq)
                        .order_by(EventRecord.seq)
                        .limit(limit)
                    )
                )
                .scalars()
                .all()
            )
            if seq > 0:
                oldest = (
                    await session.execute(
                        select(func.min(EventRecord.seq)).where(EventRecord.user_id == user_id)
                    )
                ).scalar_one()
                if oldest is not None and oldest > seq + 1:
                    return None
        return [Event.from_record(r) for r in rows]

    async def recent_for_container(
        self, user_id: str, container_id: str, limit: int
    ) -> list[Event]:
        async with self._sessions() as session:
            rows = (
                (
                    await session.execute(
                        select(EventRecord)
                        .where(
                            EventRecord.user_id == user_id, EventRecord.container_id == container_id
                        )
                        .order_by(EventRecord.seq.desc())
                        .limit(limit)
                    )
                )
                .scalars()
                .all()
            )
        return [Event.from_record(r) for r in reversed(rows)]

    async def prune(self) -> int:
        """Keep only the most recent ``keep_per_user`` events of each user."""
        removed = 0
        async with self._sessions() as session:
            users = (await session.execute(select(EventRecord.user_id).distinct())).scalars().all()
            for user_id in users:
                cutoff = (
                    await session.execute(
                        select(EventRecord.seq)
                        .where(EventRecord.user_id == user_id)
                        .order_by(EventRecord.seq.desc())
                        .offset(self._keep)
                        .limit(1)
                    )
                ).scalar_one_or_none()
                if cutoff is not None:
                    result = await session.execute(
                        delete(EventRecord).where(
                            EventRecord.user_id == user_id, EventRecord.seq <= cutoff
                        )
                    )
                    removed += int(getattr(result, "rowcount", 0) or 0)
            await session.commit()
        return removed
