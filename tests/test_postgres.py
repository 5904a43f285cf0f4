"""PostgreSQL's own faults and schema, run on ``--db postgres`` (skipped on SQLite, whose
equivalents are tests/test_migrations.py and tests/faults/test_database_locked.py).

- the migrations make the models' schema on an empty database, and go back to nothing and up
  again; one that fails half-way changes nothing (PostgreSQL's DDL is transactional);
- a row lock held by another session past the lock timeout: writes answer 503 ``database busy``
  with ``Retry-After``, reads go on, and writes work again once it is released;
- the server gone (a proxy in front of it closed, connections cut): 503 ``database unavailable``
  and /health says ``"database": "unavailable"``; back again, the same backend answers without a
  restart (pooled connections are checked before use);
- the database's disk full (its tablespace on a small filesystem, filled): a write answers 507
  ``insufficient storage`` (SQLSTATE 53100), reads go on, and writes work again once there is
  space, without a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import pwd
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
from sqlalchemy.engine import make_url

from backend.db.engine import LOCK_TIMEOUT_MS, make_engine
from backend.db.models import Base
from backend.db.schema import alembic_config, in_migration_transaction, upgrade_schema
from backend.ratelimit import Rate
from backend.settings import Settings
from devkit.postgres import database_of
from devkit.waiting import wait_for
from tests.conftest import serve
from tests.databases import RunDatabases
from tests.faults.test_disk_full import fill


@pytest.fixture
def postgres_url(database_url: str | None) -> str:
    if database_url is None:
        pytest.skip("PostgreSQL's own faults: run with --db postgres")
    return database_url


@pytest.fixture
def empty_database(postgres_url: str, test_databases: RunDatabases) -> Iterator[str]:
    """A database of this run with no tables at all (not copied from the migrated template)."""
    postgres = test_databases.postgres
    url = postgres.create_database(f"{test_databases.tag}_empty_{uuid.uuid4().hex[:12]}")
    yield url
    postgres.drop_database(database_of(url))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def _differences(connection: Connection) -> list[Any]:
    return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))


async def test_the_migrations_make_the_models_schema_and_go_back(empty_database: str) -> None:
    engine = make_engine(empty_database)
    try:
        await upgrade_schema(engine)
        await upgrade_schema(engine)  # at head already: nothing to do, nothing fails
        async with engine.connect() as connection:
            assert await connection.run_sync(_differences) == []
            assert await connection.run_sync(_tables) == {
                *Base.metadata.tables,
                "alembic_version",
            }
            # Event IDs come from one sequence for every user: 64-bit, column and sequence.
            widths = await connection.execute(
                text(
                    "SELECT c.data_type, s.data_type FROM information_schema.columns c, "
                    "information_schema.sequences s WHERE c.table_name = 'events' AND "
                    "c.column_name = 'id' AND s.sequence_name = 'events_id_seq'"
                )
            )
            assert widths.one() == ("bigint", "bigint")
        await in_migration_transaction(
            engine, lambda c: command.downgrade(alembic_config(c), "base")
        )
        async with engine.connect() as connection:
            assert await connection.run_sync(_tables) == {"alembic_version"}
        await upgrade_schema(engine)
        async with engine.connect() as connection:
            assert await connection.run_sync(_differences) == []
    finally:
        await engine.dispose()


async def test_a_failed_migration_changes_nothing(empty_database: str) -> None:
    engine = make_engine(empty_database)

    def half_done(connection: Connection) -> None:
        connection.exec_driver_sql("CREATE TABLE half (id INTEGER)")
        raise RuntimeError("a migration that fails half-way")

    try:
        with pytest.raises(RuntimeError, match="half-way"):
            await in_migration_transaction(engine, half_done)
        async with engine.connect() as connection:
            assert await connection.run_sync(_tables) == set()
    finally:
        await engine.dispose()


async def _connect(url: str) -> asyncpg.Connection:
    parsed = make_url(url)
    return await asyncpg.connect(
        host=parsed.host, port=parsed.port, user=parsed.username, database=parsed.database
    )


async def _answer(api: Any, method: str, url: str, **kw: Any) -> tuple[int, str | None, str | None]:
    resp = await api.client.request(method, url, **kw)
    body = await resp.json()
    return resp.status, body.get("error"), resp.headers.get("Retry-After")


async def test_a_lock_held_past_the_lock_timeout_is_503_database_busy(
    settings: Settings, postgres_url: str
) -> None:
    async with serve(settings) as api:
        _, headers = await api.user(tier="test")
        other = await _connect(postgres_url)
        try:
            transaction = other.transaction()
            await transaction.start()
            # Another session (an operator's psql, a migration) keeps every write off the users
            # table; reads may go on.
            await other.execute("LOCK TABLE users IN EXCLUSIVE MODE")
            t0 = time.monotonic()
            guest = await _answer(api, "POST", "/api/auth/guest", json={"username": "visitor"})
            waited = time.monotonic() - t0
            assert guest == (503, "database busy", "2")
            assert waited >= LOCK_TIMEOUT_MS / 1000 * 0.9
            assert (await _answer(api, "GET", "/api/me", headers=headers))[0] == 200
            await transaction.rollback()
        finally:
            await other.close()
        guest = await _answer(api, "POST", "/api/auth/guest", json={"username": "visitor"})
        assert guest[0] == 200


class Proxy:
    """A TCP proxy in front of the database server: closing it is the server going away (new
    connections refused, open ones cut) without stopping the cluster other tests share."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._pipes):
            writer.transport.abort()
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._pipes |= {writer, up_writer}
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for end in (writer, up_writer):
                self._pipes.discard(end)
                end.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()


@contextlib.asynccontextmanager
async def _proxied(url: str) -> AsyncIterator[tuple[Proxy, str]]:
    parsed = make_url(url)
    proxy = Proxy(str(parsed.host), int(parsed.port or 5432))
    await proxy.open()
    try:
        yield proxy, parsed.set(port=proxy.port).render_as_string(hide_password=False)
    finally:
        with contextlib.suppress(AssertionError):
            await proxy.close()


async def _health(api: Any) -> tuple[int, str]:
    resp = await api.client.get("/health")
    return resp.status, (await resp.json())["database"]


async def test_the_server_gone_is_503_and_health_says_so_then_it_comes_back(
    settings: Settings, postgres_url: str
) -> None:
    async with (
        _proxied(postgres_url) as (proxy, through),
        serve(settings.with_overrides(database_url=through)) as api,
    ):
        _, headers = await api.user(tier="test")
        assert (await _answer(api, "GET", "/api/containers", headers=headers))[0] == 200
        assert (await _health(api))[1] == "ok"

        await proxy.close()
        write = await _answer(api, "POST", "/api/auth/guest", json={"username": "later"})
        assert write == (503, "database unavailable", "5")
        status, database = await _health(api)
        assert (status, database) == (503, "unavailable")

        await proxy.open()  # on the same port
        await wait_for(
            lambda: _guest_signs_in(api), 10, what="the backend to reach the database again"
        )
        assert (await _health(api))[1] == "ok"


async def _guest_signs_in(api: Any) -> bool:
    status, _, _ = await _answer(api, "POST", "/api/auth/guest", json={"username": "back"})
    return status == 200


TABLESPACE_MB = 8


@pytest.fixture
def database_on_a_small_disk(postgres_url: str, test_databases: RunDatabases) -> Iterator[str]:
    """A copy of the template in a tablespace of its own on a TABLESPACE_MB filesystem (tmpfs,
    owned by the cluster's user, in a folder it can reach); its URL. Afterwards the database,
    the tablespace and the mount are gone, whatever happened."""
    postgres = test_databases.postgres
    folder = Path(tempfile.mkdtemp(prefix="corral-pg-disk-", dir="/var/tmp"))
    folder.chmod(0o755)
    owner = pwd.getpwnam("postgres")
    options = f"size={TABLESPACE_MB}m,mode=0700,uid={owner.pw_uid},gid={owner.pw_gid}"
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "corral-test", str(folder)], check=True)
    space = f"{test_databases.tag}_small"
    name = f"{test_databases.tag}_full_disk"
    try:
        postgres.sql(f"create tablespace {space} location '{folder}'")
        postgres.sql(
            f"create database {name} template {test_databases.template} tablespace {space}"
        )
        yield postgres.url_for(name)
    finally:
        postgres.drop_database(name)
        with contextlib.suppress(Exception):
            postgres.sql(f"drop tablespace if exists {space}")
        subprocess.run(["umount", "-l", str(folder)], check=False)
        folder.rmdir()


async def test_the_database_disk_full_is_507_and_passes(
    settings: Settings, database_on_a_small_disk: str
) -> None:
    folder = _tablespace_folder(database_on_a_small_disk)
    unlimited = {"guest_signin_rate": Rate(0, 60.0), "max_guest_sessions": 100_000}
    on_small = settings.with_overrides(database_url=database_on_a_small_disk, **unlimited)
    async with serve(on_small) as api:
        _, headers = await api.user(tier="test")
        filler = fill(folder)
        try:
            # Rows go on filling the pages the tables already have: a few tries find the wall.
            answers = []
            for i in range(2000):
                answer = await _answer(api, "POST", "/api/auth/guest", json={"username": f"g{i}"})
                answers.append(answer[:2])
                if answer[0] != 200:
                    break
            assert answers[-1] == (507, "insufficient storage"), answers[-3:]
            assert (await _answer(api, "GET", "/api/me", headers=headers))[0] == 200
        finally:
            filler.unlink()
        again = await _answer(api, "POST", "/api/auth/guest", json={"username": "later"})
        assert again[:2] == (200, None)


def _tablespace_folder(url: str) -> Path:
    """The mount under the database's tablespace (the folder the fixture made)."""
    mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    points = [line.split()[4] for line in mounts if "corral-pg-disk-" in line.split()[4]]
    (point,) = [p for p in points if Path(p).exists()]
    return Path(point)
