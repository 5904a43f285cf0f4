"""SQLite locked by another process for 10 s (a second process holding ``BEGIN EXCLUSIVE``).

Reads go on (WAL: readers are not blocked by a writer). Writes wait up to the busy timeout and
then fail cleanly: 503 ``database busy`` with ``Retry-After``, never a 500 "database is locked".
A change already made on Docker when its write failed is recorded once the lock goes (the
watcher retries its sync), so the database and Docker agree afterwards; nothing is lost.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import uuid
from dataclasses import dataclass
from typing import Any

import docker
import pytest

from backend.settings import Settings
from backend.state import ENGINES
from devkit.waiting import wait_for
from tests.agreement import assert_agreement, check_agreement
from tests.conftest import Api, sh

LOCK_S = 10.0
BUSYBOX = {"image": "corral/busybox"}

# The other process: takes SQLite's exclusive lock, says so, holds it for the fault's length.
LOCKER = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))  # the fault itself: the lock is held this long
conn.execute("COMMIT")
"""

pytestmark = pytest.mark.sqlite_only(
    "SQLite's file lock held by another process (busy timeout, WAL readers); "
    "PostgreSQL's lock timeout -> 503 is in tests/test_postgres.py"
)


@dataclass
class Answer:
    what: str
    status: int
    body: dict[str, Any]
    retry_after: str | None
    while_locked: bool  # answered while the other process still held the lock


async def _call(
    api: Api, locker: subprocess.Popen[str], what: str, method: str, url: str, **kw: Any
) -> Answer:
    resp = await api.client.request(method, url, **kw)
    body = await resp.json()
    locked = locker.poll() is None
    return Answer(what, resp.status, body, resp.headers.get("Retry-After"), locked)


def _hold_lock(database: Any) -> subprocess.Popen[str]:
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(database), str(LOCK_S)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert locker.stdout is not None
    assert locker.stdout.readline().strip() == "locked"
    return locker


async def test_database_locked_for_ten_seconds(
    api: Api, settings: Settings, docker_client: docker.DockerClient, instance: str
) -> None:
    _, headers = await api.user(tier="test")
    token = await api.client.post("/api/tokens", json={"name": "ci"}, headers=headers)
    api_token = {"Authorization": f"Bearer {(await token.json())['token']}"}
    made = [await api.create(headers, name=f"s{i}") for i in range(2)]
    marker = uuid.uuid4().hex
    for m in made:
        assert sh(docker_client, m["id"], f"echo {marker} > /home/user/marker")[0] == 0
    await wait_for(api.app[ENGINES].first.watch.current.connected.is_set, 10, what="the watcher")
    database = settings.database_path
    db_url = settings.resolved_database_url

    locker = await asyncio.to_thread(_hold_lock, database)
    try:
        # Stopped outside Corral: the watcher's sync of the row waits out the busy timeout and
        # fails, so only a retry can record it.
        docker_client.containers.get(made[1]["id"]).stop(timeout=1)
        # A stop through the API: Docker stops the sandbox, then its row cannot be written.
        url = f"/api/containers/{made[0]['db_id']}/stop"
        stop = await _call(api, locker, "stop", "POST", url, headers=headers)
        assert (stop.status, stop.body["error"], stop.retry_after) == (503, "database busy", "2")
        assert stop.while_locked
        assert check_agreement(db_url, docker_client, instance)  # Docker moved on alone

        one = f"/api/containers/{made[1]['db_id']}"
        answers = await asyncio.gather(
            _call(api, locker, "list", "GET", "/api/containers", headers=headers),
            _call(api, locker, "get", "GET", one, headers=headers),
            _call(api, locker, "list (API token)", "GET", "/api/containers", headers=api_token),
            _call(api, locker, "create", "POST", "/api/containers", json=BUSYBOX, headers=headers),
            _call(api, locker, "guest", "POST", "/api/auth/guest", json={"username": "visitor"}),
        )
    finally:
        await asyncio.to_thread(locker.wait, LOCK_S + 10)
    reads, token_read, writes = answers[:2], answers[2], answers[3:]
    for a in reads:  # readers are not blocked by another process's write lock (WAL)
        assert a.status == 200 and a.while_locked, a
    # An API token's use is stamped (a write): the read waits for it at most the busy timeout,
    # then goes on without it.
    assert token_read.status == 200, token_read
    for a in writes:  # a write waits, then answers, or says clearly to come back
        assert a.status < 300 or (a.status, a.body["error"], a.retry_after) == (
            503,
            "database busy",
            "2",
        ), a

    # Once the lock is gone the row catches up with Docker by itself (the watcher's retry),
    # and writes work again.
    await wait_for(
        lambda: not check_agreement(db_url, docker_client, instance),
        15,
        what="the database and Docker to agree",
    )
    await _works_again(api, headers, made, marker, docker_client)
    assert_agreement(db_url, docker_client, instance)
    assert _integrity(database) == "ok"


async def _works_again(
    api: Api,
    headers: dict[str, str],
    made: list[dict[str, Any]],
    marker: str,
    client: docker.DockerClient,
) -> None:
    guest = await api.client.post("/api/auth/guest", json={"username": "visitor"})
    assert guest.status == 200, await guest.json()
    created = await api.create(headers)
    resp = await api.client.delete(f"/api/containers/{created['db_id']}", headers=headers)
    assert resp.status == 200, await resp.json()
    for m in made:
        resp = await api.client.post(f"/api/containers/{m['db_id']}/start", headers=headers)
        body = await resp.json()
        assert resp.status == 200, body
        assert sh(client, body["id"], "cat /home/user/marker") == (0, f"{marker}\n")


def _integrity(database: Any) -> str:
    with sqlite3.connect(database) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
