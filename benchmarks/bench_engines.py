"""Start+stop through the API against the docker SDK, on the SECOND of two engines.

The backend (``corral serve``, its own process) is configured with two engines: the machine's
("local") and a second dockerd (``devkit/second_engine.py``); "local" is drained, so the sandboxes
are placed on the second. The baseline drives sandboxes of the same spec (``sandbox_spec``)
straight on the second engine with the docker SDK. Each round starts and stops CONCURRENCY
sandboxes at once on each side, rounds interleaved so drift in the machine's load hits both.
Target: ratio <= 1.10. Everything made is removed, and the second engine destroyed.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import docker

from backend.containers.sandbox import sandbox_spec
from backend.db.models import Container
from backend.docker_service import DockerService
from benchmarks.common import (
    NO_WRITE_LIMIT,
    baseline_twin,
    remove_twin,
    server_process,
    summary,
    verdict,
)
from corral.client import CorralClient
from corral.local import local_admin_token
from devkit.engine import remove_instance
from devkit.second_engine import SecondEngine

ROUNDS = 12
CONCURRENCY = 2
TARGET = 1.10


async def run() -> dict[str, float]:
    second = SecondEngine()
    try:
        await asyncio.to_thread(second.start)
        await asyncio.to_thread(second.load_images)
        api_times, sdk_times = await _measure(second)
    finally:
        await asyncio.to_thread(second.destroy)
    ratio = statistics.median(api_times) / statistics.median(sdk_times)
    print(
        f"start+stop of {CONCURRENCY} sandboxes at once on the second engine "
        "(corral/busybox, runsc; backend in its own process, two engines configured)"
    )
    print(f"  docker SDK direct : {summary(sdk_times)}")
    print(f"  Corral API        : {summary(api_times)}")
    print(
        f"  {verdict(ratio <= TARGET)} ratio API/SDK (median) = {ratio:.3f}  (target <= {TARGET})"
    )
    return {"engines_ratio": ratio}


async def _measure(second: SecondEngine) -> tuple[list[float], list[float]]:
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
        data_dir = Path(tmp)
        instance = f"bench-{uuid.uuid4().hex[:10]}"
        (data_dir / "config.toml").write_text(
            NO_WRITE_LIMIT
            + '[[engines]]\nname = "local"\n'
            + f'[[engines]]\nname = "second"\ndocker_host = "{second.host}"\n'
        )
        far = docker.DockerClient(base_url=second.host, version="auto")
        try:
            async with server_process(data_dir, instance) as server:
                token = await local_admin_token(server.settings)
                async with CorralClient(server.url, token) as client:
                    await client.drain_engine("local")
                    made = [
                        dict(await client.create_container("corral/busybox", wait=True))
                        for _ in range(CONCURRENCY)
                    ]
                    assert all(m["engine"] == "second" for m in made), made
                    for m in made:
                        await client.stop_container(m["id"])
                twins = await _baseline(second, server.settings, instance, made)
                async with aiohttp.ClientSession(
                    headers={"Authorization": f"Bearer {token}"}
                ) as http:
                    return await _rounds(http, server.url, made, far.api, twins, server.settings)
        finally:
            remove_instance(instance, far)
            far.close()


async def _baseline(
    second: SecondEngine, settings: Any, instance: str, made: list[dict[str, Any]]
) -> list[tuple[str, Container]]:
    """A docker-SDK twin of each API sandbox, on the second engine: (container ID, twin)."""
    service = DockerService(second.host)
    try:
        twins = []
        for index, m in enumerate(made):
            twin = await baseline_twin(service, m, f"bench-sdk-{index}", instance)
            spec = sandbox_spec(twin, settings, instance, "corral/busybox:latest")
            twins.append((await service.create_container(spec), twin))
        return twins
    finally:
        await service.aclose()
        service.close()


async def _rounds(
    http: aiohttp.ClientSession,
    url: str,
    made: list[dict[str, Any]],
    client: docker.APIClient,
    twins: list[tuple[str, Container]],
    settings: Any,
) -> tuple[list[float], list[float]]:
    stop_timeout = settings.stop_timeout_s

    def sdk_one(container_id: str) -> None:
        client.start(container_id)
        client.stop(container_id, timeout=stop_timeout)

    async def sdk_round() -> float:
        t0 = time.perf_counter()
        await asyncio.gather(*(asyncio.to_thread(sdk_one, cid) for cid, _ in twins))
        return time.perf_counter() - t0

    async def api_one(ident: str) -> None:
        for action in ("start", "stop"):
            async with http.post(f"{url}/api/containers/{ident}/{action}") as resp:
                assert resp.status == 200, await resp.text()

    async def api_round() -> float:
        t0 = time.perf_counter()
        await asyncio.gather(*(api_one(m["id"]) for m in made))
        return time.perf_counter() - t0

    await sdk_round()  # warm both paths once
    await api_round()
    api_times: list[float] = []
    sdk_times: list[float] = []
    for _ in range(ROUNDS):
        sdk_times.append(await sdk_round())
        api_times.append(await api_round())
    for container_id, twin in twins:
        remove_twin(client, container_id, twin)
    return api_times, sdk_times


if __name__ == "__main__":
    asyncio.run(run())
