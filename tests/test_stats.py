"""Live usage: ``GET /api/containers/{id}/stats`` and the stats stream, on the real engine with
gVisor sandboxes, through ``corral.client``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import docker
import pytest

from backend.admin import Admin
from backend.settings import Settings, load_settings
from backend.state import STATS
from corral.client import (
    Backoff,
    ContainerNotFound,
    ContainerNotRunning,
    CorralClient,
    NotAuthorized,
    StatsMessage,
    StatsStream,
    Unauthorized,
)
from corral.client.events import connect_events
from corral.client.stats import STATS_PATH
from devkit.backend_process import BackendProcess
from devkit.waiting import wait_for
from tests.conftest import Api, serve, sh

SAMPLE_KEYS = {
    "id",
    "db_id",
    "name",
    "cpu_percent",
    "memory_used_mb",
    "memory_limit_mb",
    "pids",
    "timestamp",
}


@pytest.fixture
def fast(settings: Settings) -> Settings:
    """Samples every 0.5 s, so a test sees several in a moment."""
    return settings.with_overrides(stats_interval_s=0.5)


async def next_matching(
    stream: StatsStream, check: Callable[[StatsMessage], bool], timeout_s: float = 20.0
) -> StatsMessage:
    async with asyncio.timeout(timeout_s):
        async for message in stream:
            if check(message):
                return message
    raise AssertionError("the stats stream ended")


def ids(message: StatsMessage) -> set[str]:
    return {s["db_id"] for s in message["stats"]}


async def test_one_sample_shows_memory_in_use_and_follows_an_allocation(
    api: Api, docker_client: docker.DockerClient
) -> None:
    _, headers = await api.user(tier="test")
    made = await api.create(headers, name="hungry", memory_mb=256)
    async with api.corral(headers) as client:
        first = await client.container_stats(made["id"])
        assert set(first) == SAMPLE_KEYS
        assert (first["id"], first["db_id"], first["name"]) == (
            made["id"],
            made["db_id"],
            "hungry",
        )
        assert first["memory_used_mb"] > 0
        assert first["memory_limit_mb"] == 256
        assert first["pids"] > 0
        assert first["cpu_percent"] >= 0

        # tmpfs files live in the sandbox's memory: 64 MB of them show as used memory.
        assert (
            sh(docker_client, made["id"], "dd if=/dev/zero of=/dev/shm/fill bs=1M count=64")[0] == 0
        )

        async def grew() -> bool:
            now = await client.container_stats(made["db_id"])
            return now["memory_used_mb"] >= first["memory_used_mb"] + 48

        await wait_for(grew, timeout_s=20, what="memory use to grow by the allocation")


async def test_one_sample_refusals(api: Api) -> None:
    _, headers = await api.user(tier="test")
    _, other = await api.user(tier="test")
    made = await api.create(headers, name="idle")
    await api.client.post(f"/api/containers/{made['id']}/stop", headers=headers)
    async with api.corral(headers) as client:
        with pytest.raises(ContainerNotRunning):
            await client.container_stats(made["db_id"])
    unknown = await api.client.get(
        "/api/containers/00000000-0000-4000-8000-000000000000/stats", headers=other
    )
    foreign = await api.client.get(f"/api/containers/{made['db_id']}/stats", headers=other)
    assert foreign.status == unknown.status == 404
    assert await foreign.read() == await unknown.read()
    async with api.corral(other) as client:
        with pytest.raises(ContainerNotFound):
            await client.container_stats(made["db_id"])
    assert (await api.client.get(f"/api/containers/{made['db_id']}/stats")).status == 401


async def test_the_stream_carries_running_sandboxes_only(
    fast: Settings, docker_client: docker.DockerClient
) -> None:
    async with serve(fast) as api:
        _, headers = await api.user(tier="test")
        _, other = await api.user(tier="test")
        one = await api.create(headers, name="one")
        two = await api.create(headers, name="two")
        off = await api.create(headers, name="off")
        await api.create(other, name="theirs")
        await api.client.post(f"/api/containers/{off['id']}/stop", headers=headers)
        sampler = api.app[STATS]
        assert sampler.tasks == sampler.streams == 0  # nobody watches: nothing runs

        async with api.corral(headers) as client, client.stats() as stream:
            both = {one["db_id"], two["db_id"]}
            message = await next_matching(stream, lambda m: ids(m) >= both)
            assert message["type"] == "stats"
            assert ids(message) == both  # not the stopped one, nor another user's
            assert all(set(s) == SAMPLE_KEYS for s in message["stats"])
            assert all(s["memory_used_mb"] > 0 for s in message["stats"])
            assert sampler.streams == 3  # every running sandbox, whoever watches

            await api.client.post(f"/api/containers/{two['id']}/stop", headers=headers)
            await next_matching(stream, lambda m: ids(m) == {one["db_id"]})
            await api.client.post(f"/api/containers/{off['id']}/start", headers=headers)
            await next_matching(stream, lambda m: ids(m) == {one["db_id"], off["db_id"]})

        await wait_for(
            lambda: sampler.tasks == sampler.streams == len(sampler) == 0, what="streams closed"
        )


async def test_admins_may_follow_everyone_and_others_may_not(fast: Settings) -> None:
    async with serve(fast) as api:
        _, admin = await api.user(admin=True)
        _, headers = await api.user(tier="test")
        made = await api.create(headers, name="watched")
        async with api.corral(admin) as client, client.stats(all_users=True) as stream:
            await next_matching(stream, lambda m: made["db_id"] in ids(m))
        async with api.corral(admin) as client, client.stats() as stream:
            mine = await next_matching(stream, lambda m: True)
            assert made["db_id"] not in ids(mine)  # without all=true an admin's are their own
        async with api.corral(headers) as client:
            with pytest.raises(NotAuthorized):
                async with client.stats(all_users=True) as stream:
                    await anext(stream)
        async with api.corral() as client:
            with pytest.raises(Unauthorized):
                async with client.stats() as stream:
                    await anext(stream)


async def test_ping_is_answered_and_the_first_message_comes_at_once(fast: Settings) -> None:
    slow = fast.with_overrides(stats_interval_s=30.0)
    async with serve(slow) as api:
        _, headers = await api.user(tier="test")
        async with api.corral(headers) as client:
            conn = await connect_events(
                client,
                since=None,
                all_users=False,
                auth="query",
                heartbeat_s=None,
                path=STATS_PATH,
            )
            async with conn, asyncio.timeout(5):  # far less than the 30 s interval
                first = await conn.receive()
                assert first["type"] == "stats"
                await conn.ping()
                assert (await conn.receive())["type"] == "pong"


async def test_a_subscriber_that_does_not_read_holds_one_message(fast: Settings) -> None:
    async with serve(fast) as api:
        _, headers = await api.user(tier="test")
        await api.create(headers, name="busy")
        sampler = api.app[STATS]
        sub = sampler.subscribe(None)  # nobody takes its messages
        try:
            seen: list[str] = []

            def three_publishes() -> bool:
                if sub.pending is not None and sub.pending not in seen:
                    seen.append(sub.pending)
                return len(seen) >= 3

            await wait_for(three_publishes, timeout_s=10, interval_s=0.02, what="3 messages")
            assert isinstance(sub.pending, str)  # one message, the newest: never a queue
        finally:
            sampler.unsubscribe(sub)
        await wait_for(lambda: sampler.tasks == sampler.streams == 0, what="streams closed")


async def test_the_client_stream_reconnects_after_a_backend_restart(
    settings: Settings, instance: str
) -> None:
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "config.toml").write_text("stop_timeout_s = 2\nstats_interval_s = 0.5\n")
    backend = BackendProcess(data_dir, instance)
    await asyncio.to_thread(backend.start)
    try:
        async with Admin(load_settings(data_dir=data_dir)) as admin:
            token = await admin.local_admin_jwt()
        states: list[str] = []
        quick = Backoff(initial_s=0.1, maximum_s=0.5)
        async with CorralClient(backend.url, token) as client:
            made = await client.create_container(
                "corral/busybox", memory_mb=256, disk_mb=1024, wait=True
            )
            async with client.stats(on_state=states.append, backoff=quick) as stream:
                await next_matching(stream, lambda m: made["db_id"] in ids(m))
                await asyncio.to_thread(backend.stop)  # the sandbox keeps running
                await asyncio.to_thread(backend.start)
                await next_matching(stream, lambda m: made["db_id"] in ids(m))
                assert stream.connects == 2
        assert states == ["connecting", "connected", "reconnecting", "connected"]
    finally:
        backend.kill()
