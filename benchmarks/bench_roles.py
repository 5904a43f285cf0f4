"""Roles from role images: how soon a python sandbox answers, what a rebuild costs with a role,
what building a role image costs, and what an image adds on disk.

- Create to ``python3`` answering (``POST ?wait=true``, then ``python3 -c`` through ``docker
  exec`` until it works), p50 of 5, on ``corral serve``; target at most 3 s. The python role's
  image is built first (``just images`` has usually done it).
- A memory change on a running python sandbox until ``python3`` answers again, as a ratio to the
  same rebuild of a sandbox without a role (Debian, barebone; until ``sh`` answers) in the same
  run; target at most 1.5.
- Building the python role's image cold (empty package cache: the host downloads, then a build
  container installs and is committed) and warm (cache ready), under a role id of its own so the
  catalog's image is untouched; both images are removed afterwards.
- Disk each catalog role image adds beyond its base image (its layers are shared).
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

from backend.containers.catalog import Role, builtin_roles
from backend.containers.packages import PackageCache
from backend.containers.role_images import RoleImages
from backend.docker_service import DockerService
from backend.settings import Settings, load_settings
from benchmarks.common import server_process, summary, verdict
from corral.local import local_admin_token
from devkit.waiting import wait_for

IMAGE = "corral/debian:bookworm"
CREATES = 5
REBUILDS = 4
SIZE = {"memory_mb": 1024, "cpu_shares": 2000}


async def _answers(client: docker.APIClient, container: str, command: list[str]) -> None:
    """Exec ``command`` until it exits 0 (a deadline of a minute)."""

    async def answered() -> bool:
        exec_id = await asyncio.to_thread(client.exec_create, container, command)
        await asyncio.to_thread(client.exec_start, exec_id["Id"])
        info = await asyncio.to_thread(client.exec_inspect, exec_id["Id"])
        return bool(info.get("ExitCode") == 0)

    await wait_for(answered, 60, 0, f"{command} to answer in {container[:12]}")


PYTHON = ["python3", "-c", "print(1)"]
SHELL = ["sh", "-c", "true"]


async def _create_until(
    http: aiohttp.ClientSession, url: str, client: docker.APIClient, role: str
) -> tuple[float, str]:
    t0 = time.perf_counter()
    body = {"image": IMAGE, "role": role, **SIZE}
    async with http.post(f"{url}/api/containers?wait=true", json=body) as resp:
        made = await resp.json()
        assert resp.status == 201, made
    await _answers(client, made["id"], PYTHON if role == "python" else SHELL)
    return time.perf_counter() - t0, made["db_id"]


async def _rebuild_until(
    http: aiohttp.ClientSession, url: str, client: docker.APIClient, db_id: str, memory: int
) -> float:
    t0 = time.perf_counter()
    async with http.patch(
        f"{url}/api/containers/{db_id}/settings", json={"memory_mb": memory}
    ) as resp:
        body = await resp.json()
        assert resp.status == 200 and body["restarted"], body
    container = body["container"]
    assert container["role_state"] in ("installed", "none"), container
    await _answers(client, container["id"], PYTHON if container["role"] == "python" else SHELL)
    return time.perf_counter() - t0


async def _delete(http: aiohttp.ClientSession, url: str, db_id: str) -> None:
    async with http.delete(f"{url}/api/containers/{db_id}") as resp:
        assert resp.status == 200


async def _sandboxes(settings: Settings) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
        data_dir = Path(tmp)
        instance = f"bench-{uuid.uuid4().hex[:10]}"
        async with server_process(data_dir, instance) as server:
            token = await local_admin_token(server.settings)
            headers = {"Authorization": f"Bearer {token}"}
            client = docker.APIClient(version="auto")
            async with aiohttp.ClientSession(headers=headers) as http:
                creates = []
                for _ in range(CREATES):
                    seconds, db_id = await _create_until(http, server.url, client, "python")
                    creates.append(seconds)
                    await _delete(http, server.url, db_id)
                rebuilds: dict[str, list[float]] = {"python": [], "barebone": []}
                for role in rebuilds:
                    _, db_id = await _create_until(http, server.url, client, role)
                    for i in range(REBUILDS):
                        memory = 768 if i % 2 == 0 else 1024
                        rebuilds[role].append(
                            await _rebuild_until(http, server.url, client, db_id, memory)
                        )
                    await _delete(http, server.url, db_id)
            client.close()
    return {"creates": creates, "rebuilds": rebuilds}


async def _builds(settings: Settings) -> dict[str, float]:
    """Cold and warm builds of the python packages under a role id of their own."""
    python = builtin_roles()["python"]
    role = Role(f"bench-{uuid.uuid4().hex[:8]}", "bench", "", python.packages, python.images)
    docker_service = DockerService(settings.docker_host, 4)
    with tempfile.TemporaryDirectory(prefix="corral-bench-cache-") as cache_dir:
        local = settings.with_overrides(package_cache_dir=Path(cache_dir))
        images = RoleImages(local, docker_service, PackageCache(local))
        base = local.image(IMAGE)
        assert base is not None
        try:
            cold = await images.ensure(base, role)
            await docker_service.remove_image(cold.reference)
            warm = await images.ensure(base, role)
            await docker_service.remove_image(warm.reference)
        finally:
            docker_service.close()
    return {"cold": cold.seconds, "warm": warm.seconds, "extra_mb": warm.extra_bytes / 1e6}


async def _catalog_sizes(settings: Settings) -> dict[str, float | None]:
    docker_service = DockerService(settings.docker_host, 4)
    images = RoleImages(settings, docker_service, PackageCache(settings))
    sizes: dict[str, float | None] = {}
    try:
        base = settings.image(IMAGE)
        assert base is not None
        for role in builtin_roles().values():
            if role.installs and role.supports(base):
                made = await images.find(base, role)
                sizes[role.id] = made.extra_bytes / 1e6 if made else None
    finally:
        docker_service.close()
    return sizes


async def _ensure_python_image(settings: Settings) -> None:
    docker_service = DockerService(settings.docker_host, 4)
    try:
        base = settings.image(IMAGE)
        assert base is not None
        await RoleImages(settings, docker_service, PackageCache(settings)).ensure(
            base, builtin_roles()["python"]
        )
    finally:
        docker_service.close()


async def run() -> dict[str, float]:
    settings = load_settings()
    await _ensure_python_image(settings)
    sandboxes = await _sandboxes(settings)
    builds = await _builds(settings)
    sizes = await _catalog_sizes(settings)

    creates = sandboxes["creates"]
    python_rebuild = statistics.median(sandboxes["rebuilds"]["python"])
    plain_rebuild = statistics.median(sandboxes["rebuilds"]["barebone"])
    ratio = python_rebuild / plain_rebuild
    create_p50 = statistics.median(creates)
    print(f"role images on {IMAGE} (runsc, 2 CPUs, 1024 MB)")
    print(f"  create to python3 answering: {summary(creates)}")
    print(f"    p50 {create_p50:.2f} s (target <= 3 s) {verdict(create_p50 <= 3.0)}")
    print(f"  memory change until the sandbox answers, python role: {python_rebuild:.2f} s p50")
    print(f"  memory change until the sandbox answers, no role    : {plain_rebuild:.2f} s p50")
    print(f"    ratio python/no role = {ratio:.3f} (target <= 1.5) {verdict(ratio <= 1.5)}")
    print(
        f"  python role image build: cold (empty package cache) {builds['cold']:.1f} s, "
        f"warm (cache ready) {builds['warm']:.1f} s"
    )
    for role_id, extra in sizes.items():
        shown = f"{extra:.0f} MB" if extra is not None else "not built"
        print(f"  disk beyond the base, role {role_id:<8}: {shown}")
    return {
        "roles_create_p50_s": create_p50,
        "roles_rebuild_ratio": ratio,
        "roles_build_cold_s": builds["cold"],
        "roles_build_warm_s": builds["warm"],
    }


if __name__ == "__main__":
    asyncio.run(run())
