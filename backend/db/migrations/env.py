"""Alembic's environment: the migrations run on the connection ``backend.db.schema`` hands over
(at every start), or, from the ``alembic`` command line, on the database of the current settings.

``render_as_batch`` makes autogenerate write column changes as batch operations, which SQLite
needs (it cannot alter most of a column in place) and other databases run as plain ALTERs. The
connection is always inside one transaction (``in_migration_transaction``), DDL included.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection

from backend.db.models import Base


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _on_the_configured_database() -> None:
    from backend.db.engine import make_engine
    from backend.db.schema import in_migration_transaction
    from backend.settings import load_settings

    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    try:
        await in_migration_transaction(engine, run_migrations)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: run them on a database")
shared = context.config.attributes.get("connection")
if shared is not None:
    run_migrations(shared)
else:
    asyncio.run(_on_the_configured_database())
