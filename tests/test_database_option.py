"""``--db``: every backend a test makes opens the test's database, whichever it is (the
``settings`` fixture's, ``corral serve`` processes', the admin commands'), and no other; and what
SQLite gave by accident is the same on every database."""

from __future__ import annotations

import asyncio
import json
import urllib.request

from sqlalchemy import select

from backend.admin import Admin
from backend.db.models import Container, User, utcnow
from backend.settings import Settings, load_settings
from backend.state import CONTAINERS, SESSIONS, SETTINGS
from devkit.backend_process import BackendProcess
from tests.conftest import Api
from tests.databases import read


def _guest(url: str, username: str) -> int:
    request = urllib.request.Request(
        f"{url}/api/auth/guest",
        data=json.dumps({"username": username}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return int(resp.status)


async def test_every_backend_of_a_test_opens_its_database(
    settings: Settings, database_url: str | None, instance: str
) -> None:
    assert settings.database_url == database_url
    process = BackendProcess(settings.data_dir, instance)
    await asyncio.to_thread(process.start)
    try:
        assert await asyncio.to_thread(_guest, process.url, "from-a-process") == 200
    finally:
        await asyncio.to_thread(process.stop)
    async with Admin(load_settings(data_dir=settings.data_dir)) as admin:
        await admin.add_user("from-an-admin-command", None, "free", False)

    names = {name for (name,) in read(settings.resolved_database_url, select(User.username))}
    assert names == {"from-a-process", "from-an-admin-command"}
    # On a server, nothing was written to a SQLite file beside it.
    assert settings.database_path.exists() == (database_url is None)


async def test_rows_made_in_the_same_millisecond_list_in_id_order(api: Api) -> None:
    """Lists are ordered by creation time, and rows of the same millisecond by ID: not by the
    order they were written, which SQLite gave by accident and PostgreSQL does not."""
    user, headers = await api.user()
    now = utcnow()
    ids = [f"00000000-0000-4000-8000-00000000000{i}" for i in (3, 1, 2)]
    async with api.app[SESSIONS]() as session:
        session.add_all(
            Container(
                id=db_id,
                user_id=user.id,
                name=f"same-{db_id[-1]}",
                image="corral/busybox",
                status="stopped",
                memory_mb=128,
                cpu_shares=500,
                disk_mb=64,
                runtime="runsc",
                created_at=now,
            )
            for db_id in ids
        )
        await session.commit()
    resp = await api.client.get("/api/containers", headers=headers)
    listed = [c["db_id"] for c in (await resp.json())["containers"]]
    assert listed == sorted(ids)


async def test_an_error_longer_than_its_column_is_kept_cut_not_lost(api: Api) -> None:
    """An engine's error text can be longer than the row's ``error`` column: the change is
    written with the text cut to the column (PostgreSQL refused the whole write, SQLite kept it
    whole), through the ORM and through the repository's UPDATE alike."""
    user, _ = await api.user()
    made = Container(
        user_id=user.id,
        name="long-error",
        image="corral/busybox",
        status="error",
        memory_mb=128,
        cpu_shares=500,
        disk_mb=64,
        runtime="runsc",
        error="e" * 5000,
    )
    async with api.app[SESSIONS]() as session:
        session.add(made)
        await session.commit()
    await api.app[CONTAINERS].repository.save(made, role_error="r" * 5000, error="f" * 3000)
    query = select(Container.error, Container.role_error).where(Container.id == made.id)
    ((error, role_error),) = read(api.app[SETTINGS].resolved_database_url, query)
    assert (error, role_error) == ("f" * 1024, "r" * 1024)
