"""The database's schema brought to this code's: Alembic's migrations (``backend/db/migrations``),
run at every start before anything reads the database.

A database made before migrations existed (no ``alembic_version`` table) is taken over by the
first revision, which makes only what it lacks: see ``versions/0001_initial.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from backend.cluster.keys import MIGRATION, advisory_key

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, without an ini file; ``connection`` is the one to migrate."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


async def upgrade_schema(engine: AsyncEngine) -> None:
    """Run every migration the database has not had, in one transaction."""
    await in_migration_transaction(
        engine, lambda connection: command.upgrade(alembic_config(connection), "head")
    )


async def in_migration_transaction(engine: AsyncEngine, work: Callable[[Connection], None]) -> None:
    """Run ``work`` on one connection, in one transaction, committed when it returns.

    On SQLite: foreign keys are off meanwhile (a batch migration copies a table and drops the
    old one; with them enforced, dropping ``users`` would delete every row that refers to it),
    and the transaction is opened explicitly with ``BEGIN IMMEDIATE``: the driver would open one
    only before DML and run DDL outside it, and a second process starting at the same moment
    waits for this one's write lock instead of migrating alongside. On PostgreSQL an advisory
    lock, held until the commit, does the same for replicas starting together.
    """
    sqlite = engine.dialect.name == "sqlite"
    async with engine.connect() as connection:
        if sqlite:
            await _foreign_keys(connection, "OFF")
        try:
            await connection.run_sync(_in_transaction, work)
            await connection.commit()
        finally:
            await connection.rollback()
            if sqlite:
                await _foreign_keys(connection, "ON")


def _in_transaction(connection: Connection, work: Callable[[Connection], None]) -> None:
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif connection.dialect.name == "postgresql":
        # Replicas starting together: one migrates, the others wait and find nothing to do.
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({advisory_key(MIGRATION)})")
    work(connection)


async def _foreign_keys(connection: AsyncConnection, state: str) -> None:
    """Outside a transaction, where SQLite applies the pragma."""
    await connection.exec_driver_sql(f"PRAGMA foreign_keys={state}")
    await connection.commit()
