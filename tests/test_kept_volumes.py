"""Kept volumes: a delete with keep_volume records the volume; ``GET /api/volumes`` lists it,
``DELETE /api/volumes/{name}`` removes it, and a create with ``"volume": NAME`` attaches it to a
new container with its data. On the real engine, with ext4-backed volumes."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import docker
import pytest
from sqlalchemy import text

from backend.db.engine import make_engine
from backend.db.schema import upgrade_schema
from backend.settings import Settings
from corral.client import InvalidParameters, VolumeNotFound
from tests.conftest import Api, serve, sh
from tests.test_cli import corral, remote

VOLUME_KEYS = {
    "name",
    "owner_id",
    "size_mb",
    "used_mb",
    "container_name",
    "container_db_id",
    "kept_at",
}


async def keep(api: Api, headers: dict[str, str], made: dict[str, Any]) -> str:
    resp = await api.client.delete(
        f"/api/containers/{made['id']}?keep_volume=true", headers=headers
    )
    assert resp.status == 200, await resp.text()
    return str(made["volume"])


async def test_a_kept_volume_is_listed_and_reattached_with_its_data(
    api: Api, settings: Settings, docker_client: docker.DockerClient
) -> None:
    _, headers = await api.user(tier="test")
    _, other = await api.user(tier="test")
    made = await api.create(headers, name="first", disk_mb=64)
    assert sh(docker_client, made["id"], "head -c 5000000 /dev/zero > /home/user/blob")[0] == 0
    assert sh(docker_client, made["id"], "echo precious > /home/user/f")[0] == 0
    name = await keep(api, headers, made)

    async with api.corral(headers) as client:
        listing = await client.volumes()
        assert listing["count"] == 1
        [volume] = listing["volumes"]
        assert set(volume) == VOLUME_KEYS
        assert volume["name"] == name
        assert (volume["container_name"], volume["container_db_id"]) == ("first", made["db_id"])
        assert volume["size_mb"] == 64
        assert volume["used_mb"] is not None and 5 <= volume["used_mb"] < 20
    async with api.corral(other) as client:
        assert (await client.volumes())["volumes"] == []  # nobody else sees it

    async with api.corral(headers) as client:
        again = await client.create_container(
            "corral/busybox", name="second", volume=name, wait=True
        )
        assert again["volume"] == name
        assert again["resources"]["disk_mb"] == 64  # the volume's size, by default
        assert sh(docker_client, again["id"], "cat /home/user/f") == (0, "precious\n")
        assert (await client.volumes())["count"] == 0  # attached: no longer kept
        with pytest.raises(VolumeNotFound):
            await client.create_container("corral/busybox", name="third", volume=name)

        # Deleted without keeping, the reattached volume goes for good.
        await client.delete_container(again["id"])
        assert not (settings.volumes_dir / f"{made['db_id']}.img").exists()
        with pytest.raises(docker.errors.NotFound):
            docker_client.volumes.get(name)


async def test_a_larger_disk_grows_the_volume_and_a_smaller_one_is_refused(
    api: Api, docker_client: docker.DockerClient
) -> None:
    _, headers = await api.user(tier="test")
    made = await api.create(headers, name="small", disk_mb=64)
    assert sh(docker_client, made["id"], "echo kept > /home/user/f")[0] == 0
    name = await keep(api, headers, made)
    async with api.corral(headers) as client:
        with pytest.raises(InvalidParameters) as refused:
            await client.create_container("corral/busybox", volume=name, disk_mb=32)
        assert refused.value.field == "disk_mb"
        assert "64" in refused.value.message
        assert (await client.volumes())["count"] == 1  # a refused create changes nothing

        bigger = await client.create_container(
            "corral/busybox", name="bigger", volume=name, disk_mb=128, wait=True
        )
    assert bigger["resources"]["disk_mb"] == 128
    assert sh(docker_client, bigger["id"], "cat /home/user/f") == (0, "kept\n")
    code, out = sh(docker_client, bigger["id"], "df -m /home/user | tail -1")
    assert code == 0
    assert 100 < int(out.split()[1]) <= 128


async def test_deleting_a_kept_volume(
    api: Api, settings: Settings, docker_client: docker.DockerClient
) -> None:
    _, headers = await api.user(tier="test")
    _, other = await api.user(tier="test")
    made = await api.create(headers, name="doomed")
    name = await keep(api, headers, made)
    image = settings.volumes_dir / f"{made['db_id']}.img"
    assert image.exists()

    unknown = await api.client.delete("/api/volumes/corral-vol-nothing", headers=other)
    foreign = await api.client.delete(f"/api/volumes/{name}", headers=other)
    assert foreign.status == unknown.status == 404
    assert (await foreign.json())["error"] == "volume not found"
    assert await foreign.read() == await unknown.read()
    assert image.exists()

    async with api.corral(headers) as client:
        assert await client.delete_volume(name) == {"message": "volume deleted", "name": name}
        assert (await client.volumes())["count"] == 0
        with pytest.raises(VolumeNotFound):
            await client.delete_volume(name)
        with pytest.raises(VolumeNotFound):
            await client.create_container("corral/busybox", volume=name)
    assert not image.exists()
    assert not os.path.exists(settings.volumes_dir / made["db_id"])
    with pytest.raises(docker.errors.NotFound):
        docker_client.volumes.get(name)


async def test_corral_volumes(api: Api) -> None:
    _, headers = await api.user(tier="test")
    made = await api.create(headers, name="cli-kept")
    name = await keep(api, headers, made)
    listed = await corral(*remote(api, headers), "volumes")
    assert listed.code == 0, listed.err
    assert name in listed.out and "cli-kept" in listed.out
    as_json = await corral(*remote(api, headers), "volumes", "--json")
    assert [v["name"] for v in as_json.json()["volumes"]] == [name]
    removed = await corral(*remote(api, headers), "volumes", "rm", name)
    assert removed.code == 0, removed.err
    assert removed.out.strip() == f"volume deleted: {name}"
    again = await corral(*remote(api, headers), "volumes", "rm", name)
    assert again.code == 1
    assert "no kept volume" in again.err


async def test_rows_older_than_the_volume_column_keep_their_derived_volume(
    settings: Settings,
) -> None:
    """A database made before containers recorded their volume (and before migrations) gets
    the derived name."""
    settings.data_dir.mkdir(parents=True)
    engine = make_engine(settings.resolved_database_url)
    try:
        await upgrade_schema(engine)
        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE containers DROP COLUMN volume"))
            # Nor had it anything of later revisions (0002: engines).
            await conn.execute(text("DROP INDEX ix_containers_engine"))
            await conn.execute(text("ALTER TABLE containers DROP COLUMN engine"))
            await conn.execute(text("ALTER TABLE kept_volumes DROP COLUMN engine"))
            await conn.execute(text("DROP TABLE engines"))
            await conn.execute(text("DROP TABLE alembic_version"))
            await conn.execute(text("DROP TABLE shared_values"))  # made by later revisions
            await conn.execute(text("DROP TABLE rate_buckets"))
            await conn.execute(
                text(
                    "INSERT INTO users (id, username, tier, is_admin, is_guest, created_at) "
                    "VALUES ('u1', 'old', 'free', false, false, '2025-01-01T00:00:00.000Z')"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO containers (id, user_id, name, image, role, status, memory_mb, "
                    "cpu_shares, disk_mb, runtime, environment, labels, created_at, "
                    "needs_recreate, role_state) VALUES ('c1', 'u1', 'old', 'corral/busybox', "
                    "'barebone', 'stopped', 512, 500, 2048, 'runsc', '{}', '{}', "
                    "'2025-01-01T00:00:00.000Z', false, 'none')"
                )
            )
        await upgrade_schema(engine)
        async with engine.connect() as conn:
            volume = (await conn.execute(text("SELECT volume FROM containers"))).scalar_one()
        assert volume == "corral-vol-c1"
    finally:
        await engine.dispose()


async def test_a_kept_volume_is_measured_unmounted_and_mounted_again_at_start(
    settings: Settings, docker_client: docker.DockerClient
) -> None:
    async with serve(settings) as api:
        _, headers = await api.user("keeper", tier="test")
        made = await api.create(headers, name="measured")
        assert sh(docker_client, made["id"], "head -c 9000000 /dev/zero > /home/user/b")[0] == 0
        name = await keep(api, headers, made)
        os.sync()  # written out, as the unmount below will: df's figure before is not settled
        async with api.corral(headers) as client:
            mounted = (await client.volumes())["volumes"][0]["used_mb"]
        mountpoint = settings.volumes_dir / made["db_id"]
        subprocess.run(["umount", str(mountpoint)], check=True)  # as a reboot leaves it
        async with api.corral(headers) as client:
            # Read from the image itself (its superblock), the same figure as df's.
            assert (await client.volumes())["volumes"][0]["used_mb"] == mounted
    assert mounted is not None and mounted >= 9

    async with serve(settings) as api:
        assert os.path.ismount(mountpoint)  # kept volumes are mounted again too
        async with api.corral(headers) as client:
            again = await client.create_container("corral/busybox", volume=name, wait=True)
        code, out = sh(docker_client, again["id"], "wc -c < /home/user/b")
        assert (code, out.strip()) == (0, "9000000")
