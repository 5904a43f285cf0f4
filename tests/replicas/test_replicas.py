"""Two ``corral serve`` replicas on one PostgreSQL database (tests/replicas/conftest.py): what
one does, the other sees, knows and respects."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import docker
import pytest

from corral.client import CorralClient
from corral.client.errors import ApiError, Unauthorized
from corral.client.events import EventConnection
from devkit.waiting import wait_for
from tests.conftest import BUSYBOX, containers_of, sh
from tests.replicas.conftest import PASSWORD, Replicas

Message = dict[str, Any]


async def _next(conn: EventConnection, timeout_s: float = 15.0) -> Message:
    async with asyncio.timeout(timeout_s):
        return dict(await conn.receive())


async def _until_seq(conn: EventConnection, seq: int) -> list[Message]:
    """Every message up to the one at ``seq``."""
    got: list[Message] = []
    while not got or got[-1]["seq"] < seq:
        got.append(await _next(conn))
    return got


async def _position(client: CorralClient, all_users: bool = False) -> int:
    """The stream's position now (the seq its ``list`` reflects)."""
    conn = await client.connect_events(all_users=all_users)
    try:
        first = await _next(conn)
        assert first["type"] == "list", first
        return int(first["seq"])
    finally:
        await conn.close()


async def test_tokens_and_sessions_issued_through_one_replica_work_on_the_other(
    replicas: Replicas,
) -> None:
    api_token = await replicas.user("ada")
    for replica in replicas.both:
        async with CorralClient(replica.url, api_token) as client:
            assert (await client.me())["user"]["username"] == "ada"
    async with CorralClient(replicas.a.url) as on_a:
        await on_a.login("ada", PASSWORD)  # a session (JWT) signed by A
        made_on_a = await on_a.create_token("made-on-a")
        jwt = on_a.token
    async with CorralClient(replicas.b.url, jwt) as on_b:
        assert (await on_b.me())["user"]["username"] == "ada"
    async with CorralClient(replicas.b.url, made_on_a["token"]) as on_b:
        assert (await on_b.me())["user"]["username"] == "ada"
    # One key for both, kept in the database; each data directory holds a copy of it.
    key = replicas.sql("select value from shared_values where name = 'jwt_secret'")
    assert [(r.data_dir / "jwt-secret").read_text().strip() for r in replicas.both] == [key] * 2


async def test_a_revocation_through_one_replica_ends_the_other_s_streams_and_memory(
    replicas: Replicas,
) -> None:
    await replicas.user("bea")
    async with CorralClient(replicas.a.url) as on_a:
        await on_a.login("bea", PASSWORD)
        issued = await on_a.create_token("short-lived", ["read"])
        async with CorralClient(replicas.b.url, issued["token"]) as on_b:
            await on_b.me()  # B now remembers the token (auth_cache_s, 5 s)
            stream = on_b.events()
            assert (await anext(stream))["type"] == "list"
            await on_a.revoke_token(issued["id"])
            with pytest.raises(Unauthorized):
                async with asyncio.timeout(10):
                    await anext(stream)
            await stream.close()

            async def refused() -> bool:
                try:
                    await on_b.me()
                except Unauthorized:
                    return True
                return False

            # Well inside B's 5 s memory of the token: B was told.
            await wait_for(refused, 2.5, what="B to refuse the token A revoked")


async def test_events_cross_replicas_once_in_order_and_replay_on_either(
    replicas: Replicas,
) -> None:
    token = await replicas.user("cy")
    admin_token = await replicas.user("root", admin=True)
    async with (
        CorralClient(replicas.a.url, token) as on_a,
        CorralClient(replicas.b.url, token) as on_b,
        CorralClient(replicas.b.url, admin_token) as admin_b,
    ):
        streams = {"a": await on_a.connect_events(), "b": await on_b.connect_events()}
        starts = {name: await _next(conn) for name, conn in streams.items()}
        everyone = await admin_b.connect_events(all_users=True)
        everyone_start = int((await _next(everyone))["seq"])
        start = int(starts["a"]["seq"])
        assert starts["b"]["seq"] == start

        made = await on_a.create_container(BUSYBOX, wait=True)
        await on_b.stop_container(made["id"])
        await on_a.start_container(made["id"])
        await on_b.update_settings(made["id"], name="renamed")
        last = await _position(on_b)
        assert last > start + 3

        seen = {name: await _until_seq(conn, last) for name, conn in streams.items()}
        expected = list(range(start + 1, last + 1))
        for name, messages in seen.items():
            assert [m["seq"] for m in messages] == expected, name  # each once, in order
        assert seen["a"] == seen["b"]
        types = [m["type"] for m in seen["b"]]
        assert {"container_created", "container_stopped", "container_started"} <= set(types)

        # The all-users stream on B: every one of them, in row order.
        everyone_last = await _position(admin_b, all_users=True)
        ids = [m["seq"] for m in await _until_seq(everyone, everyone_last)]
        assert ids == sorted(set(ids)) and len(ids) == last - start and ids[0] > everyone_start

        for client in (on_a, on_b):  # ?since= replays the same events on either replica
            replay = await client.connect_events(since=start)
            assert [await _next(replay) for _ in expected] == seen["a"]
            await replay.close()
        for conn in (*streams.values(), everyone):
            await conn.close()


async def test_concurrent_operations_through_both_replicas_end_consistent(
    replicas: Replicas, docker_client: docker.DockerClient
) -> None:
    token = await replicas.user("dee")
    async with (
        CorralClient(replicas.a.url, token) as on_a,
        CorralClient(replicas.b.url, token) as on_b,
    ):
        made = await on_a.create_container(BUSYBOX, wait=True)
        ident = made["db_id"]

        refusals: list[ApiError] = []

        async def attempt(call: Any) -> None:
            try:
                await call
            except ApiError as exc:  # a refusal (a conflict while busy) is an answer
                refusals.append(exc)

        for memory in (192, 256, 320, 384, 448):
            await asyncio.gather(
                attempt(on_a.stop_container(ident)),
                attempt(on_b.start_container(ident)),
                attempt(on_b.update_settings(ident, memory_mb=memory)),
                attempt(on_a.start_container(ident)),
                attempt(on_b.stop_container(ident)),
            )
        assert all(exc.status in (409, 503) for exc in refusals), refusals
        await on_a.start_container(ident)
        row_a, row_b = await on_a.get_container(ident), await on_b.get_container(ident)
        assert row_a == row_b
        sandboxes = containers_of(docker_client, ident)
        assert [c.id for c in sandboxes] == [row_a["id"]]  # exactly one, the row's
        sandbox = sandboxes[0]
        sandbox.reload()
        assert (row_a["status"], sandbox.status) == ("running", "running")
        memory_mb = sandbox.attrs["HostConfig"]["Memory"] // (1024 * 1024)
        assert memory_mb == row_a["resources"]["memory_mb"]


@pytest.mark.skipif(os.geteuid() != 0, reason="volume images need root (quotas)")
async def test_a_disk_change_through_the_replica_that_did_not_create_the_sandbox(
    replicas: Replicas, docker_client: docker.DockerClient
) -> None:
    token = await replicas.user("eve")
    async with (
        CorralClient(replicas.a.url, token) as on_a,
        CorralClient(replicas.b.url, token) as on_b,
    ):
        made = await on_a.create_container(BUSYBOX, disk_mb=32, wait=True)
        assert sh(docker_client, made["id"], "echo kept > /home/user/f")[0] == 0
        assert (replicas.shared / "volumes" / f"{made['db_id']}.img").exists()
        await on_a.stop_container(made["db_id"])
        await on_b.update_settings(made["db_id"], disk_mb=96)
        started = await on_b.start_container(made["db_id"])
        code, out = sh(docker_client, started["id"], "cat /home/user/f; df -m /home/user")
        assert code == 0 and out.startswith("kept\n"), out
        size_mb = int(out.splitlines()[-1].split()[1])
        assert 80 <= size_mb <= 96, out
        assert (await on_a.get_container(made["db_id"]))["resources"]["disk_mb"] == 96


async def test_a_killed_leader_s_watcher_is_taken_over_and_nothing_is_lost(
    replicas: Replicas, docker_client: docker.DockerClient
) -> None:
    token = await replicas.user("fay")
    async with CorralClient(replicas.a.url, token) as on_a:
        made = await on_a.create_container(BUSYBOX, wait=True)
    assert sh(docker_client, made["id"], "echo survives > /home/user/f")[0] == 0

    leader = await asyncio.to_thread(replicas.leader_pid)
    pids = {replicas.a.pid: replicas.a, replicas.b.pid: replicas.b}
    assert leader in pids, (leader, pids)
    victim = pids.pop(leader)
    survivor = next(iter(pids.values()))
    victim.kill()  # SIGKILL: its connections close, PostgreSQL frees its locks
    await wait_for(lambda: replicas.leader_pid() == survivor.pid, 15, what="the survivor to lead")

    # A change behind Corral's back is seen by the new leader's watcher.
    await asyncio.to_thread(docker_client.containers.get(made["id"]).stop, timeout=1)
    async with CorralClient(survivor.url, token) as client:

        async def stopped() -> bool:
            return (await client.get_container(made["db_id"]))["status"] == "stopped"

        await wait_for(stopped, 15, what="the row to say stopped")
        started = await client.start_container(made["db_id"])
        assert started["status"] == "running"
    assert sh(docker_client, started["id"], "cat /home/user/f") == (0, "survives\n")
