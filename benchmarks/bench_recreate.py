"""Rebuild time: a memory change on a running container (stop, recreate, start), through the API,
against the docker SDK doing the bare minimum by hand (stop, create, start, remove the old one)
in the same run on the same spec. Also a disk change, which adds an offline ext4 resize."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import docker

from backend.containers.sandbox import sandbox_spec
from backend.docker_service import DockerService
from benchmarks.common import baseline_twin, remove_twin, server_process, summary
from corral.client import CorralClient
from corral.local import local_admin_token

ROUNDS = 8


async def run() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
        data_dir = Path(tmp)
        instance = f"bench-{uuid.uuid4().hex[:10]}"
        async with server_process(data_dir, instance) as server, aiohttp.ClientSession() as http:
            token = await local_admin_token(server.settings)
            headers = {"Authorization": f"Bearer {token}"}
            async with CorralClient(server.url, token) as client:
                made = dict(
                    await client.create_container("corral/busybox", wait=True, memory_mb=512)
                )

            service = DockerService(None)
            twin = await baseline_twin(service, made, "bench-sdk", instance)
            client = docker.APIClient(version="auto")
            timeout = server.settings.stop_timeout_s
            current = await service.create_container(
                sandbox_spec(twin, server.settings, instance, "corral/busybox:latest")
            )
            await service.start(current)

            async def sdk_round(memory: int) -> float:
                nonlocal current
                twin.memory_mb = memory
                t0 = time.perf_counter()
                await asyncio.to_thread(client.stop, current, timeout=timeout)
                await asyncio.to_thread(client.rename, current, f"old-{uuid.uuid4().hex[:6]}")
                new = await service.create_container(
                    sandbox_spec(twin, server.settings, instance, "corral/busybox:latest")
                )
                await service.start(new)
                await asyncio.to_thread(client.remove_container, current, force=True)
                current = new
                return time.perf_counter() - t0

            async def api_round(body: dict[str, int]) -> float:
                t0 = time.perf_counter()
                async with http.patch(
                    f"{server.url}/api/containers/{made['db_id']}/settings",
                    json=body,
                    headers=headers,
                ) as resp:
                    result = await resp.json()
                    assert resp.status == 200 and result["restarted"], result
                return time.perf_counter() - t0

            api_times, sdk_times, disk_times = [], [], []
            for i in range(ROUNDS):
                memory = 256 if i % 2 == 0 else 512
                sdk_times.append(await sdk_round(memory))
                api_times.append(await api_round({"memory_mb": memory}))
            for i in range(ROUNDS // 2):
                disk_times.append(await api_round({"disk_mb": 3072 if i % 2 == 0 else 2048}))
            remove_twin(client, current, twin)
            client.close()
            service.close()

    ratio = statistics.median(api_times) / statistics.median(sdk_times)
    print("rebuild a running container with new limits (corral/busybox, runsc)")
    print(f"  docker SDK by hand (stop, create, start, rm): {summary(sdk_times)}")
    print(f"  Corral PATCH memory_mb                      : {summary(api_times)}")
    print(f"  Corral PATCH disk_mb (+ ext4 resize)        : {summary(disk_times)}")
    print(f"  ratio API/SDK (median) = {ratio:.3f}")
    return {"recreate_ratio": ratio, "recreate_p50_s": statistics.median(api_times)}


if __name__ == "__main__":
    asyncio.run(run())
