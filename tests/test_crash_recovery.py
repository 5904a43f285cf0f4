"""A backend killed with SIGKILL in the middle of a rebuild, then started again, leaves exactly one
container for the row, with the data intact and the database agreeing with Docker."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import docker
import pytest

from backend.admin import Admin
from backend.containers.recreate import ASIDE_MARK
from backend.settings import load_settings
from devkit.backend_process import BackendProcess
from devkit.waiting import wait_for
from tests.conftest import containers_of, sh


@pytest.fixture
def backend(tmp_path: Path, instance: str, settings: object) -> Iterator[BackendProcess]:
    """A ``corral serve`` process on the ``settings`` fixture's data directory and instance (whose
    teardown removes the containers and unmounts the volumes left behind)."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "config.toml").write_text("stop_timeout_s = 2\n")
    proc = BackendProcess(data_dir, instance)
    yield proc
    proc.kill()


def _watch_for_stage(
    client: docker.DockerClient,
    db_id: str,
    stage: str,
    seen: threading.Event,
    stop: threading.Event,
) -> None:
    """Poll Docker (tightly) for the rebuild stage at which to pull the plug."""
    while not stop.is_set():
        # The low-level listing: the high-level one inspects each container and can race with
        # the removals it is watching for.
        rows = client.api.containers(all=True, filters={"label": f"corral.db_id={db_id}"})
        names = [row["Names"][0].lstrip("/") for row in rows]
        aside = any(ASIDE_MARK in n for n in names)
        primary = any(n == f"corral-{db_id}" for n in names)
        if aside and (stage == "aside" or primary):
            seen.set()
            return
        time.sleep(0.005)  # the poll interval of a watcher thread, not a synchronisation sleep


@pytest.mark.parametrize("stage", ["aside", "new-created"])
async def test_sigkill_mid_rebuild_leaves_one_container_with_the_data(
    backend: BackendProcess, docker_client: docker.DockerClient, stage: str
) -> None:
    async with Admin(load_settings(data_dir=backend.data_dir)) as admin:
        token = await admin.local_admin_jwt()
    headers = {"Authorization": f"Bearer {token}"}
    await asyncio.to_thread(backend.start)

    async with aiohttp.ClientSession(base_url=backend.url, headers=headers) as http:
        async with http.post(
            "/api/containers?wait=true", json={"image": "corral/busybox", "memory_mb": 512}
        ) as resp:
            made = await resp.json()
            assert resp.status == 201, made
        db_id = made["db_id"]
        assert sh(docker_client, made["id"], "echo intact > /home/user/f")[0] == 0

        seen, stop = threading.Event(), threading.Event()
        watcher = threading.Thread(
            target=_watch_for_stage, args=(docker_client, db_id, stage, seen, stop), daemon=True
        )
        watcher.start()
        patch = asyncio.ensure_future(
            http.patch(f"/api/containers/{db_id}/settings", json={"memory_mb": 1024})
        )
        try:
            await wait_for(seen.is_set, 20, interval_s=0.002, what=f"the rebuild stage {stage}")
            backend.kill()
        finally:
            stop.set()
            watcher.join()
        with pytest.raises(aiohttp.ClientError):
            await patch

    await asyncio.to_thread(backend.start)
    async with aiohttp.ClientSession(base_url=backend.url, headers=headers) as http:

        async def settled() -> bool:
            dockers = containers_of(docker_client, db_id)
            if len(dockers) != 1 or dockers[0].status != "running":
                return False
            async with http.get(f"/api/containers/{db_id}") as resp:
                row = await resp.json()
            return bool(row["id"] == dockers[0].id and row["status"] == "running")

        await wait_for(settled, 30, what="one running container matching the database")
        async with http.get(f"/api/containers/{db_id}") as resp:
            row = await resp.json()
    only = containers_of(docker_client, db_id)
    assert [c.name for c in only] == [f"corral-{db_id}"]
    memory = docker_client.api.inspect_container(only[0].id)["HostConfig"]["Memory"] // 2**20
    assert memory == row["resources"]["memory_mb"]  # the database and Docker agree
    assert sh(docker_client, only[0].id, "cat /home/user/f") == (0, "intact\n")
