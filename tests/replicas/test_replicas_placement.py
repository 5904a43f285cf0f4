"""Placement across replicas: the choice of an engine and the row that records it are one step
for the whole cluster (an advisory lock), so creates arriving through both replicas at once
never place more memory on an engine than it has."""

from __future__ import annotations

import asyncio
from pathlib import Path

import docker

from corral.client import CorralClient
from corral.client.errors import ApiError
from devkit.postgres import Postgres
from devkit.waiting import wait_for
from tests.conftest import BUSYBOX
from tests.replicas.conftest import two_replicas

MB = 1 << 20
CREATES_PER_REPLICA = 3


async def test_creates_through_both_replicas_at_once_never_overcommit_the_engine(
    tmp_path: Path, instance: str, postgres: Postgres, docker_client: docker.DockerClient
) -> None:
    total_mb = int(docker_client.info()["MemTotal"]) // MB
    memory_mb = total_mb // 3 + 1  # two fit on the engine, a third does not
    config = (
        "stop_timeout_s = 2\n[tiers.big]\ncontainers = 10\n"
        f"memory_mb = [64, {total_mb}]\ncpu_shares = [100, 2000]\ndisk_mb = [16, 1024]\n"
        "default_memory_mb = 128\ndefault_cpu_shares = 500\ndefault_disk_mb = 16\n"
    )
    async with two_replicas(tmp_path, instance, postgres, docker_client, config) as replicas:
        token = await replicas.user("placer", tier="big")
        async with (
            CorralClient(replicas.a.url, token) as on_a,
            CorralClient(replicas.b.url, token) as on_b,
        ):

            async def create(client: CorralClient) -> str:
                try:
                    await client.create_container(BUSYBOX, memory_mb=memory_mb)
                except ApiError as exc:
                    return f"{exc.status} {exc.error}"
                return "created"

            answers = await asyncio.gather(
                *(create(client) for client in (on_a, on_b) for _ in range(CREATES_PER_REPLICA))
            )
            assert sorted(answers) == ["503 no engine available"] * 4 + ["created"] * 2, answers
            listed = await on_b.list_containers()
            placed = [c["resources"]["memory_mb"] for c in listed["containers"]]
            assert placed == [memory_mb, memory_mb]

            # Both built before the replicas are killed, so nothing is made after the clean-up.
            async def both_running() -> bool:
                found = (await on_a.list_containers())["containers"]
                return [c["status"] for c in found] == ["running", "running"]

            await wait_for(both_running, timeout_s=90, what="both sandboxes running")
