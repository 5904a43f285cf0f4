"""Start+stop round trip through the API against the docker SDK doing the same, in one run.

The backend runs as its own ``corral serve`` process. Both sides drive a sandbox of the same spec
(image, runtime, limits, hardening: the baseline's spec comes from the same ``sandbox_spec``),
interleaved round by round so drift in the machine's load hits both equally. Target: ratio <= 1.10.
"""

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
from benchmarks.common import baseline_twin, remove_twin, server_process, summary, verdict
from corral.client import CorralClient
from corral.local import local_admin_token

ROUNDS = 15
TARGET = 1.10


async def run() -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
        data_dir = Path(tmp)
        instance = f"bench-{uuid.uuid4().hex[:10]}"
        async with server_process(data_dir, instance) as server, aiohttp.ClientSession() as http:
            token = await local_admin_token(server.settings)
            headers = {"Authorization": f"Bearer {token}"}
            async with CorralClient(server.url, token) as client:
                made = dict(
                    await client.create_container("corral/busybox", wait=True, name="bench-api")
                )

            service = DockerService(None)
            twin = await baseline_twin(service, made, "bench-sdk", instance)
            spec = sandbox_spec(twin, server.settings, instance, "corral/busybox:latest")
            sdk_id = await service.create_container(spec)
            service.close()
            client = docker.APIClient(version="auto")
            stop_timeout = server.settings.stop_timeout_s

            def sdk_round() -> float:
                t0 = time.perf_counter()
                client.start(sdk_id)
                client.stop(sdk_id, timeout=stop_timeout)
                return time.perf_counter() - t0

            async def api_round() -> float:
                t0 = time.perf_counter()
                for action in ("start", "stop"):
                    async with http.post(
                        f"{server.url}/api/containers/{made['id']}/{action}", headers=headers
                    ) as resp:
                        assert resp.status == 200, await resp.text()
                return time.perf_counter() - t0

            async with http.post(
                f"{server.url}/api/containers/{made['id']}/stop", headers=headers
            ) as resp:
                assert resp.status == 200
            await asyncio.to_thread(sdk_round)  # warm both paths once
            await api_round()

            api_times: list[float] = []
            sdk_times: list[float] = []
            for _ in range(ROUNDS):
                sdk_times.append(await asyncio.to_thread(sdk_round))
                api_times.append(await api_round())
            remove_twin(client, sdk_id, twin)
            client.close()

    ratio = statistics.median(api_times) / statistics.median(sdk_times)
    print("start+stop round trip (corral/busybox, runsc; backend in its own process)")
    print(f"  docker SDK direct : {summary(sdk_times)}")
    print(f"  Corral API        : {summary(api_times)}")
    print(
        f"  {verdict(ratio <= TARGET)} ratio API/SDK (median) = {ratio:.3f}  (target <= {TARGET})"
    )
    return {"lifecycle_ratio": ratio}


if __name__ == "__main__":
    asyncio.run(run())
