"""The database the suite runs on: ``--db sqlite`` (the default: each test's data directory holds
its own SQLite file, as the embedded backend does) or ``--db postgres`` (also ``CORRAL_TEST_DB``).

With postgres, the session starts the throwaway cluster of ``scripts/postgres.sh``, makes one
template database and migrates it once (``alembic upgrade head``); every test then gets a
database of its own copied from it (``create database ... template ...``: a file copy, no
migration per test), dropped after the test. The copy reaches every backend the test makes the
way an operator's would: ``CORRAL_DATABASE_URL`` is set in the test's environment, so the
``settings`` fixture, tests that call ``load_settings`` themselves, ``corral serve`` processes
(``devkit.backend_process``), the admin commands and the CLI all open the same database. A
session finalizer drops every database the run made, whatever happened.

``@pytest.mark.sqlite_only("why")`` marks a test of something only SQLite has (its lock and
full-disk faults, WAL, the release's database file); on postgres it is skipped with that reason.
``@pytest.mark.no_database`` marks a test that never opens a database (pure units, the console on
the fake API): the postgres pass skips it, since it would only repeat the SQLite pass.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import Executable, NullPool, make_url
from sqlalchemy.ext.asyncio import create_async_engine

from backend.db.engine import make_engine
from backend.db.schema import upgrade_schema
from devkit.postgres import Postgres, database_of

DATABASES = ("sqlite", "postgres")
# Every database a run makes starts with this, then the run's own tag: the finalizer (and anyone
# checking for leftovers) finds them by prefix.
PREFIX = "corral_test_"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        choices=DATABASES,
        default=os.environ.get("CORRAL_TEST_DB") or "sqlite",
        help="the database every database-facing test runs on: sqlite (default) or postgres, the "
        "throwaway cluster of scripts/postgres.sh (also CORRAL_TEST_DB)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "sqlite_only(reason): tests something only SQLite has; skipped on postgres"
    )
    config.addinivalue_line(
        "markers", "no_database: never opens a database; the postgres pass skips it"
    )


def pytest_report_header(config: pytest.Config) -> str:
    return f"database: {config.getoption('--db')}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--db") != "postgres":
        return
    for item in items:
        only = item.get_closest_marker("sqlite_only")
        if only is not None:
            reason = only.args[0] if only.args else "SQLite only"
            item.add_marker(pytest.mark.skip(reason=f"SQLite only: {reason}"))
        elif item.get_closest_marker("no_database") is not None:
            item.add_marker(pytest.mark.skip(reason="opens no database (run on --db sqlite)"))


@dataclass
class RunDatabases:
    """The run's databases on the throwaway cluster: a migrated template and a copy per user."""

    postgres: Postgres
    tag: str = field(default_factory=lambda: f"{PREFIX}{uuid.uuid4().hex[:8]}")

    @property
    def template(self) -> str:
        return f"{self.tag}_template"

    def make_template(self) -> None:
        url = self.postgres.create_database(self.template)
        asyncio.run(_migrate(url))

    def new(self) -> str:
        """A fresh database copied from the template; its URL."""
        return self.postgres.create_database(f"{self.tag}_{uuid.uuid4().hex[:12]}", self.template)

    def drop(self, url: str) -> None:
        self.postgres.drop_database(database_of(url))

    def drop_all(self) -> None:
        for name in self.postgres.database_names(self.tag):
            self.postgres.drop_database(name)


async def _migrate(url: str) -> None:
    engine = make_engine(url)
    try:
        await upgrade_schema(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def test_databases(pytestconfig: pytest.Config) -> Iterator[RunDatabases | None]:
    """The run's PostgreSQL databases, or None on SQLite."""
    if pytestconfig.getoption("--db") != "postgres":
        yield None
        return
    databases = RunDatabases(Postgres.ensure())
    try:
        databases.make_template()
        yield databases
    finally:
        databases.drop_all()


@contextmanager
def database_for(databases: RunDatabases | None) -> Iterator[str | None]:
    """A database of its own for a fixture wider than a test (a module's backend): its URL, or
    None on SQLite. Dropped afterwards."""
    if databases is None:
        yield None
        return
    url = databases.new()
    try:
        yield url
    finally:
        databases.drop(url)


@pytest.fixture(autouse=True)
def database_url(
    test_databases: RunDatabases | None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str | None]:
    """This test's own PostgreSQL database (in ``CORRAL_DATABASE_URL`` for everything the test
    starts), or None on SQLite (each data directory's own file)."""
    if test_databases is None:
        yield None
        return
    url = test_databases.new()
    monkeypatch.setenv("CORRAL_DATABASE_URL", url)
    try:
        yield url
    finally:
        test_databases.drop(url)


def read(url: str, statement: Executable) -> list[tuple[Any, ...]]:
    """The rows of one query on the database at ``url``, from synchronous code or from inside a
    running event loop alike (its own loop, in its own thread), on a connection of its own:
    checks read what the backend wrote, whether it runs in this process, in another or not at
    all. SQLite files are opened read-only."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _read(url, statement)).result()


async def _read(url: str, statement: Executable) -> list[tuple[Any, ...]]:
    parsed = make_url(url)
    args: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        parsed = parsed.set(database=f"file:{parsed.database}?mode=ro", query={"uri": "true"})
        args = {"timeout": 30}
    engine = create_async_engine(parsed, connect_args=args, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            return [tuple(row) for row in (await connection.execute(statement)).all()]
    finally:
        await engine.dispose()
