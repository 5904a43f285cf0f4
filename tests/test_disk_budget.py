"""Kept volumes count against the tier's disk: a user's containers' ``disk_mb`` and kept
volumes' sizes together stay within the tier's disk (``disk_total_mb``; by default the tier's
containers times its disk maximum). Over it, a create or a larger disk is 400 ``invalid
parameters`` (field ``disk_mb``) saying that kept volumes count and how to reclaim them; an
operator lists everyone's kept volumes and reclaims them, image and loop mount included."""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

import docker

from backend.settings import DEFAULT_TIERS, Range, Settings, TierLimits
from tests.conftest import Api, serve
from tests.test_cli import corral, remote

# Two containers of 16-64 MB: 128 MB of disk in all, by default.
SMALL = TierLimits(
    name="small",
    containers=2,
    memory_mb=Range(64, 512),
    cpu_shares=Range(100, 1000),
    disk_mb=Range(16, 64),
    default_memory_mb=128,
    default_cpu_shares=500,
    default_disk_mb=64,
)
TIGHT = TierLimits(
    **{**SMALL.__dict__, "name": "tight", "default_disk_mb": 32, "disk_total_mb": 80}
)


def _with_tiers(settings: Settings) -> Settings:
    return settings.with_overrides(tiers={**DEFAULT_TIERS, "small": SMALL, "tight": TIGHT})


async def _create(api: Api, headers: dict[str, str], **body: Any) -> tuple[int, dict[str, Any]]:
    body.setdefault("image", "corral/busybox")
    resp = await api.client.post("/api/containers?wait=true", json=body, headers=headers)
    return resp.status, await resp.json()


async def _delete_keeping(api: Api, headers: dict[str, str], made: dict[str, Any]) -> None:
    resp = await api.client.delete(
        f"/api/containers/{made['db_id']}?keep_volume=true", headers=headers
    )
    assert resp.status == 200, await resp.text()


async def _me(api: Api, headers: dict[str, str]) -> dict[str, Any]:
    resp = await api.client.get("/api/me", headers=headers)
    body: dict[str, Any] = await resp.json()
    return body


async def test_create_and_delete_keeping_volumes_until_refused(settings: Settings) -> None:
    async with serve(_with_tiers(settings)) as api:
        _, headers = await api.user(tier="small")
        me = await _me(api, headers)
        assert me["limits"]["disk_total_mb"] == 128
        rounds = 0
        while True:
            status, body = await _create(api, headers, name=f"round-{rounds}")
            if status != 201:
                break
            await _delete_keeping(api, headers, body)
            rounds += 1
            assert rounds < 10, "kept volumes never counted"
        # Two containers' worth of disk is kept (64 MB each): the third is refused.
        assert rounds == 2
        assert status == 400, body
        assert body["error"] == "invalid parameters" and body["field"] == "disk_mb"
        assert "kept volumes count" in body["message"]
        assert "DELETE /api/volumes/{name}" in body["message"]
        assert "corral volumes rm" in body["message"]
        assert (body["limit_mb"], body["used_mb"], body["kept_mb"]) == (128, 128, 128)
        assert body["tier"] == "small"
        # Refused: nothing changed.
        resp = await api.client.get("/api/containers", headers=headers)
        assert (await resp.json())["count"] == 0
        me = await _me(api, headers)
        assert me["usage"] == {
            "containers": 0,
            "disk_mb": 128,
            "kept_volumes": 2,
            "kept_volumes_mb": 128,
        }

        # Attaching a kept volume frees what it counted for: it fits.
        volumes = (await (await api.client.get("/api/volumes", headers=headers)).json())["volumes"]
        status, attached = await _create(api, headers, name="again", volume=volumes[0]["name"])
        assert status == 201, attached
        # Reclaiming the other one makes room for a new container.
        resp = await api.client.delete(f"/api/volumes/{volumes[1]['name']}", headers=headers)
        assert resp.status == 200
        status, body = await _create(api, headers, name="fresh")
        assert status == 201, body
        assert (await _me(api, headers))["usage"]["disk_mb"] == 128


async def test_a_larger_disk_counts_too(settings: Settings) -> None:
    async with serve(_with_tiers(settings)) as api:
        _, headers = await api.user(tier="tight")  # 80 MB in all
        status, first = await _create(api, headers, name="first")
        assert status == 201, first
        status, second = await _create(api, headers, name="second")
        assert status == 201, second
        await _delete_keeping(api, headers, second)  # 32 + 32 kept
        path = f"/api/containers/{first['db_id']}/settings"
        resp = await api.client.patch(path, json={"disk_mb": 64}, headers=headers)
        body = await resp.json()
        assert resp.status == 400, body
        assert body["field"] == "disk_mb" and "kept volumes count" in body["message"]
        assert (body["limit_mb"], body["used_mb"]) == (80, 64)
        row = await api.get(headers, first["db_id"])
        assert row["resources"]["disk_mb"] == 32 and row["id"] == first["id"]  # untouched
        resp = await api.client.patch(path, json={"disk_mb": 48}, headers=headers)
        assert resp.status == 200, await resp.text()  # 48 + 32 = 80: fits exactly


async def test_concurrent_creates_never_pass_the_disk_together(settings: Settings) -> None:
    async with serve(_with_tiers(settings)) as api:
        _, headers = await api.user(tier="tight")  # 80 MB: one 64 MB container, not two
        results = await asyncio.gather(
            *(
                api.client.post(
                    "/api/containers",
                    json={"image": "corral/busybox", "name": f"race-{i}", "disk_mb": 64},
                    headers=headers,
                )
                for i in range(4)
            )
        )
        statuses = sorted(resp.status for resp in results)
        assert statuses == [202, 400, 400, 400]
        assert (await _me(api, headers))["usage"]["disk_mb"] == 64


async def test_an_operator_lists_and_reclaims_anyones_kept_volumes(
    api: Api, settings: Settings, docker_client: docker.DockerClient
) -> None:
    owner, headers = await api.user(tier="test")
    _, admin = await api.user(admin=True)
    made = await api.create(headers, name="left-behind")
    await _delete_keeping(api, headers, made)
    image = settings.volumes_dir / f"{made['db_id']}.img"
    mountpoint = settings.volumes_dir / made["db_id"]
    assert image.exists() and mountpoint.is_mount()

    listed = await corral(*remote(api, admin), "volumes", "--all")
    assert listed.code == 0, listed.err
    assert "OWNER" in listed.out and owner.id in listed.out and made["volume"] in listed.out
    resp = await api.client.get("/api/volumes?all=true", headers=admin)
    [volume] = (await resp.json())["volumes"]
    assert volume["owner_id"] == owner.id

    removed = await corral(*remote(api, admin), "volumes", "rm", made["volume"])
    assert removed.code == 0, removed.err
    # The volume went whole: the Docker volume, the loop mount, the image, the record.
    assert not image.exists() and not mountpoint.exists()
    losetup = subprocess.run(["losetup", "-j", str(image)], capture_output=True, text=True)
    assert losetup.stdout == ""
    assert not docker_client.volumes.list(filters={"name": made["volume"]})
    assert (await _me(api, headers))["usage"]["disk_mb"] == 0
