"""Kept volumes: the data of containers deleted with ``keep_volume``, listed, deleted, or
attached to a new container.

A delete with ``keep_volume=true`` records its volume, in the transaction that deletes the row
and announces it. The volume stays as it was (its image mounted, mounted again at every start,
so the Docker volume always shows the data). A create with
``"volume": NAME`` claims the record in the transaction that makes the new row, so a volume
is attached to at most one container, and a concurrent delete of the volume (which holds the
same per-name lock) either happens first (the create is refused) or finds nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Protocol

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.auth.principal import Principal
from backend.containers.locks import KeyedLocks, RemoteLocks
from backend.db.models import Container, KeptVolume
from backend.errors import DockerError, OperationFailed, VolumeNotFound
from corral.shapes import KeptVolume as KeptVolumeJson
from corral.shapes import VolumeDeleted


class VolumeData(Protocol):
    """What kept volumes need of the volumes themselves (``VolumeManager``): a volume's use,
    and its removal."""

    async def used_mb(self, name: str) -> int | None: ...

    async def remove_named(self, name: str) -> None: ...


class KeptVolumes:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        volumes: VolumeData,
        remote_locks: RemoteLocks | None = None,
    ) -> None:
        self._sessions = sessions
        self._volumes = volumes
        self._locks = KeyedLocks(remote_locks, "kept-volume")

    @asynccontextmanager
    async def held(self, name: str) -> AsyncIterator[None]:
        """Serialize the claim and the deletion of one volume."""
        async with self._locks.hold(name):
            yield

    async def list_json(
        self,
        principal: Principal,
        all_users: bool,
        measure: Callable[[KeptVolume], Awaitable[int | None]] | None = None,
    ) -> list[KeptVolumeJson]:
        """The kept volumes, each with its use as ``measure`` finds it (by default, on this
        engine; ``EnginePool.kept_json`` measures each on its own engine)."""
        query = select(KeptVolume).order_by(KeptVolume.kept_at, KeptVolume.name)
        if not all_users:
            query = query.where(KeptVolume.user_id == principal.user_id)
        async with self._sessions() as session:
            records = (await session.execute(query)).scalars().all()
        measure = measure or (lambda record: self._volumes.used_mb(record.name))
        return [record.as_json(await measure(record)) for record in records]

    async def find(self, user_id: str, name: str) -> KeptVolume | None:
        """The caller's own kept volume of that name (admins too: a create is the caller's)."""
        async with self._sessions() as session:
            record = await session.get(KeptVolume, name)
        return record if record is not None and record.user_id == user_id else None

    async def record_of(self, name: str) -> KeptVolume | None:
        """The kept volume ``name``, whoever's it is (to find its engine)."""
        async with self._sessions() as session:
            return await session.get(KeptVolume, name)

    async def size_of(self, user_id: str, name: str) -> int:
        """The size a kept volume of the user counts for (0 when it is not theirs, or gone)."""
        record = await self.find(user_id, name)
        return record.size_mb if record is not None else 0

    async def delete(self, principal: Principal, name: str) -> VolumeDeleted:
        """Remove the volume (the Docker volume, then its image) and its record. Another
        user's volume is the same 404 as an unknown one; an administrator may delete any."""
        async with self.held(name):
            async with self._sessions() as session:
                record = await session.get(KeptVolume, name)
            if record is None or not (principal.is_admin or record.user_id == principal.user_id):
                raise VolumeNotFound()
            try:
                await self._volumes.remove_named(name)
            except DockerError as exc:
                raise OperationFailed("failed to delete volume", str(exc)) from exc
            async with self._sessions() as session:
                await session.execute(delete(KeptVolume).where(KeptVolume.name == name))
                await session.commit()
        return {"message": "volume deleted", "name": name}

    @staticmethod
    async def claim(session: AsyncSession, user_id: str, name: str) -> None:
        """Take the caller's kept volume for a new container, inside its create transaction
        (call under ``held(name)``); refused when it is no longer there."""
        result = await session.execute(
            delete(KeptVolume).where(KeptVolume.name == name, KeptVolume.user_id == user_id)
        )
        if getattr(result, "rowcount", 0) != 1:
            raise VolumeNotFound(missing_message(name))

    @staticmethod
    def record(session: AsyncSession, row: Container, size_mb: int | None) -> None:
        """Remember a deleted container's volume, inside its delete transaction (``size_mb``:
        its image's size, None without quotas)."""
        session.add(
            KeptVolume(
                name=row.volume_name,
                user_id=row.user_id,
                size_mb=size_mb if size_mb is not None else row.disk_mb,
                container_name=row.name,
                container_db_id=row.id,
                engine=row.engine,
            )
        )


def missing_message(name: str) -> str:
    return f"you have no kept volume named {name!r}; GET /api/volumes lists them"
