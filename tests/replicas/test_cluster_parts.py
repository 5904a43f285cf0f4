"""The cluster's parts on the throwaway PostgreSQL, two "replicas" in one process (each with its
own engine and connections, which is all PostgreSQL sees of a process): the event log written by
both, advisory locks, leadership, and the values they share."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from backend.cluster import AdvisoryLocks, Leadership, asyncpg_dsn
from backend.cluster.leader import Work
from backend.cluster.shared import instance_id, signing_key
from backend.db.engine import make_engine, make_sessionmaker
from backend.db.schema import upgrade_schema
from backend.events.log import Event, EventLog
from backend.settings import load_settings
from corral.shapes import EventType
from devkit.postgres import Postgres, database_of
from devkit.waiting import wait_for


@pytest.fixture
async def database() -> AsyncIterator[str]:
    postgres = Postgres.ensure()
    url = postgres.create_database()
    engine = make_engine(url)
    try:
        await upgrade_schema(engine)
    finally:
        await engine.dispose()
    yield url
    postgres.drop_database(database_of(url))


async def _engines(stack: AsyncExitStack, url: str, count: int) -> list[AsyncEngine]:
    engines = [make_engine(url) for _ in range(count)]
    for engine in engines:
        stack.push_async_callback(engine.dispose)
    return engines


async def test_two_logs_on_one_database_number_and_deliver_every_event_once_in_order(
    database: str,
) -> None:
    async with AsyncExitStack() as stack:
        logs = [EventLog(make_sessionmaker(e), 1000) for e in await _engines(stack, database, 2)]
        heard: list[list[Event]] = [[], []]
        for log, got in zip(logs, heard, strict=True):
            feed = log.share()
            await feed.start()
            stack.push_async_callback(feed.close)
            log.add_listener(got.append)

        async def write(log: EventLog, n: int) -> None:
            for i in range(n):
                async with log.transaction() as tx:
                    await tx.add("u1", EventType.CONTAINER_UPDATED, {"n": i})
                    await tx.add("u2", EventType.CONTAINER_UPDATED, {"n": i})

        await asyncio.gather(*(write(log, 25) for log in logs for _ in range(2)))
        for log in logs:  # what the other wrote arrives on a wake (a NOTIFY, here by hand)
            assert log.feed is not None
            await log.feed.catch_up()
        for got in heard:
            assert [e.id for e in got] == sorted({e.id for e in got})  # once each, row order
            for user in ("u1", "u2"):
                assert [e.seq for e in got if e.user_id == user] == list(range(1, 101))
        assert [e.id for e in heard[0]] == [e.id for e in heard[1]]
        assert await logs[0].last_seq("u1") == await logs[1].last_seq("u1") == 100


async def test_an_advisory_lock_held_by_one_process_holds_off_another(database: str) -> None:
    dsn = asyncpg_dsn(database)
    first, second = AdvisoryLocks(dsn), AdvisoryLocks(dsn)
    try:
        async with first.hold("corral:container:x"):
            waiter = asyncio.create_task(_hold_once(second, "corral:container:x"))
            postgres = Postgres.ensure()

            def waiting() -> bool:
                query = "select count(*) from pg_locks where locktype = 'advisory' and not granted"
                return postgres.sql(query, database_of(database)) == "1"

            await wait_for(waiting, 10, what="the second holder to wait")
            assert not waiter.done()
            async with second.hold("corral:container:y"):  # another key is free
                pass
        await asyncio.wait_for(waiter, 10)
    finally:
        await first.close()
        await second.close()


async def _hold_once(locks: AdvisoryLocks, *names: str) -> None:
    async with locks.hold(*names):
        pass


async def test_several_advisory_locks_are_held_on_one_connection_in_one_order(
    database: str,
) -> None:
    """A reconcile's batch holds 100 row locks at once: on one connection (not one each), and
    in key order, so a holder naming them in another order waits rather than deadlocks."""
    dsn = asyncpg_dsn(database)
    first, second = AdvisoryLocks(dsn), AdvisoryLocks(dsn)
    names = [f"corral:container:{i}" for i in range(100)]
    postgres = Postgres.ensure()

    def advisory(granted: bool, what: str) -> str:
        return postgres.sql(
            f"select {what} from pg_locks where locktype = 'advisory' and "
            f"{'' if granted else 'not '}granted and database = "
            f"(select oid from pg_database where datname = current_database())",
            database_of(database),
        )

    try:
        async with first.hold(*names):
            assert advisory(True, "count(*)") == "100"
            assert advisory(True, "count(distinct pid)") == "1"
            waiter = asyncio.create_task(_hold_once(second, *reversed(names)))
            await wait_for(lambda: advisory(False, "count(*)") == "1", 10, what="a wait")
            assert not waiter.done()
        await asyncio.wait_for(waiter, 10)
        assert advisory(True, "count(*)") == "0"  # all released, the connections kept idle
    finally:
        await first.close()
        await second.close()


async def test_leadership_moves_when_the_leader_goes(database: str) -> None:
    dsn = asyncpg_dsn(database)
    running: list[str] = []

    def work(name: str) -> Work:
        async def lead() -> None:
            running.append(name)
            await asyncio.Event().wait()  # leads until cancelled

        return lead

    one = Leadership(dsn, "watcher:test", work("one"), retry_s=0.2)
    two = Leadership(dsn, "watcher:test", work("two"), retry_s=0.2)
    one.start()
    await wait_for(one.leading.is_set, 10, what="the first to lead")
    two.start()
    try:
        postgres = Postgres.ensure()

        def both_connected() -> bool:
            query = (
                "select count(*) from pg_stat_activity "
                "where application_name like 'corral-leader % watcher:test'"
            )
            return postgres.sql(query) == "2"

        await wait_for(both_connected, 10, what="the second to try")
        assert not two.leading.is_set() and running == ["one"]
        await one.close()  # its connection closes, as a killed process's does
        await wait_for(two.leading.is_set, 10, what="the second to take over")
        assert running == ["one", "two"]
    finally:
        await one.close()
        await two.close()


async def test_an_installation_s_files_are_adopted_and_then_shared(
    database: str, tmp_path: Path
) -> None:
    old = tmp_path / "old"
    old.mkdir()
    (old / "jwt-secret").write_text("ab" * 32)
    (old / "instance-id").write_text("from-file\n")
    async with AsyncExitStack() as stack:
        engine, other = await _engines(stack, database, 2)
        adopted = load_settings(data_dir=old, database_url=database)
        assert await signing_key(adopted, make_sessionmaker(engine)) == bytes.fromhex("ab" * 32)
        assert await instance_id(adopted, make_sessionmaker(engine)) == "from-file"
        joined = load_settings(data_dir=tmp_path / "new", database_url=database)
        assert await signing_key(joined, make_sessionmaker(other)) == bytes.fromhex("ab" * 32)
        assert await instance_id(joined, make_sessionmaker(other)) == "from-file"
        assert (tmp_path / "new" / "instance-id").read_text().strip() == "from-file"
        configured = load_settings(data_dir=tmp_path / "c", jwt_secret="k" * 32)
        assert await signing_key(configured, make_sessionmaker(other)) == b"k" * 32


async def test_replicas_starting_together_on_a_fresh_database_migrate_once() -> None:
    postgres = Postgres.ensure()
    url = postgres.create_database()
    try:
        async with AsyncExitStack() as stack:
            engines = await _engines(stack, url, 3)
            async with asyncio.timeout(30):  # without the migration lock they deadlock
                await asyncio.gather(*(upgrade_schema(engine) for engine in engines))
        assert postgres.sql("select count(*) from shared_values", database_of(url)) == "0"
    finally:
        postgres.drop_database(database_of(url))
