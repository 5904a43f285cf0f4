"""PATCH /api/containers/{id}/settings: renames, rebuilds, disk quotas, and their failures."""

from __future__ import annotations

import asyncio
from typing import Any

import docker
import pytest

from backend.docker_service import DockerService
from backend.errors import DockerError
from tests.conftest import Api, containers_of, sh


async def _patch(api: Api, headers: dict[str, str], ident: str, **body: Any) -> tuple[int, Any]:
    resp = await api.client.patch(f"/api/containers/{ident}/settings", json=body, headers=headers)
    return resp.status, await resp.json()


async def test_rename_alone_keeps_the_container_running(
    api: Api, docker_client: docker.DockerClient
) -> None:
    _, headers = await api.user(tier="test")
    made = await api.create(headers, name="before")
    started = docker_client.api.inspect_container(made["id"])["State"]["StartedAt"]
    status, body = await _patch(api, headers, made["id"], name="after")
    assert status == 200
    assert body["message"] == "settings updated" and body["restarted"] is False
    assert body["container"]["name"] == "after"
    assert body["container"]["id"] == made["id"]
    assert docker_client.api.inspect_container(made["id"])["State"]["StartedAt"] == started
    assert (await api.get(headers, made["db_id"]))["name"] == "after"

    await api.create(headers, name="other")
    status, body = await _patch(api, headers, made["id"], name="other")
    assert status == 409 and body["error"] == "container with this name already exists"
    status, body = await _patch(api, headers, made["id"], name="-bad")
    assert status == 400 and body["error"] == "invalid container name"
    status, body = await _patch(api, headers, made["id"], memory_mb=99999)
    assert status == 400 and body["field"] == "memory_mb"
    status, body = await _patch(api, headers, made["id"], tier="pro")
    assert status == 400 and body["error"] == "invalid parameters"
    assert (await api.get(headers, made["db_id"]))["resources"]["memory_mb"] == 128


async def test_memory_change_rebuilds_a_running_container_and_keeps_data(
    api: Api, docker_client: docker.DockerClient
) -> None:
    _, headers = await api.user(tier="test")
    made = await api.create(headers)
    assert sh(docker_client, made["id"], "echo precious > /home/user/keep")[0] == 0
    status, body = await _patch(api, headers, made["id"], memory_mb=256, cpu_shares=750)
    assert status == 200, body
    assert body["restarted"] is True
    new = body["container"]
    assert new["id"] != made["id"] and new["status"] == "running"
    assert new["resources"] == {"memory_mb": 256, "cpu_shares": 750, "disk_mb": 64}
    host = docker_client.api.inspect_container(new["id"])["HostConfig"]
    assert host["Memory"] == 256 * 1024 * 1024 and host["NanoCpus"] == 750_000_000
    assert sh(docker_client, new["id"], "cat /home/user/keep") == (0, "precious\n")
    assert [c.id for c in containers_of(docker_client, made["db_id"])] == [new["id"]]
    assert (await api.get(headers, made["db_id"]))["id"] == new["id"]


async def test_stopped_container_gets_new_limits_at_next_start(
    api: Api, docker_client: docker.DockerClient
) -> None:
    _, headers = await api.user(tier="test")
    made = await api.create(headers)
    sh(docker_client, made["id"], "echo kept > /home/user/f")
    await api.client.post(f"/api/containers/{made['id']}/stop", headers=headers)
    status, body = await _patch(api, headers, made["id"], memory_mb=192)
    assert status == 200 and body["restarted"] is False
    assert body["container"]["status"] == "stopped"
    assert body["container"]["resources"]["memory_mb"] == 192
    resp = await api.client.post(f"/api/containers/{made['db_id']}/start", headers=headers)
    started = await resp.json()
    assert resp.status == 200 and started["status"] == "running"
    host = docker_client.api.inspect_container(started["id"])["HostConfig"]
    assert host["Memory"] == 192 * 1024 * 1024
    assert sh(docker_client, started["id"], "cat /home/user/f") == (0, "kept\n")
    assert len(containers_of(docker_client, made["db_id"])) == 1


async def test_disk_quota_holds_and_grows_with_data_kept(
    api: Api, docker_client: docker.DockerClient
) -> None:
    _, headers = await api.user(tier="test")
    made = await api.create(headers, disk_mb=64)
    code, out = sh(docker_client, made["id"], "df -m /home/user | tail -1")
    assert code == 0
    size_mb = int(out.split()[1])
    assert 48 <= size_mb <= 64, out
    code, out = sh(
        docker_client,
        made["id"],
        "dd if=/dev/zero of=/home/user/big bs=1M count=100 2>&1; echo rc=$?",
    )
    assert "No space left on device" in out, out
    assert "rc=0" not in out
    sh(docker_client, made["id"], "rm /home/user/big; echo data > /home/user/f")

    status, body = await _patch(api, headers, made["id"], disk_mb=128)
    assert status == 200 and body["restarted"] is True, body
    new_id = body["container"]["id"]
    code, out = sh(docker_client, new_id, "df -m /home/user | tail -1")
    assert int(out.split()[1]) > 100, out
    assert sh(docker_client, new_id, "cat /home/user/f") == (0, "data\n")
    code, out = sh(
        docker_client, new_id, "dd if=/dev/zero of=/home/user/mid bs=1M count=90 2>&1; echo rc=$?"
    )
    assert "rc=0" in out, out


async def test_shrinking_below_the_data_is_refused_and_changes_nothing(
    api: Api, docker_client: docker.DockerClient
) -> None:
    _, headers = await api.user(tier="test")
    made = await api.create(headers, disk_mb=128)
    sh(docker_client, made["id"], "head -c 62914560 /dev/urandom > /home/user/blob")
    before = await api.get(headers, made["db_id"])
    status, body = await _patch(api, headers, made["id"], disk_mb=32)
    assert status == 400
    assert body["error"] == "invalid parameters" and body["field"] == "disk_mb"
    assert "MB of data" in body["message"]
    after = await api.get(headers, made["db_id"])
    assert after == before
    assert docker_client.containers.get(made["id"]).status == "running"
    code, out = sh(docker_client, made["id"], "ls -l /home/user/blob")
    assert code == 0 and str(60 * 1024 * 1024) in out

    # A decrease that fits is applied, and the data survives it.
    sh(docker_client, made["id"], "rm /home/user/blob; echo small > /home/user/s")
    status, body = await _patch(api, headers, made["id"], disk_mb=48)
    assert status == 200, body
    new_id = body["container"]["id"]
    code, out = sh(docker_client, new_id, "df -m /home/user | tail -1; cat /home/user/s")
    assert "small" in out and int(out.split()[1]) <= 48


async def test_failed_rebuild_puts_the_old_container_back(
    api: Api, docker_client: docker.DockerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, headers = await api.user(tier="test")
    made = await api.create(headers)
    sh(docker_client, made["id"], "echo safe > /home/user/f")
    before = await api.get(headers, made["db_id"])

    async def broken_create(self: DockerService, spec: Any) -> str:
        raise DockerError("cannot create: /var/lib/docker/secret path at 10.0.0.7:2375")

    monkeypatch.setattr(DockerService, "create_container", broken_create)
    status, body = await _patch(api, headers, made["id"], memory_mb=256)
    assert status == 500
    assert body["error"] == "failed to update settings"
    assert "/var/lib" not in body["message"] and "10.0.0.7" not in body["message"]
    assert await api.get(headers, made["db_id"]) == before
    old = docker_client.containers.get(made["id"])
    assert old.status == "running"
    assert old.name == f"corral-{made['db_id']}"
    assert sh(docker_client, made["id"], "cat /home/user/f") == (0, "safe\n")
    assert len(containers_of(docker_client, made["db_id"])) == 1


async def test_concurrent_settings_start_and_stop_end_consistent(
    api: Api, docker_client: docker.DockerClient
) -> None:
    _, headers = await api.user(tier="test")
    made = await api.create(headers)
    sh(docker_client, made["id"], "echo survive > /home/user/f")
    db_id = made["db_id"]

    async def call(i: int) -> int:
        if i % 3 == 0:
            resp = await api.client.patch(
                f"/api/containers/{db_id}/settings",
                json={"memory_mb": 128 + 64 * (i % 4)},
                headers=headers,
            )
        elif i % 3 == 1:
            resp = await api.client.post(f"/api/containers/{db_id}/stop", headers=headers)
        else:
            resp = await api.client.post(f"/api/containers/{db_id}/start", headers=headers)
        await resp.read()
        return resp.status

    statuses = await asyncio.gather(*(call(i) for i in range(20)))
    assert all(s == 200 for s in statuses), statuses
    final = await api.get(headers, db_id)
    dockers = containers_of(docker_client, db_id)
    assert len(dockers) == 1
    assert dockers[0].id == final["id"]
    docker_running = dockers[0].status == "running"
    assert final["status"] == ("running" if docker_running else "stopped")
    if not docker_running:
        await api.client.post(f"/api/containers/{db_id}/start", headers=headers)
        final = await api.get(headers, db_id)
    assert sh(docker_client, final["id"], "cat /home/user/f") == (0, "survive\n")
