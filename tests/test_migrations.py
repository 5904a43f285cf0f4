"""Schema migrations: the revisions make exactly the models' schema, and a database written by the
last release without migrations (tests/data/release-0.1.db) is upgraded in place and served.

Every test here is about SQLite files (the release's, WAL, SQLite's foreign keys pragma), so the
``--db postgres`` pass skips them; PostgreSQL's own are in tests/test_postgres.py."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import docker
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from backend.db.engine import make_engine
from backend.db.models import Base
from backend.db.schema import alembic_config, in_migration_transaction, upgrade_schema
from backend.settings import Settings
from corral.client import CorralClient
from devkit.waiting import wait_for
from tests.conftest import serve, sh

DATA = Path(__file__).parent / "data"
RELEASE_DB = DATA / "release-0.1.db"
RELEASE_TOKEN = (DATA / "release-0.1.token").read_text().strip()
RELEASE_PASSWORD = "release-password"  # tests/data/README.md
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()
# Tables made by revisions after the release (0002 engines, 0003 the values replicas share,
# 0005 the rate limits' shared buckets).
SINCE_RELEASE = {"engines", "shared_values", "rate_buckets"}

pytestmark = pytest.mark.sqlite_only(
    "SQLite files: the release's database, WAL, foreign keys (tests/test_postgres.py: PostgreSQL)"
)


def _tables(db: sqlite3.Connection) -> list[str]:
    query = "SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'alembic_version'"
    return sorted(name for (name,) in db.execute(query))


def _rows(path: Path) -> dict[str, list[Any]]:
    with sqlite3.connect(path) as db:
        return {t: list(db.execute(f"SELECT * FROM {t} ORDER BY 1")) for t in _tables(db)}


def _schema(path: Path) -> dict[str, Any]:
    """Every table's columns, indexes and foreign keys as SQLite reports them."""
    with sqlite3.connect(path) as db:
        schema: dict[str, Any] = {}
        for table in _tables(db):
            indexes = {
                row[1]: (row[2], row[4], [c[2] for c in db.execute(f"PRAGMA index_info({row[1]})")])
                for row in db.execute(f"PRAGMA index_list({table})")
            }
            schema[table] = {
                "columns": list(db.execute(f"PRAGMA table_info({table})")),
                "indexes": indexes,
                "foreign_keys": list(db.execute(f"PRAGMA foreign_key_list({table})")),
            }
        where = dict(db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'"))
        schema["partial index"] = where.get("ix_users_username_registered")
    return schema


def _revision(path: Path) -> str | None:
    with sqlite3.connect(path) as db:
        return str(db.execute("SELECT version_num FROM alembic_version").fetchone()[0])


async def _migrate(url: str) -> list[Any]:
    """Upgrade the database at ``url``; what autogenerate still finds different from the models."""
    engine = make_engine(url)
    try:
        await upgrade_schema(engine)
        await upgrade_schema(engine)  # at head already: nothing to do, nothing fails

        def differences(connection: Connection) -> list[Any]:
            return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))

        async with engine.connect() as connection:
            return await connection.run_sync(differences)
    finally:
        await engine.dispose()


async def test_the_migrations_make_the_schema_of_the_models_and_of_the_release(
    tmp_path: Path,
) -> None:
    fresh = tmp_path / "fresh.db"
    assert await _migrate(f"sqlite+aiosqlite:///{fresh}") == []
    assert _revision(fresh) == HEAD
    # The same tables, columns, indexes and keys as the database the last release made itself,
    # once upgraded by the revisions since (0002: each container's and kept volume's engine and
    # the engines table; 0003: the values replicas share).
    release = tmp_path / "release.db"
    shutil.copy(RELEASE_DB, release)
    assert await _migrate(f"sqlite+aiosqlite:///{release}") == []
    assert _schema(fresh) == _schema(release)
    assert set(_schema(fresh)) >= SINCE_RELEASE
    before, after = _schema(RELEASE_DB), _schema(fresh)
    for table in ("containers", "kept_volumes"):
        added = [c[1:5] for c in after[table]["columns"] if c not in before[table]["columns"]]
        assert added == [("engine", "VARCHAR(32)", 1, "'local'")]


async def test_the_release_database_is_upgraded_in_place_with_its_rows(tmp_path: Path) -> None:
    copy = tmp_path / "corral.db"
    shutil.copy(RELEASE_DB, copy)
    with sqlite3.connect(copy) as db:
        assert not list(db.execute("SELECT 1 FROM sqlite_master WHERE name = 'alembic_version'"))
    before = _rows(copy)
    assert await _migrate(f"sqlite+aiosqlite:///{copy}") == []
    assert _revision(copy) == HEAD
    after = _rows(copy)
    # Every row as it was; containers and kept volumes now say they are on the engine "local".
    for table in ("containers", "kept_volumes"):
        assert after[table] == [(*row, "local") for row in before[table]]
    assert {table: after.pop(table) for table in SINCE_RELEASE} == {
        "engines": [],
        "shared_values": [],
        "rate_buckets": [],
    }
    assert {t: r for t, r in after.items() if t not in ("containers", "kept_volumes")} == {
        t: r for t, r in before.items() if t not in ("containers", "kept_volumes")
    }
    assert len(before["users"]) == 3 and len(before["containers"]) == 2
    assert len(before["events"]) > 0 and len(before["kept_volumes"]) == 1


async def test_the_release_database_serves_its_users_and_containers(
    settings: Settings, docker_client: docker.DockerClient
) -> None:
    settings.data_dir.mkdir(parents=True)
    shutil.copy(RELEASE_DB, settings.database_path)
    async with serve(settings) as api, CorralClient(api.url, RELEASE_TOKEN) as ada:
        assert _revision(settings.database_path) == HEAD
        me = await ada.me()  # the API token issued by the release
        assert (me["user"]["username"], me["user"]["tier"]) == ("ada", "free")
        listed = {c["name"]: c for c in (await ada.list_containers())["containers"]}
        assert set(listed) == {"notes", "busy"}
        notes = listed["notes"]
        # As the release left it, or already reconciled: this host's engine never had it.
        assert notes["status"] in ("stopped", "missing") and notes["resources"]["memory_mb"] == 256
        assert notes["labels"] == {"project": "release"}
        # Both name containers this engine does not have: the start's reconciliation says so.
        for gone in (listed["busy"]["db_id"], notes["db_id"]):
            await wait_for(lambda g=gone: _has_status(ada, g, "missing"), what="marked missing")
        kept = (await ada.volumes())["volumes"]
        assert [v["container_name"] for v in kept] == ["gone"]

        started = await ada.start_container(notes["db_id"])  # rebuilt on its recorded volume
        assert started["status"] == "running", started
        code, out = sh(docker_client, started["id"], "echo $EDITOR")
        assert (code, out.strip()) == (0, "vi")

        async with CorralClient(api.url) as root:
            await root.login("root", RELEASE_PASSWORD)
            everyone = (await root.list_containers(all_users=True))["containers"]
            assert {c["name"] for c in everyone} == {"notes", "busy"}
        await ada.delete_container(notes["db_id"])


async def _has_status(client: CorralClient, db_id: str, status: str) -> bool:
    return (await client.get_container(db_id))["status"] == status


async def test_two_processes_starting_together_migrate_once(tmp_path: Path) -> None:
    """The others wait for the first's write lock, then find the schema at head. (The database
    file exists, in WAL mode: two connections making a new file at once can still collide when
    they switch it to WAL, before any migration.)"""
    path = tmp_path / "corral.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
    url = f"sqlite+aiosqlite:///{path}"
    engines = [make_engine(url) for _ in range(4)]
    try:
        await asyncio.gather(*(upgrade_schema(engine) for engine in engines))
    finally:
        for engine in engines:
            await engine.dispose()
    assert _revision(path) == HEAD


async def test_a_failed_migration_changes_nothing(tmp_path: Path) -> None:
    """Every migration runs in one transaction, DDL included, and the connection goes back to
    the pool with foreign keys enforced again."""
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'corral.db'}")

    def half_done(connection: Connection) -> None:
        connection.exec_driver_sql("CREATE TABLE half (id INTEGER)")
        raise RuntimeError("a migration that fails half-way")

    try:
        with pytest.raises(RuntimeError, match="half-way"):
            await in_migration_transaction(engine, half_done)
        async with engine.connect() as connection:
            tables = await connection.exec_driver_sql("SELECT name FROM sqlite_master")
            assert tables.all() == []
            enforced = await connection.exec_driver_sql("PRAGMA foreign_keys")
            assert enforced.scalar_one() == 1
    finally:
        await engine.dispose()
