"""Drains, in the database (the ``engines`` table) so every backend process sharing it agrees:
a drained engine keeps its sandboxes but takes no new ones."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.db.models import EngineRecord, utcnow


class Drains:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def all(self) -> dict[str, datetime | None]:
        """Each drained engine and when it was drained (undrained ones are absent)."""
        query = select(EngineRecord.name, EngineRecord.drained_at).where(EngineRecord.draining)
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        return {row[0]: row[1] for row in rows}

    async def set(self, name: str, draining: bool) -> datetime | None:
        """Drain (or undrain) ``name``; when it was drained (kept when drained again)."""
        async with self._sessions() as session:
            record = await session.get(EngineRecord, name)
            if record is None:
                record = EngineRecord(name=name, draining=False)
                session.add(record)
            if draining and not record.draining:
                record.drained_at = utcnow()
            elif not draining:
                record.drained_at = None
            record.draining = draining
            drained_at = record.drained_at
            await session.commit()
        return drained_at
