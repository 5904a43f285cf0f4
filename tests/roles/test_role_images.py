"""Role images on the real engine: sandboxes start from them, rebuilds reuse them, a missing one
is built once in the background, a broken role fails with the package named and a retry works,
an image removed by hand is rebuilt, a changed catalog gives a new image and the stale one goes,
and a backend killed mid-build leaves no half-tagged image."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import docker
import pytest

from backend.admin import Admin
from backend.containers.role_image_identity import BUILD_PREFIX, LABEL_BASE_ID, LABEL_PACKAGES
from backend.settings import Settings, load_settings
from backend.state import ENGINES
from devkit.backend_process import BackendProcess
from devkit.waiting import wait_for
from tests.conftest import Api, containers_of, sh
from tests.roles.conftest import (
    DEBIAN,
    OPERATOR_ROLES,
    SIZE,
    create,
    events_of,
    home_snapshot,
    image_of,
    messages,
    role_image_ids,
    role_images,
    wait_role,
)
from tests.test_terminal import _open


async def test_python_sandbox_starts_from_its_role_image_and_rebuilds_reuse_it(
    rapi: Api, docker_client: docker.DockerClient
) -> None:
    user, headers = await rapi.user(tier="test")
    made = await create(rapi, headers, "python")
    db_id = made["db_id"]
    # The role is there the moment the sandbox runs: nothing installs in the background.
    assert (made["status"], made["role_state"], made["role_error"]) == (
        "running",
        "installed",
        None,
    )
    (python_image,) = role_images(docker_client, "python")
    assert image_of(docker_client, made["id"]) == python_image.id
    assert python_image.labels[LABEL_BASE_ID] == docker_client.images.get(DEBIAN).id
    assert sh(docker_client, made["id"], 'python3 -c "print(6*7)"') == (0, "42\n")
    term = await _open(rapi, headers, made["id"])
    await term.send("git --version && echo usable-$(id -u)\n")
    await term.expect(r"git version 2\.\d+[\s\S]*usable-0")
    await term.ws.close()
    started = [p for t, p in await events_of(rapi, user.id, db_id) if t == "container_started"]
    assert started[0]["message"] == "role packages installed"

    # A disk change rebuilds the sandbox from the same image: nothing is reinstalled, the
    # contract's messages are sent at once, and /home/user is untouched.
    marker = uuid.uuid4().hex
    assert sh(docker_client, made["id"], f"echo {marker} > /home/user/marker.txt")[0] == 0
    before = home_snapshot(docker_client, made["id"])
    resp = await rapi.client.patch(
        f"/api/containers/{db_id}/settings",
        json={"disk_mb": 128, "memory_mb": 768},
        headers=headers,
    )
    body = await resp.json()
    assert resp.status == 200, body
    rebuilt = body["container"]
    assert body["restarted"] is True and rebuilt["id"] != made["id"]
    assert (rebuilt["status"], rebuilt["role_state"]) == ("running", "installed")
    assert image_of(docker_client, rebuilt["id"]) == python_image.id
    assert sh(docker_client, rebuilt["id"], 'python3 -c "print(1)"') == (0, "1\n")
    assert sh(docker_client, rebuilt["id"], "cat /home/user/marker.txt") == (0, f"{marker}\n")
    assert home_snapshot(docker_client, rebuilt["id"]) == before
    said = messages(await events_of(rapi, user.id, db_id))
    at = said.index(("container_updated", "role packages reinstalling"))
    assert said[at + 1] == ("container_updated", "role packages restored")
    assert not [
        p for t, p in await events_of(rapi, user.id, db_id) if p.get("stage") == "role_install"
    ]

    # Automatic recreation of a container Docker lost starts from the image too.
    docker_client.containers.get(rebuilt["id"]).remove(force=True)

    async def missing() -> bool:
        return (await rapi.get(headers, db_id))["status"] == "missing"

    await wait_for(missing, 15, what="the row to become missing")
    resp = await rapi.client.post(f"/api/containers/{db_id}/start", headers=headers)
    body = await resp.json()
    assert (resp.status, body["recreated"]) == (200, True), body
    again = await rapi.get(headers, db_id)
    assert (again["status"], again["role_state"]) == ("running", "installed")
    assert sh(docker_client, again["id"], "cat /home/user/marker.txt") == (0, f"{marker}\n")
    said = messages(await events_of(rapi, user.id, db_id))
    assert said[-2:] == [
        ("container_started", "role packages reinstalling"),
        ("container_updated", "role packages restored"),
    ]


async def test_a_missing_role_image_is_built_once_in_the_background_for_two_creates(
    rapi: Api,
    docker_client: docker.DockerClient,
    fresh_role: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    role = fresh_role(["jq"])
    docker = rapi.app[ENGINES].first.docker
    builds: list[str] = []
    original = docker.create_build_container

    async def counted(name: str, *args: Any, **kwargs: Any) -> str:
        builds.append(name)
        return await original(name, *args, **kwargs)

    monkeypatch.setattr(docker, "create_build_container", counted)
    user, headers = await rapi.user(tier="test")
    made = []
    for _ in range(2):
        resp = await rapi.client.post(
            "/api/containers", json={"image": DEBIAN, "role": role, **SIZE}, headers=headers
        )
        made.append(await resp.json())
        assert resp.status == 202, made[-1]
    done = [await wait_role(rapi, headers, m["db_id"], ("installed", "failed")) for m in made]
    assert [(d["status"], d["role_state"]) for d in done] == [("running", "installed")] * 2
    assert len(builds) == 1 and builds[0].startswith(f"{BUILD_PREFIX}{role}-")
    (image,) = role_images(docker_client, role)
    for container in done:
        assert image_of(docker_client, container["id"]) == image.id
        assert sh(docker_client, container["id"], "echo '{\"a\": 7}' | jq .a") == (0, "7\n")
    # While the image was built, each sandbox said so: configuring, with the build's progress.
    for container in made:
        events = await events_of(rapi, user.id, container["db_id"])
        updated = [p for t, p in events if t == "container_updated"]
        assert (updated[0]["status"], updated[0]["role_state"]) == ("configuring", "installing")
        stages = [p["stage"] for t, p in events if t == "container_progress"]
        assert "role_image" in stages, stages
        assert stages[-1] == "running"
    assert not docker_client.containers.list(all=True, filters={"name": f"{BUILD_PREFIX}{role}-"})


async def test_a_role_whose_package_is_missing_fails_then_a_retry_after_the_fix_works(
    rapi: Api,
    roles_file: Path,
    docker_client: docker.DockerClient,
    fresh_role: Callable[..., str],
) -> None:
    role = fresh_role(["jq", "corral-no-such-package"])
    user, headers = await rapi.user(tier="test")
    made = await create(rapi, headers, role)
    # The sandbox runs without its role (from the base image), and says why.
    assert (made["status"], made["role_state"]) == ("running", "failed"), made
    assert "corral-no-such-package" in made["role_error"]
    assert image_of(docker_client, made["id"]) == docker_client.images.get(DEBIAN).id
    assert sh(docker_client, made["id"], "echo still-here > /home/user/kept") == (0, "")
    events = await events_of(rapi, user.id, made["db_id"])
    final = [p for t, p in events if t == "container_progress" and p.get("complete")][-1]
    assert final["stage"] == "role_failed" and "corral-no-such-package" in final["error"]
    assert role_images(docker_client, role) == []

    # The operator fixes the role; the user retries: the sandbox is recreated from the new
    # image, keeping the volume.
    roles_file.write_text(
        OPERATOR_ROLES + f'\n[roles.{role}]\npackages = ["jq"]\nimages = ["{DEBIAN}"]\n'
    )
    url = f"/api/containers/{made['db_id']}/role/reinstall"
    resp = await rapi.client.post(url, headers=headers)
    body = await resp.json()
    assert resp.status == 202, body
    assert (body["status"], body["role_state"], body["role_error"]) == (
        "configuring",
        "pending",
        None,
    )
    fixed = await wait_role(rapi, headers, made["db_id"], ("installed", "failed"))
    assert (fixed["status"], fixed["role_state"], fixed["role_error"]) == (
        "running",
        "installed",
        None,
    )
    assert fixed["id"] != made["id"]
    assert sh(docker_client, fixed["id"], "jq --version")[0] == 0
    assert sh(docker_client, fixed["id"], "cat /home/user/kept") == (0, "still-here\n")
    assert [c.id for c in containers_of(docker_client, made["db_id"])] == [fixed["id"]]


async def test_a_changed_catalog_gives_a_new_image_and_one_removed_by_hand_is_rebuilt(
    rapi: Api,
    roles_file: Path,
    docker_client: docker.DockerClient,
    fresh_role: Callable[..., str],
) -> None:
    role = fresh_role(["jq"])
    _, headers = await rapi.user(tier="test")
    made = await create(rapi, headers, role)
    assert made["role_state"] == "installed"
    (first,) = role_images(docker_client, role)

    # The catalog changes the role: a reinstall builds a new image and the stale one goes.
    roles_file.write_text(
        OPERATOR_ROLES + f'\n[roles.{role}]\npackages = ["jq", "tree"]\nimages = ["{DEBIAN}"]\n'
    )
    resp = await rapi.client.post(
        f"/api/containers/{made['db_id']}/role/reinstall", headers=headers
    )
    assert resp.status == 202
    changed = await wait_role(rapi, headers, made["db_id"], ("installed", "failed"))
    assert changed["role_state"] == "installed", changed

    def stale_gone() -> bool:  # pruned just after the switch, outside the container's lock
        ids = role_image_ids(docker_client, role)
        return len(ids) == 1 and ids != [first.id]

    await wait_for(stale_gone, 15, what="the stale role image to be removed")
    (second,) = role_images(docker_client, role)
    assert second.id != first.id
    assert second.labels[LABEL_PACKAGES] != first.labels[LABEL_PACKAGES]
    assert sh(docker_client, changed["id"], "tree -d /etc/apt | head -1") == (0, "/etc/apt\n")

    # Removed by hand (and its sandbox with it): the next start builds it again; never a 500.
    docker_client.containers.get(changed["id"]).remove(force=True)
    docker_client.images.remove(second.id, force=True)

    async def missing() -> bool:
        return (await rapi.get(headers, made["db_id"]))["status"] == "missing"

    await wait_for(missing, 15, what="the row to become missing")
    resp = await rapi.client.post(f"/api/containers/{made['db_id']}/start", headers=headers)
    body = await resp.json()
    assert (resp.status, body["recreated"]) == (200, True), body
    again = await rapi.get(headers, made["db_id"])
    assert (again["status"], again["role_state"]) == ("running", "installed")
    (third,) = role_images(docker_client, role)
    assert image_of(docker_client, again["id"]) == third.id
    assert sh(docker_client, again["id"], "tree --version")[0] == 0


async def test_an_unknown_role_is_refused(rapi: Api) -> None:
    _, headers = await rapi.user(tier="test")
    resp = await rapi.client.post(
        "/api/containers", json={"image": DEBIAN, "role": "cobol"}, headers=headers
    )
    body = await resp.json()
    assert (resp.status, body["error"]) == (400, "unsupported role")


@pytest.fixture
def backend(
    tmp_path: Path, instance: str, settings: Settings, roles_file: Path, role_cache: Path
) -> BackendProcess:
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "config.toml").write_text(
        f'stop_timeout_s = 2\nroles_file = "{roles_file}"\npackage_cache_dir = "{role_cache}"\n'
    )
    return BackendProcess(data_dir, instance)


async def test_a_backend_killed_during_an_image_build_leaves_no_half_tagged_image(
    backend: BackendProcess,
    docker_client: docker.DockerClient,
    fresh_role: Callable[..., str],
) -> None:
    role = fresh_role(["python3"])  # long enough to be caught mid-build
    async with Admin(load_settings(data_dir=backend.data_dir)) as admin:
        token = await admin.local_admin_jwt()
    headers = {"Authorization": f"Bearer {token}"}
    await asyncio.to_thread(backend.start)
    try:
        async with aiohttp.ClientSession(base_url=backend.url, headers=headers) as http:
            body = {"image": DEBIAN, "role": role, **SIZE}
            async with http.post("/api/containers", json=body) as resp:
                made = await resp.json()
                assert resp.status == 202, made

            def building() -> bool:
                found = docker_client.api.containers(
                    all=True, filters={"name": f"{BUILD_PREFIX}{role}-"}
                )
                return any(c["State"] == "running" for c in found)

            await wait_for(building, 30, what="the role image build to run")
            backend.kill()
        assert role_images(docker_client, role) == []
        assert docker_client.images.list(filters={"reference": f"corral/role-{role}"}) == []

        # The next start sweeps the orphaned build container; the interrupted create says so,
        # and a start finishes it from a fresh build.
        await asyncio.to_thread(backend.start)
        async with aiohttp.ClientSession(base_url=backend.url, headers=headers) as http:

            async def row() -> dict[str, Any]:
                async with http.get(f"/api/containers/{made['db_id']}") as resp:
                    found: dict[str, Any] = await resp.json()
                    return found

            async def settled() -> bool:
                orphans = docker_client.api.containers(
                    all=True, filters={"name": f"{BUILD_PREFIX}{role}-"}
                )
                return not orphans and (await row())["status"] == "error"

            await wait_for(settled, 30, what="the sweep and the reconcile")
            async with http.post(f"/api/containers/{made['db_id']}/start") as resp:
                started = await resp.json()
                assert resp.status == 200, started
            final = await row()
            assert (final["status"], final["role_state"]) == ("running", "installed")
            assert sh(docker_client, final["id"], "python3 -c 'print(1)'") == (0, "1\n")
    finally:
        backend.kill()


async def test_reinstall_route_refusals(rapi: Api) -> None:
    _, headers = await rapi.user(tier="test")
    _, stranger = await rapi.user(tier="test")
    plain = await rapi.create(headers)  # busybox, barebone: nothing to install
    url = f"/api/containers/{plain['db_id']}/role/reinstall"
    resp = await rapi.client.post(url, headers=headers)
    body = await resp.json()
    assert resp.status == 202, body
    assert (body["status"], body["role_state"]) == ("running", "none")

    resp = await rapi.client.post(url, headers=stranger)
    assert (resp.status, (await resp.json())["error"]) == (404, "container not found")
    resp = await rapi.client.post(f"/api/containers/{uuid.uuid4()}/role/reinstall", headers=headers)
    assert (resp.status, (await resp.json())["error"]) == (404, "container not found")
    resp = await rapi.client.post(url)
    assert resp.status == 401

    stopped = await rapi.client.post(f"/api/containers/{plain['db_id']}/stop", headers=headers)
    assert stopped.status == 200
    resp = await rapi.client.post(url, headers=headers)
    assert (resp.status, (await resp.json())["error"]) == (400, "container is not running")
