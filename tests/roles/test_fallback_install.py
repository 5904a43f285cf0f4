"""The fallback where no role image can be made (the engine lacks ``role_build_runtime``): the
role is installed inside each sandbox, in the background, with progress; a stop interrupts it
and the next start resumes it; a restart of the backend resumes it too."""

from __future__ import annotations

from collections.abc import AsyncIterator

import docker
import pytest
from sqlalchemy import select

from backend.db.models import Container
from backend.settings import Settings
from backend.state import CONTAINERS
from devkit.waiting import wait_for
from tests.conftest import Api, serve, sh
from tests.databases import read
from tests.roles.conftest import DEBIAN, SIZE, events_of, wait_role

NO_RUNTIME = "corral-no-such-runtime"
INSTALL_TIMEOUT_S = 90.0  # jq and its two libraries, under gVisor's ptrace platform


@pytest.fixture
def fallback_settings(role_settings: Settings) -> Settings:
    return role_settings.with_overrides(role_build_runtime=NO_RUNTIME)


@pytest.fixture
async def fapi(fallback_settings: Settings) -> AsyncIterator[Api]:
    async with serve(fallback_settings) as served:
        yield served


async def test_the_role_installs_in_the_sandbox_and_a_stop_resumes_at_the_next_start(
    fapi: Api, docker_client: docker.DockerClient
) -> None:
    fapi.app[
        CONTAINERS
    ].roles.fallback.progress_interval_s = 0  # report every package (jq is quick)
    user, headers = await fapi.user(tier="test")
    resp = await fapi.client.post(
        "/api/containers", json={"image": DEBIAN, "role": "tiny", **SIZE}, headers=headers
    )
    made = await resp.json()
    assert resp.status == 202, made
    assert (made["status"], made["role_state"]) == ("creating", "pending")

    async def configuring() -> bool:
        return (await fapi.get(headers, made["db_id"]))["status"] == "configuring"

    await wait_for(configuring, 30, what="the sandbox to run")
    row = await fapi.get(headers, made["db_id"])
    assert docker_client.api.inspect_container(row["id"])["Image"] == (
        docker_client.images.get(DEBIAN).id
    )
    resp = await fapi.client.post(f"/api/containers/{made['db_id']}/stop", headers=headers)
    assert resp.status == 200
    stopped = await fapi.get(headers, made["db_id"])
    assert (stopped["status"], stopped["role_state"]) == ("stopped", "pending")
    assert not fapi.app[CONTAINERS].roles.active(made["db_id"])

    resp = await fapi.client.post(f"/api/containers/{made['db_id']}/start", headers=headers)
    body = await resp.json()
    assert (resp.status, body["status"]) == (200, "running"), body
    assert (await fapi.get(headers, made["db_id"]))["status"] == "configuring"
    done = await wait_role(fapi, headers, made["db_id"], ("installed", "failed"), INSTALL_TIMEOUT_S)
    assert (done["role_state"], done["status"]) == ("installed", "running"), done
    assert sh(docker_client, done["id"], "jq --version")[0] == 0
    events = await events_of(fapi, user.id, made["db_id"])
    installs = [p for t, p in events if t == "container_progress" and p["stage"] == "role_install"]
    assert any(p.get("package") for p in installs), installs
    assert all(0 <= p["progress"] <= 100 for p in installs)
    assert ("container_updated", "role packages installed") in [
        (t, p.get("message")) for t, p in events
    ]


async def test_an_install_cut_off_by_a_backend_restart_is_resumed(
    fallback_settings: Settings, docker_client: docker.DockerClient
) -> None:
    async with serve(fallback_settings) as first:
        _, headers = await first.user(tier="test")
        made = await first.create(headers, image=DEBIAN, role="tiny", **SIZE)
        assert (made["status"], made["role_state"]) == ("configuring", "pending")
    # The first backend is gone; its install task went with it (apt in the sandbox may go on).
    query = select(Container.role_state).where(Container.id == made["db_id"])
    ((state,),) = read(fallback_settings.resolved_database_url, query)
    assert state in ("pending", "installing")
    async with serve(fallback_settings) as second:
        # The signing key lives in the data directory, so the first backend's token still works.
        done = await wait_role(
            second, headers, made["db_id"], ("installed", "failed"), INSTALL_TIMEOUT_S
        )
        assert (done["role_state"], done["status"]) == ("installed", "running"), done
        assert sh(docker_client, done["id"], "jq --version")[0] == 0
