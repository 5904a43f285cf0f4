"""The async engine and session factory, tuned for each database, with each database's "try later"
failures turned into the API's errors once, here.

SQLite (the embedded default): WAL, and a busy timeout: a write waits up to
``SQLITE_BUSY_TIMEOUT_MS`` (5 s) for a lock another process holds (the admin commands write the
same file; so may an operator's ``sqlite3``), then fails as 503 ``database busy`` with
``Retry-After``. Readers are never blocked by a writer (WAL). A full disk fails a write at once as
507 ``insufficient storage``; SQLite rolls the transaction back, so the file stays intact, and
writes work again as soon as there is space.

PostgreSQL: the same promises. A statement waits at most ``LOCK_TIMEOUT_MS`` (the same 5 s) for a
row or table lock (``lock_timeout``), then fails as 503 ``database busy``, as do a serialization
failure, a deadlock and a server out of connections; a server that cannot be reached (refused,
starting, shutting down, the connection lost) is 503 ``database unavailable``; a full disk
(SQLSTATE 53100) is 507. Pooled connections are checked before use (``pool_pre_ping``), so a
server restart costs the requests made while it is down, not the ones after.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Dialect, ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from backend.errors import DatabaseBusy, DatabaseUnavailable, InsufficientStorage

SQLITE_BUSY_TIMEOUT_MS = 5000
BUSY_TIMEOUT_S = SQLITE_BUSY_TIMEOUT_MS / 1000
LOCK_TIMEOUT_MS = SQLITE_BUSY_TIMEOUT_MS
CONNECT_TIMEOUT_S = 5.0

# SQLite's primary result codes (the low byte of an extended code).
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_FULL = 13

# PostgreSQL's SQLSTATEs that pass by themselves (Appendix A of its manual).
_PG_BUSY = {
    "40001": "a concurrent change conflicted with this one",  # serialization_failure
    "40P01": "a concurrent change deadlocked with this one",  # deadlock_detected
    "55P03": "a lock another session holds did not free up in time",  # lock_not_available
    "53300": "the database server has no connection to spare",  # too_many_connections
    "53200": "the database server is out of memory",  # out_of_memory
}
_PG_UNAVAILABLE = {"57P01", "57P02", "57P03", "08000", "08001", "08003", "08004", "08006"}
_PG_DISK_FULL = "53100"

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


def _postgres_try_later(context: ExceptionContext) -> None:
    """PostgreSQL's failures that pass by themselves as the API's errors (see the module's
    docstring); every other failure stays as it is."""
    original = context.original_exception
    if not isinstance(original, Exception):
        return  # a cancelled task (CancelledError) must end cancelled, not as an API error
    state = getattr(original, "sqlstate", None)
    if state in _PG_BUSY:
        raise DatabaseBusy(f"The database is busy: {_PG_BUSY[state]}; try again.") from original
    if state == _PG_DISK_FULL:
        raise InsufficientStorage() from original
    if state in _PG_UNAVAILABLE or context.is_disconnect:
        raise DatabaseUnavailable() from original


def _postgres_connect(dialect: Dialect, _record: Any, cargs: Any, cparams: Any) -> Any:
    """Connect as the dialect would, but a server that refuses or does not answer within
    ``CONNECT_TIMEOUT_S`` is 503 ``database unavailable`` (asyncpg raises the socket's own
    error, which SQLAlchemy's error events never see)."""
    try:
        return dialect.connect(*cargs, **cparams)
    except OSError as exc:  # refused, unreachable, timed out (TimeoutError is an OSError)
        raise DatabaseUnavailable() from exc


def make_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    """The engine for ``url``. On a server, ``pool_size`` connections are kept open (and as many
    again opened under load); SQLite's pool needs no size."""
    if url.startswith("sqlite"):
        engine = create_async_engine(url)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "handle_error", _sqlite_try_later)
        return engine
    args: dict[str, Any] = {}
    if url.startswith("postgresql+asyncpg"):
        args = {
            "timeout": CONNECT_TIMEOUT_S,
            "server_settings": {"lock_timeout": str(LOCK_TIMEOUT_MS)},
        }
    engine = create_async_engine(
        url, pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size, connect_args=args
    )
    if engine.dialect.name == "postgresql":
        event.listen(engine.sync_engine, "do_connect", _postgres_connect)
        event.listen(engine.sync_engine, "handle_error", _postgres_try_later)
    return engine


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False)
