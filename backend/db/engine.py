"""The async engine and session factory, with SQLite tuned for a server (WAL, busy timeout), and
SQLite's "try later" failures turned into the API's errors once, here.

Busy timeout: a write waits up to ``SQLITE_BUSY_TIMEOUT_MS`` (5 s) for a lock another process
holds (the admin commands write the same file; so may an operator's ``sqlite3``), then fails
as 503 ``database busy`` with ``Retry-After``. Readers are never blocked by a writer (WAL). A
full disk fails a write at once as 507 ``insufficient storage``; SQLite rolls the transaction
back, so the file stays intact, and writes work again as soon as there is space.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from backend.errors import DatabaseBusy, InsufficientStorage

SQLITE_BUSY_TIMEOUT_MS = 5000
BUSY_TIMEOUT_S = SQLITE_BUSY_TIMEOUT_MS / 1000

# SQLite's primary result codes (the low byte of an extended code).
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_FULL = 13

# aiosqlite logs every statement with its parameters at DEBUG: a container's environment (it may
# hold secrets), token hashes. Never wanted in Corral's log, whatever level the log is at.
logging.getLogger("aiosqlite").setLevel(logging.INFO)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_try_later(context: ExceptionContext) -> None:
    """Raise the API's error for a lock held past the busy timeout or a full disk; leave every
    other failure as it is (a bug stays a 500 with its traceback in the log)."""
    original = context.original_exception
    if not isinstance(original, sqlite3.Error):
        return
    code = getattr(original, "sqlite_errorcode", 0) & 0xFF
    if code in (_SQLITE_BUSY, _SQLITE_LOCKED):
        raise DatabaseBusy() from original
    if code == _SQLITE_FULL:
        raise InsufficientStorage() from original


def make_engine(url: str) -> AsyncEngine:
    engine = create_async_engine(url, pool_pre_ping=not url.startswith("sqlite"))
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "handle_error", _sqlite_try_later)
    return engine


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False)
