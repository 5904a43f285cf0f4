"""The backend SIGKILLed with 50 open event WebSockets while changes are being made, then started
again on the same data directory: every client resumes with ``?since=`` (and so does one per user
that had left before the kill) and sees every event the server committed, before the kill and
after, exactly once and in order; the database and Docker agree and the data written before is
still there."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import aiohttp
import docker
import pytest
from sqlalchemy import func, select

from backend.admin import Admin
from backend.db.models import EventRecord
from backend.settings import Settings, load_settings
from corral.client import CorralClient, EventConnection, StreamClosed, TransportError
from devkit.backend_process import BackendProcess
from devkit.waiting import wait_for
from tests.agreement import assert_agreement, check_agreement
from tests.conftest import sh, signer_for
from tests.databases import read

USERS = 5
STREAMS_PER_USER = 10  # 50 in all, open when the backend is killed
LEAVES_AFTER = 3  # and one more per user that leaves after this many events, before the kill
GONE = (StreamClosed, TransportError, aiohttp.ClientError, ConnectionError)


@dataclass
class Follower:
    """One event WebSocket's client: the position its list reflected and every seq since."""

    client: CorralClient
    user_id: str
    leaves_after: int | None = None
    position: int = 0
    seen: list[int] = field(default_factory=list)

    @property
    def last(self) -> int:
        return self.seen[-1] if self.seen else self.position

    async def follow(self, conn: EventConnection) -> None:
        """Record every event until the connection goes (the server was killed)."""
        try:
            while True:
                message = await conn.receive()
                if message["type"] == "list":
                    self.position = int(message["seq"])
                elif message["type"] != "pong":
                    self.seen.append(int(message["seq"]))
                if self.leaves_after is not None and len(self.seen) >= self.leaves_after:
                    return  # a client that went away on its own
        except GONE:
            return
        finally:
            await conn.close()

    async def catch_up(self, until: int) -> None:
        """Reconnect with ``since`` and read up to ``until``, then make sure nothing follows
        (a pong is queued behind any event still waiting)."""
        conn = await self.client.connect_events(since=self.last)
        try:
            while self.last < until:
                message = await conn.receive()
                assert message["type"] not in ("list", "pong"), message
                self.seen.append(int(message["seq"]))
            await conn.ping()
            assert (await conn.receive())["type"] == "pong"
        finally:
            await conn.close()


@pytest.fixture
def backend(settings: Settings, instance: str) -> Iterator[BackendProcess]:
    """A ``corral serve`` process on the ``settings`` fixture's data directory and instance
    (whose teardown removes the containers and unmounts the volumes left behind)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    (settings.data_dir / "config.toml").write_text("stop_timeout_s = 2\n")
    proc = BackendProcess(settings.data_dir, instance)
    yield proc
    proc.kill()


def last_seqs(database_url: str) -> dict[str, int]:
    query = select(EventRecord.user_id, func.max(EventRecord.seq)).group_by(EventRecord.user_id)
    return {str(user): int(seq) for user, seq in read(database_url, query)}


async def _users(settings: Settings) -> list[tuple[str, str]]:
    """USERS registered users, each with a session token: (user ID, token)."""
    signer = signer_for(settings)
    async with Admin(load_settings(data_dir=settings.data_dir)) as admin:
        users = [await admin.add_user(f"u{i}", None, "free", False) for i in range(USERS)]
    return [(u.id, signer.issue(u, timedelta(hours=1)).token) for u in users]


async def _flip(url: str, token: str, db_id: str, again: Callable[[], bool]) -> None:
    """Stop and start one sandbox while ``again()``, or until the server is gone."""
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(base_url=url, headers=headers) as http:
        while again():
            for action in ("stop", "start"):
                try:
                    async with http.post(f"/api/containers/{db_id}/{action}") as resp:
                        assert resp.status == 200, await resp.json()
                except aiohttp.ClientError:
                    return


def once() -> Callable[[], bool]:
    """``again`` for a single round."""
    rounds = iter((True,))
    return lambda: next(rounds, False)


async def _sandboxes(
    url: str, users: list[tuple[str, str]], marker: str, client: docker.DockerClient
) -> list[dict[str, Any]]:
    """A running sandbox for each user, with ``marker`` in a file of its /home/user."""
    made = []
    for _, token in users:
        async with CorralClient(url, token) as corral:
            sandbox = dict(await corral.create_container("corral/busybox", wait=True))
        assert sh(client, sandbox["id"], f"echo {marker} > /home/user/marker")[0] == 0
        made.append(sandbox)
    return made


async def _kill_mid_changes(
    backend: BackendProcess,
    followers: list[Follower],
    users: list[tuple[str, str]],
    sandboxes: list[dict[str, Any]],
) -> None:
    """Every follower connected; sandboxes stopped and started; the backend SIGKILLed as soon
    as one stream has 8 events (the others are still being sent theirs)."""
    conns = [await f.client.connect_events() for f in followers]
    readers = [asyncio.create_task(f.follow(c)) for f, c in zip(followers, conns, strict=True)]
    await wait_for(lambda: all(f.position for f in followers), 10, what="every list")
    killed = asyncio.Event()
    flips = [
        asyncio.create_task(_flip(backend.url, token, made["db_id"], lambda: not killed.is_set()))
        for (_, token), made in zip(users, sandboxes, strict=True)
    ]
    await wait_for(
        lambda: any(len(f.seen) >= 8 for f in followers),
        30,
        interval_s=0.001,
        what="events before the kill",
    )
    backend.kill()
    killed.set()
    await asyncio.gather(*flips)
    await asyncio.wait_for(asyncio.gather(*readers), 10)


async def test_sigkill_with_fifty_event_streams_misses_nothing(
    backend: BackendProcess,
    settings: Settings,
    docker_client: docker.DockerClient,
    instance: str,
) -> None:
    database = settings.resolved_database_url
    users = await _users(settings)
    await asyncio.to_thread(backend.start)
    marker = uuid.uuid4().hex
    sandboxes = await _sandboxes(backend.url, users, marker, docker_client)
    followers = [
        Follower(CorralClient(backend.url, token), user_id, leaves)
        for user_id, token in users
        for leaves in [None] * STREAMS_PER_USER + [LEAVES_AFTER]
    ]
    try:
        await _kill_mid_changes(backend, followers, users, sandboxes)
        # Started again on the same data directory; more changes; then every client resumes.
        await asyncio.to_thread(backend.start)
        for (_, token), made in zip(users, sandboxes, strict=True):
            await _flip(backend.url, token, made["db_id"], once())
        # The database and Docker agree (the restart's reconcile is done): nothing else moves.
        await wait_for(
            lambda: not check_agreement(database, docker_client, instance),
            20,
            what="the database and Docker to agree",
        )
        final = last_seqs(database)
        await asyncio.gather(*(f.catch_up(final[f.user_id]) for f in followers))
    finally:
        for f in followers:
            await f.client.close()

    for f in followers:
        assert f.seen == list(range(f.position + 1, final[f.user_id] + 1)), f.user_id
    assert_agreement(database, docker_client, instance)
    for (_, token), made in zip(users, sandboxes, strict=True):
        async with CorralClient(backend.url, token) as corral:
            started = await corral.start_container(made["db_id"])
        assert sh(docker_client, started["id"], "cat /home/user/marker") == (0, f"{marker}\n")
