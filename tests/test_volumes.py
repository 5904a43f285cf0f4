"""Volumes backed by ext4 images: deleted with their container unless kept, and mounted again
when the backend starts after the mounts were lost (as after a reboot)."""

from __future__ import annotations

import os
import subprocess

import docker

from backend.settings import Settings
from tests.conftest import Api, serve, sh


async def test_delete_removes_the_image_file_unless_kept(api: Api, settings: Settings) -> None:
    _, headers = await api.user(tier="test")
    dropped = await api.create(headers, name="dropped")
    kept = await api.create(headers, name="kept")
    images = settings.volumes_dir
    assert (images / f"{dropped['db_id']}.img").exists()
    assert os.path.ismount(images / dropped["db_id"])

    await api.client.delete(f"/api/containers/{dropped['id']}", headers=headers)
    assert not (images / f"{dropped['db_id']}.img").exists()
    assert not (images / dropped["db_id"]).exists()

    await api.client.delete(f"/api/containers/{kept['id']}?keep_volume=true", headers=headers)
    assert (images / f"{kept['db_id']}.img").exists()


async def test_volumes_are_mounted_again_at_start(
    settings: Settings, docker_client: docker.DockerClient
) -> None:
    async with serve(settings) as api:
        client = api.client
        _, headers = await api.user("owner", tier="test")
        made = await api.create(headers)
        sh(docker_client, made["id"], "echo rebooted > /home/user/f")
        await client.post(f"/api/containers/{made['id']}/stop", headers=headers)

    mountpoint = settings.volumes_dir / made["db_id"]
    subprocess.run(["umount", str(mountpoint)], check=True)  # what a reboot does to loop mounts
    assert not os.path.ismount(mountpoint)

    async with serve(settings) as api:
        client = api.client
        assert os.path.ismount(mountpoint)
        resp = await client.post(f"/api/containers/{made['id']}/start", headers=headers)
        assert resp.status == 200
        assert sh(docker_client, made["id"], "cat /home/user/f") == (0, "rebooted\n")
        code, out = sh(docker_client, made["id"], "df -m /home/user | tail -1")
        assert code == 0
        assert int(out.split()[1]) <= 64
