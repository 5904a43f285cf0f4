"""A sandbox is never created on a volume Corral did not make, and a lost volume is never
passed over in silence.

Docker makes an empty, unlabelled volume when a container names a missing one. So the Docker
service refuses to create a sandbox unless its volume exists with this Corral's labels. A
container whose volume was removed by hand is recreated by start as the contract has it (a host
rebuild loses volumes too), on a new volume Corral makes, and the answer says the data is gone:
``volume_kept: false`` and a ``warning``. The engine's record of a volume lost while its ext4
image still holds the data is made again (nothing is lost then). A volume of that name that
Corral did not make is refused and left alone."""

from __future__ import annotations

import subprocess
import uuid
from typing import Any

import docker
import pytest

from backend.containers.sandbox import sandbox_spec
from backend.db.models import Container
from backend.docker_service import DockerService
from backend.errors import VolumeGone
from backend.settings import Settings
from devkit.waiting import wait_for
from tests.conftest import Api, serve, sh


def _remove_container(docker_client: docker.DockerClient, made: dict[str, Any]) -> None:
    docker_client.containers.get(made["id"]).remove(force=True)


def _wipe_image(settings: Settings, db_id: str) -> None:
    """What an operator's ``rm`` of the volume's files does: unmount it, delete the image."""
    mountpoint = settings.volumes_dir / db_id
    subprocess.run(["umount", str(mountpoint)], check=True)
    mountpoint.rmdir()
    (settings.volumes_dir / f"{db_id}.img").unlink()


async def _start(api: Api, headers: dict[str, str], made: dict[str, Any]) -> tuple[int, Any]:
    resp = await api.client.post(f"/api/containers/{made['db_id']}/start", headers=headers)
    return resp.status, await resp.json()


def _no_volume(docker_client: docker.DockerClient, name: str) -> bool:
    try:
        docker_client.volumes.get(name)
    except docker.errors.NotFound:
        return True
    return False


async def test_a_container_whose_volume_was_removed_by_hand_says_its_data_is_gone(
    api: Api, settings: Settings, docker_client: docker.DockerClient
) -> None:
    _, headers = await api.user(tier="test")
    made = await api.create(headers, name="wiped")
    assert sh(docker_client, made["id"], "echo precious > /home/user/f")[0] == 0
    _remove_container(docker_client, made)
    docker_client.volumes.get(made["volume"]).remove()
    _wipe_image(settings, made["db_id"])

    status, body = await _start(api, headers, made)
    assert status == 200, body
    assert body["message"] == "container recreated and started" and body["recreated"] is True
    assert body["volume_kept"] is False
    assert made["volume"] in body["warning"] and "starts empty" in body["warning"]
    # The new volume is Corral's own (labelled, on a new image), not one the engine made up.
    labels = docker_client.volumes.get(made["volume"]).attrs["Labels"] or {}
    assert labels.get("corral.instance") == settings.instance_label
    assert (settings.volumes_dir / f"{made['db_id']}.img").exists()
    assert sh(docker_client, body["id"], "test -e /home/user/f")[0] != 0  # lost, and said so
    # Its volume is there again: the next start keeps it, and warns of nothing.
    assert (
        await api.client.post(f"/api/containers/{made['db_id']}/stop", headers=headers)
    ).status == 200
    status, again = await _start(api, headers, made)
    assert status == 200 and "warning" not in again, again


async def test_a_lost_engine_record_is_made_again_from_the_image_with_the_data(
    api: Api, settings: Settings, docker_client: docker.DockerClient
) -> None:
    _, headers = await api.user(tier="test")
    made = await api.create(headers, name="record-lost")
    assert sh(docker_client, made["id"], "echo precious > /home/user/f")[0] == 0
    _remove_container(docker_client, made)
    docker_client.volumes.get(made["volume"]).remove()

    status, body = await _start(api, headers, made)
    assert status == 200, body
    assert body["recreated"] is True and body["volume_kept"] is True
    assert sh(docker_client, body["id"], "cat /home/user/f") == (0, "precious\n")
    labels = docker_client.volumes.get(made["volume"]).attrs["Labels"]
    assert labels["corral.instance"] == settings.instance_label
    assert labels["corral.managed"] == "true"


async def test_a_volume_of_that_name_not_made_by_corral_is_refused(
    api: Api, settings: Settings, docker_client: docker.DockerClient
) -> None:
    _, headers = await api.user(tier="test")
    made = await api.create(headers, name="impostor")
    _remove_container(docker_client, made)
    docker_client.volumes.get(made["volume"]).remove()
    # What the engine itself makes when a container names a missing volume: no labels.
    stray = docker_client.volumes.create(made["volume"])
    try:
        status, body = await _start(api, headers, made)
        assert status == 500, body
        assert "not made by Corral" in body["message"]
        assert (await api.get(headers, made["db_id"]))["status"] == "missing"
        stray.reload()
        assert not stray.attrs.get("Labels")  # left as it was
    finally:
        stray.remove(force=True)


async def test_without_quotas_a_removed_volume_is_said_too(
    settings: Settings, docker_client: docker.DockerClient
) -> None:
    async with serve(settings.with_overrides(disk_quotas="none")) as api:
        _, headers = await api.user(tier="test")
        made = await api.create(headers, name="plain")
        _remove_container(docker_client, made)
        await wait_for(lambda: _missing(api, headers, made["db_id"]), what="the row to be missing")
        docker_client.volumes.get(made["volume"]).remove()
        status, body = await _start(api, headers, made)
        assert status == 200 and body["volume_kept"] is False, body
        assert "starts empty" in body["warning"]
        labels = docker_client.volumes.get(made["volume"]).attrs["Labels"] or {}
        assert labels.get("corral.managed") == "true"


async def _missing(api: Api, headers: dict[str, str], db_id: str) -> bool:
    return (await api.get(headers, db_id))["status"] == "missing"


async def test_the_docker_service_never_creates_a_sandbox_on_a_missing_volume(
    settings: Settings, docker_client: docker.DockerClient
) -> None:
    row = Container(
        id=str(uuid.uuid4()),
        user_id="nobody",
        name="orphan",
        image="corral/busybox",
        memory_mb=128,
        cpu_shares=500,
        disk_mb=64,
        runtime=settings.runtime,
        environment={},
    )
    spec = sandbox_spec(row, settings, str(settings.instance_label), "corral/busybox:latest")
    service = DockerService(None)
    try:
        with pytest.raises(VolumeGone):
            await service.create_container(spec)
        assert _no_volume(docker_client, row.volume_name)
        assert not docker_client.containers.list(all=True, filters={"name": row.docker_name})
    finally:
        service.close()
        # Had it been created, neither would carry the test's label: remove them by name.
        for container in docker_client.containers.list(all=True, filters={"name": row.docker_name}):
            container.remove(force=True)
        if not _no_volume(docker_client, row.volume_name):
            docker_client.volumes.get(row.volume_name).remove(force=True)
