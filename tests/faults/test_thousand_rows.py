"""1,000 sandboxes' rows with the engine restarted under them (the second engine).

20 rows have real sandboxes (made through the API); 980 more are written straight into the
database, naming Docker containers that do not exist. When the engine comes back, the watcher
reconciles every row: the 980 become ``missing``, the 20 say what their sandboxes do, in bounded
time, and the API keeps answering meanwhile (a list answered while the reconcile runs).
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Callable

from sqlalchemy import func, select

from backend.db.models import Container, EventRecord, new_id
from backend.settings import Settings
from backend.state import ENGINES, SESSIONS
from devkit.second_engine import SecondEngine
from devkit.waiting import wait_for
from tests.agreement import assert_agreement, read_rows
from tests.conftest import Api, serve, sh
from tests.databases import read

REAL = 20
ROWS = 1000
USERS = 10
SAMPLE = 5  # real sandboxes given a marker file, started again and read afterwards


def _fake_rows(user_ids: list[str], count: int) -> list[Container]:
    """Rows as the API would have made them, whose containers Docker no longer has."""
    rows = []
    for i in range(count):
        db_id = new_id()
        rows.append(
            Container(
                id=db_id,
                user_id=user_ids[i % len(user_ids)],
                name=f"gone-{i}",
                image="corral/busybox",
                role="barebone",
                status="running" if i % 2 else "stopped",
                docker_id=secrets.token_hex(32),
                memory_mb=128,
                cpu_shares=500,
                disk_mb=64,
                runtime="runsc",
                environment={},
                labels={},
            )
        )
    return rows


def _announced_missing(database_url: str) -> int:
    """How many containers have a container_updated event saying they are missing (the
    engine's coming back is also announced, row by row, with each row's stored status)."""
    query = select(func.count(func.distinct(EventRecord.payload["db_id"].as_string()))).where(
        EventRecord.type == "container_updated",
        EventRecord.payload["status"].as_string() == "missing",
    )
    return int(read(database_url, query)[0][0])


async def _list_while_reconciling(
    api: Api, headers: dict[str, str], done: Callable[[], bool]
) -> list[int]:
    """List the user's containers until the reconcile is done: how many were ``missing`` at
    each answer (every answer a 200)."""
    seen = []
    deadline = time.monotonic() + 60
    while not done():
        assert time.monotonic() < deadline, "the reconcile did not end in 60 s"
        resp = await api.client.get("/api/containers", headers=headers)
        body = await resp.json()
        assert resp.status == 200, body
        seen.append(sum(c["status"] == "missing" for c in body["containers"]))
        await asyncio.sleep(0.1)  # the pace of a client polling, not synchronisation
    return seen


async def test_thousand_rows_reconciled_after_an_engine_restart(
    settings: Settings, second_engine: SecondEngine, instance: str
) -> None:
    # Plain Docker volumes (no ext4 image per sandbox): the 20 real ones are made faster.
    # Health probed every 0.2 s: until a probe sees the engine back, its rows read "unknown",
    # and this test watches them turn "missing" as the watcher reconciles them.
    on_second = settings.with_overrides(
        docker_host=second_engine.host, disk_quotas="none", engine_probe_interval_s=0.2
    )
    database = on_second.resolved_database_url
    client = second_engine.client()
    try:
        async with serve(on_second) as api:
            users = [await api.user(tier="test") for _ in range(USERS)]
            marker = uuid.uuid4().hex
            real = await asyncio.gather(
                *(api.create(users[i % USERS][1], name=f"real-{i}") for i in range(REAL))
            )
            for made in real[:SAMPLE]:
                assert sh(client, made["id"], f"echo {marker} > /home/user/marker")[0] == 0
            async with api.app[SESSIONS]() as session:
                session.add_all(_fake_rows([user.id for user, _ in users], ROWS - REAL))
                await session.commit()
            watcher = api.app[ENGINES].first.watch.current
            await wait_for(watcher.connected.is_set, 10, what="the watcher")

            reconciled = watcher.reconciled
            await asyncio.to_thread(second_engine.restart)
            mine = ROWS // USERS - REAL // USERS  # the first user's rows that name no container
            seen = await _list_while_reconciling(
                api, users[0][1], lambda: watcher.reconciled > reconciled
            )
            # The API answered while the rows were being reconciled, not only before or after.
            assert any(0 < missing < mine for missing in seen), seen

            rows = read_rows(database)
            assert len(rows) == ROWS
            assert sum(r.status == "missing" for r in rows) == ROWS - REAL
            assert _announced_missing(database) == ROWS - REAL  # each change has its event
            assert_agreement(database, client, instance)
            for i, made in enumerate(real[:SAMPLE]):
                resp = await api.client.post(
                    f"/api/containers/{made['db_id']}/start", headers=users[i % USERS][1]
                )
                body = await resp.json()
                assert resp.status == 200, body
                assert sh(client, body["id"], "cat /home/user/marker") == (0, f"{marker}\n")
            assert_agreement(database, client, instance)
    finally:
        client.close()
