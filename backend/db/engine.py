"""The async engine and session factory, with SQLite tuned for a server (WAL, busy timeout)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, event, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from backend.db.models import Base

SQLITE_BUSY_TIMEOUT_MS = 5000


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> AsyncEngine:
    engine = create_async_engine(url, pool_pre_ping=not url.startswith("sqlite"))
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False)


# Columns added after a table was first released: ``create_all`` makes missing tables only, so a
# database made by an older version gets these with ALTER TABLE (additive, with defaults).
ADDED_COLUMNS: dict[str, dict[str, str]] = {
    "containers": {
        "role_state": "VARCHAR(16) NOT NULL DEFAULT 'none'",
        "role_error": "VARCHAR(1024)",
        "volume": "VARCHAR(128)",
    },
}
# What an added column holds for the rows that existed before it (a SQL expression).
BACKFILLS: dict[tuple[str, str], str] = {
    # Volumes were named from the container's ID before rows recorded it.
    ("containers", "volume"): "'corral-vol-' || id",
}


def _add_missing_columns(conn: Connection) -> None:
    inspector = inspect(conn)
    for table, columns in ADDED_COLUMNS.items():
        present = {column["name"] for column in inspector.get_columns(table)}
        for name, ddl in columns.items():
            if name not in present:
                conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {ddl}"))
                backfill = BACKFILLS.get((table, name))
                if backfill is not None:
                    conn.execute(text(f"UPDATE {table} SET {name} = {backfill}"))


async def create_schema(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        await conn.run_sync(_add_missing_columns)
