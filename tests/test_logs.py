"""A sandbox's output: ``GET /api/containers/{id}/logs`` (tail, follow, timestamps), through
``corral.client`` and ``corral logs``, on the real engine with gVisor sandboxes."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import docker
import pytest

from corral.client import ContainerNotFound, CorralClient, InvalidParameters
from devkit.waiting import wait_for
from tests.conftest import Api, sh
from tests.test_cli import corral, remote

STARTED = (
    "corral: sandbox started: image corral/busybox, role barebone, memory 128 MB, "
    "cpu 500 millicores, disk 64 MB"
)
STOPPING = "corral: sandbox stopping"


async def lines_of(client: CorralClient, ident: str, **options: object) -> list[str]:
    return [line async for line in client.logs(ident, **options)]  # type: ignore[arg-type]


async def next_line(lines: AsyncIterator[str], timeout_s: float = 15.0) -> str:
    async with asyncio.timeout(timeout_s):
        return await anext(lines)


async def test_the_sandbox_says_when_it_starts_and_stops(
    api: Api, docker_client: docker.DockerClient
) -> None:
    _, headers = await api.user(tier="test")
    made = await api.create(headers, name="chatty")
    async with api.corral(headers) as client:
        # PID 1 writes its line a moment after the engine answers: wait for each.
        async def shows(*lines: str) -> None:
            async def check() -> bool:
                return await lines_of(client, made["id"]) == list(lines)

            await wait_for(check, 10, what=f"the lines {lines}")

        await shows(STARTED)
        await api.client.post(f"/api/containers/{made['id']}/stop", headers=headers)
        # A stopped container's output stays readable.
        await shows(STARTED, STOPPING)
        await api.client.post(f"/api/containers/{made['id']}/start", headers=headers)
        await shows(STARTED, STOPPING, STARTED)


async def test_output_written_to_pid_1_is_in_the_logs_and_tail_limits_it(
    api: Api, docker_client: docker.DockerClient
) -> None:
    _, headers = await api.user(tier="test")
    made = await api.create(headers, name="writer")
    script = "for i in 1 2 3 4 5; do echo line-$i >/proc/1/fd/1; done"
    assert sh(docker_client, made["id"], script)[0] == 0
    async with api.corral(headers) as client:
        # stdout and stderr reach Docker's log on two pipes: written back to back, either may
        # be logged first. stderr is written once stdout's lines are in.
        async def logged(line: str) -> bool:
            return line in await lines_of(client, made["id"])

        await wait_for(lambda: logged("line-5"), 10, what="stdout's lines in the log")
        assert sh(docker_client, made["id"], "echo oops >/proc/1/fd/2")[0] == 0
        await wait_for(lambda: logged("oops"), 10, what="stderr's line in the log")
        every = await lines_of(client, made["id"])
        assert every == [STARTED, *(f"line-{i}" for i in range(1, 6)), "oops"]
        assert await lines_of(client, made["id"], tail=2) == ["line-5", "oops"]
        stamped = await lines_of(client, made["id"], tail=1, timestamps=True)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z oops", stamped[0]), stamped

    resp = await api.client.get(f"/api/containers/{made['id']}/logs?tail=1", headers=headers)
    assert resp.status == 200
    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert await resp.text() == "oops\n"


async def test_follow_streams_new_lines_until_the_container_stops(
    api: Api, docker_client: docker.DockerClient
) -> None:
    _, headers = await api.user(tier="test")
    made = await api.create(headers, name="followed")
    async with api.corral(headers) as client:
        lines = client.logs(made["id"], tail=1, follow=True).__aiter__()
        assert await next_line(lines) == STARTED
        # A background job whose output goes to the container's log, as docs/api.md says.
        script = "(sleep 0.3; echo from-the-background) >/proc/1/fd/1 2>&1 &"
        assert sh(docker_client, made["id"], script)[0] == 0
        assert await next_line(lines) == "from-the-background"
        await api.client.post(f"/api/containers/{made['id']}/stop", headers=headers)
        assert await next_line(lines) == STOPPING
        with pytest.raises(StopAsyncIteration):
            await next_line(lines)  # the container stopped: the stream ends


async def test_refusals(api: Api) -> None:
    _, headers = await api.user(tier="test")
    _, other = await api.user(tier="test")
    made = await api.create(headers, name="private")
    for query in ("tail=0", "tail=10001", "tail=ten", "follow=maybe", "timestamps=2"):
        resp = await api.client.get(f"/api/containers/{made['id']}/logs?{query}", headers=headers)
        body = await resp.json()
        assert resp.status == 400, query
        assert body["error"] == "invalid parameters"
    unknown = await api.client.get(
        "/api/containers/00000000-0000-4000-8000-000000000000/logs", headers=other
    )
    foreign = await api.client.get(f"/api/containers/{made['db_id']}/logs", headers=other)
    assert foreign.status == unknown.status == 404
    assert await foreign.read() == await unknown.read()
    assert (await api.client.get(f"/api/containers/{made['id']}/logs")).status == 401
    async with api.corral(other) as client:
        with pytest.raises(ContainerNotFound):
            await lines_of(client, made["id"])
    async with api.corral(headers) as client:
        with pytest.raises(InvalidParameters):
            await lines_of(client, made["id"], tail=0)


async def test_corral_logs(api: Api, docker_client: docker.DockerClient) -> None:
    _, headers = await api.user(tier="test")
    made = await api.create(headers, name="cli-logs")
    assert sh(docker_client, made["id"], "echo hello >/proc/1/fd/1")[0] == 0
    result = await corral(*remote(api, headers), "logs", "cli-logs-nope")
    assert result.code == 1
    assert "error:" in result.err
    result = await corral(*remote(api, headers), "logs", made["id"], "--tail", "1")
    assert result.code == 0, result.err
    assert result.out == "hello\n"
    # -f ends by itself once the container stops (whether it started following before the
    # stop or after it, it prints the stop line and exits 0).
    follow = asyncio.create_task(corral(*remote(api, headers), "logs", made["db_id"], "-f"))
    await api.client.post(f"/api/containers/{made['id']}/stop", headers=headers)
    result = await follow
    assert result.code == 0, result.err
    assert result.out.splitlines()[-1] == STOPPING
