"""The containers' rows: every read, the one way to write a row (with its event, in the same
transaction), progress events, and the per-container locks.

Rules that hold throughout the container services:
- The database answers list and get; Docker is asked only when something changes.
- Operations on one container take its lock (``lock``, ``held``), so concurrent requests queue
  instead of racing.
- A row is never deleted because Docker lost the container: it becomes ``missing``, and start
  rebuilds it on the same volume.

Nothing here talks to Docker.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import Any, NamedTuple

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.auth.principal import Principal
from backend.containers.kept import KeptVolumes
from backend.containers.locks import KeyedLocks, RemoteLocks
from backend.containers.lookup import UUID_RE, find_container, find_listed, names_row
from backend.db.models import (
    LIST_COLUMNS,
    LIST_NAMES,
    Container,
    KeptVolume,
    container_json,
    utcnow,
    volume_name,
)
from backend.errors import ContainerNotFound, NameTaken, RetryLater
from backend.events.log import EventLog
from backend.read_cache import ReadCache
from corral.shapes import RUNNING_STATUSES, EventType, Stage, Status
from corral.shapes import Container as ContainerJson

ALL_USERS = "*"  # the list cache's key for every user's containers (administrators)

# Full Docker IDs (they never move to another row) and owners (a row's never changes)
# remembered before each cache starts over.
_DOCKER_ID_CACHE = 50_000
_OWNER_CACHE = 50_000


class UserUsage(NamedTuple):
    """What a user holds against their tier: containers, and disk (their containers' and
    their kept volumes')."""

    containers: int
    containers_disk_mb: int
    kept_volumes: int
    kept_mb: int

    @property
    def disk_mb(self) -> int:
        return self.containers_disk_mb + self.kept_mb

    def as_json(self) -> dict[str, int]:
        return {
            "containers": self.containers,
            "disk_mb": self.disk_mb,
            "kept_volumes": self.kept_volumes,
            "kept_volumes_mb": self.kept_mb,
        }


class SandboxRef(NamedTuple):
    """A row that names a Docker container: enough to follow it (the stats sampler)."""

    db_id: str
    docker_id: str
    user_id: str
    name: str
    engine: str


class ContainerRepository:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        events: EventLog,
        remote_locks: RemoteLocks | None = None,
    ) -> None:
        self._sessions = sessions
        self._events = events
        self._locks = KeyedLocks(remote_locks, "container")
        self._user_locks = KeyedLocks(remote_locks, "user")
        self._docker_ids: dict[str, str] = {}
        self._owners: dict[str, str] = {}  # db_id -> user_id
        self._engines: dict[str, str] = {}  # db_id -> engine (a row never changes engine)
        # Each user's list (and the administrators' list of all, under ALL_USERS), kept until
        # one of the writes below changes a row of theirs (backend.read_cache).
        self._lists: ReadCache[str, list[ContainerJson]] = ReadCache()
        # Told the owner after a write that announces nothing (``touch``), so other replicas
        # can drop their cached list of it (backend.cluster.wiring); announced writes reach
        # them as events.
        self.quietly_changed: Callable[[str], None] | None = None

    # -- reading ------------------------------------------------------------------------------

    async def list_json(self, principal: Principal, all_users: bool) -> list[ContainerJson]:
        """The caller's containers as contract objects, from the database alone (or from
        memory, when none of them changed since the last list)."""
        key = ALL_USERS if all_users else principal.user_id
        cached = self._lists.get(key)
        if cached is not None:
            return list(cached)
        stamp = self._lists.stamp()
        # Rows made in the same millisecond: in ID order, the same on every database (SQLite gave
        # insertion order by accident; PostgreSQL gives any).
        query = select(*LIST_COLUMNS).order_by(Container.created_at, Container.id)
        if not all_users:
            query = query.where(Container.user_id == principal.user_id)
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        items = [container_json(dict(zip(LIST_NAMES, row, strict=True))) for row in rows]
        self._lists.put(key, stamp, items)
        return list(items)

    async def count_for(self, user_id: str) -> int:
        async with self._sessions() as session:
            value = await session.scalar(
                select(func.count()).select_from(Container).where(Container.user_id == user_id)
            )
        return int(value or 0)

    async def usage_of(self, user_id: str) -> UserUsage:
        """The user's containers and disk, their containers' and kept volumes' (one query)."""
        mine = Container.user_id == user_id
        kept = KeptVolume.user_id == user_id
        query = select(
            select(func.count()).where(mine).scalar_subquery(),
            select(func.coalesce(func.sum(Container.disk_mb), 0)).where(mine).scalar_subquery(),
            select(func.count()).select_from(KeptVolume).where(kept).scalar_subquery(),
            select(func.coalesce(func.sum(KeptVolume.size_mb), 0)).where(kept).scalar_subquery(),
        )
        async with self._sessions() as session:
            row = (await session.execute(query)).one()
        return UserUsage(*(int(value or 0) for value in row))

    async def get_json(self, principal: Principal, ident: str) -> ContainerJson:
        """The container ``ident`` names, as the contract's object: from the caller's remembered
        list when they see only their own (``lookup.find_listed``, the same order), else as
        ``resolve`` finds it; the same 404 either way."""
        if principal.is_admin:
            return (await self.resolve(principal, ident)).as_json()
        found = find_listed(await self.list_json(principal, False), ident)
        if found is None:
            raise ContainerNotFound()
        return found

    async def resolve(self, principal: Principal, ident: str) -> Container:
        """The container ``ident`` names: a database ID, a Docker ID, a name or a unique Docker
        ID prefix, in that order (``backend.containers.lookup``); 404 when none, or when it is
        not the caller's."""
        async with self._sessions() as session:
            row = await find_container(session, principal, ident)
        if row is None:
            raise ContainerNotFound()
        self.remember(row)
        return row

    async def get(self, db_id: str) -> Container | None:
        async with self._sessions() as session:
            return await session.get(Container, db_id)

    async def reload(self, db_id: str) -> Container:
        """The row as stored now; 404 when it is gone."""
        row = await self.get(db_id)
        if row is None:
            raise ContainerNotFound()
        return row

    async def name_taken(self, row: Container, name: str) -> bool:
        """Whether another container of the row's owner is called ``name``."""
        async with self._sessions() as session:
            taken = await session.scalar(
                select(Container.id).where(
                    Container.user_id == row.user_id,
                    Container.name == name,
                    Container.id != row.id,
                )
            )
        return taken is not None

    async def with_sandbox(self, statuses: Iterable[Status]) -> list[SandboxRef]:
        """Every row in one of ``statuses`` that names a Docker container."""
        query = select(
            Container.id, Container.docker_id, Container.user_id, Container.name, Container.engine
        ).where(Container.status.in_(tuple(statuses)), Container.docker_id.is_not(None))
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        return [
            SandboxRef(db_id, docker_id, user_id, name, engine)
            for db_id, docker_id, user_id, name, engine in rows
            if docker_id is not None
        ]

    async def ids(self, engine: str) -> list[str]:
        """The IDs of the rows placed on ``engine``."""
        query = select(Container.id).where(Container.engine == engine)
        async with self._sessions() as session:
            return list((await session.execute(query)).scalars().all())

    async def placed(self) -> dict[str, tuple[int, int]]:
        """Per engine: how many rows are placed there, and the ``memory_mb`` of those whose
        sandbox runs or is being made (a stopped one holds no memory)."""
        active = case(
            (Container.status.in_([*RUNNING_STATUSES, Status.CREATING]), Container.memory_mb),
            else_=0,
        )
        query = select(Container.engine, func.count(), func.coalesce(func.sum(active), 0)).group_by(
            Container.engine
        )
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        return {engine: (int(count), int(memory)) for engine, count, memory in rows}

    async def get_many(self, db_ids: Iterable[str]) -> list[Container]:
        """The rows of ``db_ids`` that exist, read now (hold their locks: ``locks``)."""
        async with self._sessions() as session:
            query = select(Container).where(Container.id.in_(list(db_ids)))
            return list((await session.execute(query)).scalars().all())

    async def all_volumes(self, engine: str) -> list[str]:
        """Every volume's name on ``engine``, the rows' and the kept ones (to mount them again at
        start)."""
        rows_query = select(Container.id, Container.volume).where(Container.engine == engine)
        kept_query = select(KeptVolume.name).where(KeptVolume.engine == engine)
        async with self._sessions() as session:
            rows = (await session.execute(rows_query)).all()
            kept = (await session.execute(kept_query)).scalars().all()
        return [volume or volume_name(db_id) for db_id, volume in rows] + list(kept)

    # -- locking ------------------------------------------------------------------------------

    def lock(self, db_id: str) -> AbstractAsyncContextManager[None]:
        """The container's lock: hold it to change the row or its sandbox."""
        return self._locks.hold(db_id)

    def user_lock(self, user_id: str) -> AbstractAsyncContextManager[None]:
        """The user's lock: what counts against their tier (containers, disk) is checked and
        changed under it, so concurrent requests cannot pass a limit together. Taken after a
        container's lock, never before one."""
        return self._user_locks.hold(user_id)

    def locks(self, db_ids: Iterable[str]) -> AbstractAsyncContextManager[None]:
        """Several containers' locks, taken in one order, so two holders of several never wait
        for each other (across replicas: on one connection, in one request)."""
        return self._locks.hold(*db_ids)

    @asynccontextmanager
    async def held(self, principal: Principal, ident: str) -> AsyncIterator[Container]:
        """The container ``ident`` names, locked, and read fresh inside the lock.

        The owner is checked *before* the lock is taken: another user's container answers the
        same 404 as an unknown ID at once, never after waiting for its lock (the wait would tell
        that the ID exists and that something runs on it). Database IDs and full Docker IDs
        (remembered: they never move to another row) are checked against the row's owner
        (remembered too: it never changes) and take the lock at once, so the common case costs
        one query; anything else, or one of those that does not name a container of the caller
        (it may still be a name), is looked up first. The row read inside the lock is always
        checked again, so a rename, a rebuild or a delete in between gives the same 404 as an
        unknown ID."""
        key = ident.strip().lower()
        known = key if UUID_RE.fullmatch(key) else self._docker_ids.get(key)
        if known is not None and await self._may_see(principal, known):
            async with self._locks.hold(known):
                row = await self._visible_row(principal, known, ident)
                if row is not None:
                    yield row
                    return
        db_id = (await self.resolve(principal, ident)).id
        async with self._locks.hold(db_id):
            row = await self._visible_row(principal, db_id, ident)
            if row is None:
                raise ContainerNotFound()
            yield row

    async def engine_of(self, principal: Principal, ident: str) -> str:
        """The engine of the container ``ident`` names (404 as ``resolve``). Remembered for
        database and full Docker IDs, as ``held`` remembers owners: routing an operation to its
        engine costs no query in the common case (the operation reads the row under its lock
        anyway, and says 404 if it went meanwhile)."""
        key = ident.strip().lower()
        known = key if UUID_RE.fullmatch(key) else self._docker_ids.get(key)
        if known is not None and known in self._engines and await self._may_see(principal, known):
            return self._engines[known]
        return (await self.resolve(principal, ident)).engine

    async def _may_see(self, principal: Principal, db_id: str) -> bool:
        """Whether the row ``db_id`` (if it exists) is the caller's, without any lock: from the
        remembered owner, or one query."""
        if principal.is_admin:
            return True
        owner = self._owners.get(db_id)
        if owner is None:
            row = await self.get(db_id)
            if row is None:
                return False
            self.remember(row)
            owner = row.user_id
        return owner == principal.user_id

    async def _visible_row(self, principal: Principal, db_id: str, ident: str) -> Container | None:
        row = await self.get(db_id)
        if row is None or not (principal.is_admin or row.user_id == principal.user_id):
            return None
        return row if names_row(row, ident) else None

    def remember(self, row: Container) -> None:
        """Remember the row's owner and full Docker ID, so ``held`` can check the owner and lock
        it without a lookup."""
        if len(self._owners) > _OWNER_CACHE:
            self._owners.clear()
            self._engines.clear()
        self._owners[row.id] = row.user_id
        self._engines[row.id] = row.engine
        if row.docker_id:
            if len(self._docker_ids) > _DOCKER_ID_CACHE:
                self._docker_ids.clear()
            self._docker_ids[row.docker_id] = row.id

    # -- writing ------------------------------------------------------------------------------

    async def add(self, row: Container, kept_volume: str | None) -> None:
        """Store a new row and announce it, in one transaction; with ``kept_volume``, claim
        that kept volume of the owner in the same transaction (call under
        ``KeptVolumes.held``). A name the owner already uses is refused (409)."""
        try:
            async with self._changes(row), self._events.transaction() as tx:
                if kept_volume:
                    await KeptVolumes.claim(tx.session, row.user_id, kept_volume)
                tx.session.add(row)
                await tx.session.flush()
                await tx.add(row.user_id, EventType.CONTAINER_CREATED, row.as_json())
        except IntegrityError as exc:
            raise NameTaken() from exc
        self.remember(row)

    async def save(
        self,
        row: Container,
        event: EventType | None = None,
        *,
        message: str | None = None,
        **values: Any,
    ) -> Container:
        """Write ``values`` to a row read under its lock and, when ``event`` is given, announce
        the change in the same transaction. One UPDATE, no re-read: the caller's copy is fresh.
        ``message`` goes into the event's payload (a note for people: "role packages
        reinstalling"), not into the row."""
        async with self._changes(row), self._events.transaction() as tx:
            result = await tx.session.execute(
                update(Container).where(Container.id == row.id).values(**values)
            )
            if not getattr(result, "rowcount", 1):
                raise ContainerNotFound()
            for key, value in values.items():
                setattr(row, key, value)
            if event is not None:
                payload = row.as_json()
                if message is not None:
                    payload["message"] = message
                await tx.add(row.user_id, event, payload)
        return row

    async def mark_missing(self, rows: list[Container]) -> None:
        """Rows whose containers Docker no longer has (each read under its lock and confirmed
        gone): ``missing``, each announced, in one transaction (a reconcile after the engine
        lost many containers writes them in batches rather than one by one)."""
        if not rows:
            return
        async with self._changes(*rows), self._events.transaction() as tx:
            await tx.session.execute(
                update(Container)
                .where(Container.id.in_([row.id for row in rows]))
                .values(status=Status.MISSING)
            )
            for row in rows:
                row.status = Status.MISSING
                await tx.add(row.user_id, EventType.CONTAINER_UPDATED, row.as_json())

    async def remove(
        self, row: Container, payload: dict[str, Any], *, keep: bool, size_mb: int | None
    ) -> None:
        """Delete the row and announce it (``payload``), in one transaction; with ``keep``,
        record its volume as kept in the same transaction (``size_mb``: its size, None without
        quotas)."""
        async with self._changes(row), self._events.transaction() as tx:
            await tx.session.execute(delete(Container).where(Container.id == row.id))
            if keep:
                KeptVolumes.record(tx.session, row, size_mb)
            await tx.add(row.user_id, EventType.CONTAINER_DELETED, payload)

    async def touch(self, row: Container) -> None:
        """Record use (a terminal opened) without announcing it: ``last_used_at`` only.
        Bookkeeping: while the database cannot take a write (locked, disk full) the terminal
        opens without it."""
        with suppress(RetryLater):
            async with self._changes(row), self._sessions() as session:
                await session.execute(
                    update(Container).where(Container.id == row.id).values(last_used_at=utcnow())
                )
                await session.commit()
            if self.quietly_changed is not None:
                self.quietly_changed(row.user_id)

    def lists_changed(self, user_id: str | None) -> None:
        """A write elsewhere (another replica) changed ``user_id``'s rows (None: anyone's):
        their cached lists go."""
        if user_id is None:
            self._lists.clear()
        else:
            self._lists.changed(user_id, ALL_USERS)

    @asynccontextmanager
    async def _changes(self, *rows: Container) -> AsyncIterator[None]:
        """Around a write of ``rows``: their owners' cached lists go once the write is over,
        committed or not (a needless drop costs one query; a missed one, a stale list). Entered
        before the transaction, so it leaves after the commit."""
        try:
            yield
        finally:
            self._lists.changed(*{row.user_id for row in rows}, ALL_USERS)

    async def progress(
        self, row: Container, stage: Stage, message: str, progress: int, **extra: Any
    ) -> None:
        """Announce a step of long work on the row (``container_progress``; nothing stored)."""
        payload = {
            "id": row.public_id,
            "db_id": row.id,
            "name": row.name,
            "stage": stage,
            "message": message,
            "progress": progress,
            **extra,
        }
        await self._events.publish(row.user_id, EventType.CONTAINER_PROGRESS, payload)
