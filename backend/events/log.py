"""The event log: every change to a user's containers and agents, numbered per user.

Each event is written to the database before it is delivered, so a client that reconnects with
``?since=<seq>`` can be given exactly what it missed. ``seq`` increases by one per user; an admin's
all-users stream is ordered by the row ID instead (a "position" below is either: a user's ``seq``
for a user's stream, the row ID for the all-users stream).

With replicas on one PostgreSQL database (``share``), every process writes the log: positions are
read from the table rather than remembered, writes hold the log's advisory lock until they commit,
and listeners hear every process's events through ``backend.events.feed``.

The log is bounded: ``prune()`` keeps the most recent ``keep_per_user`` events of each user. A
replay that would need a pruned event is refused (``None``), and the caller sends a fresh list.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.cluster.keys import EVENT_LOG, EVENTS_CHANNEL, advisory_key
from backend.db.engine import BUSY_TIMEOUT_S
from backend.db.models import EventRecord, iso, utcnow
from backend.errors import DatabaseBusy, RetryLater
from backend.events.feed import EventFeed
from corral.shapes import EventType

log = logging.getLogger(__name__)

T = TypeVar("T")

# With replicas (PostgreSQL): see ``EventLog.share`` and ``backend.events.feed``.
LOG_KEY = advisory_key(EVENT_LOG)
LOCK_AND_NOTIFY = text("select pg_advisory_xact_lock(:key), pg_notify(:channel, '')")
LOCK_LOG_SHARED = text("select pg_advisory_xact_lock_shared(:key)")


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
        # With replicas: the log's last row ID when this transaction began to write (under the
        # log's lock, so no other event can commit between it and this transaction's).
        self.last_id_before: int | None = None

    async def add(self, user_id: str, type_: EventType, container: Mapping[str, Any]) -> None:
        assert type_ is not EventType.LIST, type_
        mine = [record.seq for record in self.staged if record.user_id == user_id]
        if mine:
            seq = mine[-1] + 1
        elif self._log.feed is not None and self.last_id_before is None:
            seq, self.last_id_before = await self._log._next_seq_and_last_id(self.session, user_id)
        else:
            seq = await self._log._next_seq(self.session, user_id)
        record = EventRecord(
            user_id=user_id,
            seq=seq,
            type=type_,
            container_id=str(container.get("id")) if container.get("id") else None,
            payload=dict(container),
            timestamp=utcnow(),
        )
        self.session.add(record)
        self.staged.append(record)

    def events(self) -> list[Event]:
        return [Event.from_record(record) for record in self.staged]


class EventLog:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], keep_per_user: int) -> None:
        self._sessions = sessions
        self._keep = max(1, keep_per_user)
        self._last_seq: dict[str, int] = {}
        self._last_id: int | None = None
        # Users with events since the last prune; None: not pruned yet, look at every user.
        self._dirty: set[str] | None = None
        self._lock = asyncio.Lock()
        self._busy_generation = 0  # how many writes found the database locked (see _locked)
        self._listeners: list[Listener] = []
        # With replicas (``share``): events reach the listeners through the feed, read from
        # the table, whichever process wrote them.
        self.feed: EventFeed | None = None

    def share(self) -> EventFeed:
        """Replicas write this log (PostgreSQL): positions are read from the database rather
        than remembered, writes take the log's advisory lock until they commit, and listeners
        hear events from the returned feed (``backend.events.feed``), which the caller starts
        and wakes on every notification."""
        self.feed = EventFeed(
            self._sessions, lambda record: self._deliver(Event.from_record(record))
        )
        return self.feed

    @property
    def keep_per_user(self) -> int:
        return self._keep

    def add_listener(self, listener: Listener, *, first: bool = False) -> None:
        """Hear every event after its commit. Listeners run synchronously on the committing
        task, so they must never block: hand the event on (``put_nowait``) and return."""
        if first:
            self._listeners.insert(0, listener)
        else:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[EventTransaction]:
        """A database transaction whose events commit with it, atomically.

        A state change and its announcement are written together, so the log never claims a
        change the database does not hold (or the reverse). Listeners hear the events only after
        the commit, and before the next transaction may commit (the lock is released with no
        await before delivery), so ``snapshot()`` sees every committed event delivered.

        While another process holds the database, writes fail (503 ``database busy``) after
        about the busy timeout rather than queue behind each other for ever longer."""
        feed = self.feed
        async with self._locked(), self._sessions() as session:
            if feed is not None:
                # The notification is sent at the commit (never on a rollback); in the same
                # round trip as the lock, since nearly every such transaction records events.
                await session.execute(LOCK_AND_NOTIFY, {"key": LOG_KEY, "channel": EVENTS_CHANNEL})
            tx = EventTransaction(self, session)
            yield tx
            await session.commit()
            if feed is None:
                for record in tx.staged:
                    self._last_seq[record.user_id] = record.seq
                    if self._last_id is None or record.id > self._last_id:
                        self._last_id = record.id
                    if self._dirty is not None:
                        self._dirty.add(record.user_id)
        if feed is None:
            for event in tx.events():
                self._deliver(event)
        elif tx.staged:
            await self._caught_up(feed, tx)

    @staticmethod
    async def _caught_up(feed: EventFeed, tx: EventTransaction) -> None:
        """Deliver what this process just committed (and anything before it) before the write
        returns, as without replicas: at once when the feed had reached the events before
        these, else from the table; a failure leaves it to the next wake."""
        try:
            if tx.last_id_before is None or not await feed.committed_here(
                tx.last_id_before, tx.staged
            ):
                await feed.catch_up()
        except Exception:
            log.warning("could not deliver new events yet", exc_info=True)

    @asynccontextmanager
    async def _locked(self) -> AsyncIterator[None]:
        """The log's lock, for one write, waited for at most the busy timeout. When the write
        ahead finds the database locked by another process (DatabaseBusy, after waiting out the
        busy timeout itself), the writes queued behind it fail at once rather than each wait
        their own turn: a request waits about the busy timeout in all, never a multiple."""
        generation = self._busy_generation
        try:
            async with asyncio.timeout(BUSY_TIMEOUT_S):
                await self._lock.acquire()
        except TimeoutError:
            raise DatabaseBusy() from None
        try:
            if generation != self._busy_generation:
                raise DatabaseBusy()
            try:
                yield
            except DatabaseBusy:
                self._busy_generation += 1
                raise
        finally:
            self._lock.release()

    async def publish(
        self, user_id: str, type_: EventType, container: Mapping[str, Any]
    ) -> Event | None:
        """Record one event on its own and hand it to the live listeners. Never raises: a change
        that happened must not be reported as failed because its announcement was not stored."""
        try:
            async with self.transaction() as tx:
                await tx.add(user_id, type_, container)
        except RetryLater as exc:
            log.warning("could not record %s event for user %s: %s", type_, user_id, exc.error)
            return None
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

    @staticmethod
    async def _next_seq_and_last_id(session: AsyncSession, user_id: str) -> tuple[int, int]:
        """With replicas, in one round trip: the user's next seq and the log's last row ID."""
        last_seq = (
            select(func.coalesce(func.max(EventRecord.seq), 0))
            .where(EventRecord.user_id == user_id)
            .scalar_subquery()
        )
        last_id = select(func.coalesce(func.max(EventRecord.id), 0)).scalar_subquery()
        seq, event_id = (await session.execute(select(last_seq, last_id))).one()
        return int(seq) + 1, int(event_id)

    async def _next_seq(self, session: AsyncSession, user_id: str) -> int:
        last = self._last_seq.get(user_id) if self.feed is None else None
        if last is None:
            last = await self._max_seq(session, user_id)
        return last + 1

    @staticmethod
    async def _max_seq(session: AsyncSession, user_id: str) -> int:
        value = (
            await session.execute(
                select(func.coalesce(func.max(EventRecord.seq), 0)).where(
                    EventRecord.user_id == user_id
                )
            )
        ).scalar_one()
        return int(value)

    async def _position(self, user_id: str | None) -> int:
        """The last committed position (call with the lock held)."""
        if self.feed is not None:  # other processes write too: nothing to remember
            async with self._sessions() as session:
                return await self._stored_position(session, user_id)
        if user_id is None:
            if self._last_id is None:
                async with self._sessions() as session:
                    value = (
                        await session.execute(select(func.coalesce(func.max(EventRecord.id), 0)))
                    ).scalar_one()
                self._last_id = int(value)
            return self._last_id
        if user_id not in self._last_seq:
            async with self._sessions() as session:
                self._last_seq[user_id] = await self._max_seq(session, user_id)
        return self._last_seq[user_id]

    async def last_seq(self, user_id: str) -> int:
        """The user's last committed ``seq`` (0 before their first event)."""
        async with self._lock:
            return await self._position(user_id)

    async def last_id(self) -> int:
        """The last committed event's row ID: the all-users stream's position."""
        async with self._lock:
            return await self._position(None)

    async def snapshot(
        self, user_id: str | None, read: Callable[[], Awaitable[T]]
    ) -> tuple[int, T]:
        """``read()`` and the position it reflects, with no event committing in between.

        Every container change commits with its event under this log's lock, so state read while
        holding it is exactly the state after the returned position: a subscriber that was
        registered before calling this drops live events up to the position and misses none
        after it."""
        async with self._lock:
            if self.feed is None:
                position = await self._position(user_id)
                return position, await read()
            # With replicas: no process may commit events meanwhile (the log's lock, shared),
            # and this process's listeners (its caches) must have heard all up to the position.
            async with self._sessions() as session:
                await session.execute(LOCK_LOG_SHARED, {"key": LOG_KEY})
                position = await self._stored_position(session, user_id)
                await self.feed.catch_up()
                return position, await read()

    async def _stored_position(self, session: AsyncSession, user_id: str | None) -> int:
        if user_id is not None:
            return await self._max_seq(session, user_id)
        value = await session.scalar(select(func.coalesce(func.max(EventRecord.id), 0)))
        return int(value or 0)

    async def since(
        self, user_id: str, seq: int, until: int, limit: int = 10_000
    ) -> list[Event] | None:
        """The user's events with ``seq < event.seq <= until``, in order, or None when they
        cannot all be given: some were pruned, or there are more than ``limit``.

        A user's seqs are consecutive, so the answer is complete exactly when it holds
        ``until - seq`` events."""
        if seq >= until:
            return []
        if until - seq > limit:
            return None
        async with self._sessions() as session:
            rows = (
                (
                    await session.execute(
                        select(EventRecord)
                        .where(
                            EventRecord.user_id == user_id,
                            EventRecord.seq > seq,
                            EventRecord.seq <= until,
                        )
                        .order_by(EventRecord.seq)
                    )
                )
                .scalars()
                .all()
            )
        if len(rows) != until - seq or rows[0].seq != seq + 1:
            return None
        return [Event.from_record(r) for r in rows]

    async def since_all(self, event_id: int, until: int, limit: int = 10_000) -> list[Event] | None:
        """Every user's events with ``event_id < id <= until`` in ID order, or None when some
        may have been pruned or there are more than ``limit``.

        Row IDs are not consecutive per user, so pruning is detected from what survives: a
        user whose oldest kept event is not their first lost only events older than that one,
        so no event after ``event_id`` was pruned when ``event_id`` reaches every such user's
        oldest kept ID minus one. This may refuse a replay that was possible; it never allows
        one that was not."""
        if event_id >= until:
            return []
        async with self._sessions() as session:
            rows = (
                (
                    await session.execute(
                        select(EventRecord)
                        .where(EventRecord.id > event_id, EventRecord.id <= until)
                        .order_by(EventRecord.id)
                        .limit(limit + 1)
                    )
                )
                .scalars()
                .all()
            )
            if len(rows) > limit:
                return None
            # Read after the rows: a prune that ran in between raises the bound, never hides.
            per_user = (
                select(
                    func.min(EventRecord.id).label("oldest_id"),
                    func.min(EventRecord.seq).label("oldest_seq"),
                )
                .group_by(EventRecord.user_id)
                .subquery()
            )
            bound = (
                await session.execute(
                    select(func.max(per_user.c.oldest_id)).where(per_user.c.oldest_seq > 1)
                )
            ).scalar_one_or_none()
        if bound is not None and event_id < int(bound) - 1:
            return None
        return [Event.from_record(r) for r in rows]

    async def prune(self) -> int:
        """Keep only the most recent ``keep_per_user`` events of each user; returns how many
        were removed.

        The first call looks at every user; later calls only at users with new events since
        the previous call, so a periodic prune costs nothing while nothing happens. Each user's
        delete runs under the log's lock, so it never contends with a commit."""
        async with self._lock:
            dirty, self._dirty = self._dirty, set()
        if self.feed is not None:
            dirty = None  # other processes write too: look at every user
        async with self._sessions() as session:
            if dirty is None:
                query = select(EventRecord.user_id, func.max(EventRecord.seq)).group_by(
                    EventRecord.user_id
                )
                tops = {str(u): int(m) for u, m in (await session.execute(query)).all()}
            else:
                tops = {}
                for user_id in dirty:
                    cached = self._last_seq.get(user_id) if self.feed is None else None
                    tops[user_id] = (
                        cached if cached is not None else await self._max_seq(session, user_id)
                    )
        removed = 0
        for user_id, top in tops.items():
            cutoff = top - self._keep
            if cutoff <= 0:
                continue
            async with self._lock, self._sessions() as session:
                result = await session.execute(
                    delete(EventRecord).where(
                        EventRecord.user_id == user_id, EventRecord.seq <= cutoff
                    )
                )
                await session.commit()
            removed += int(getattr(result, "rowcount", 0) or 0)
        return removed
