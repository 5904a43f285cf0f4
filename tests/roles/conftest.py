"""Fixtures for the role tests: an operator roles file per test, one package cache for the
session, role ids of a test's own (their images removed afterwards), and helpers to wait on a
role.

Role images are the engine's, not a test's: the catalog's (python, node, ...) are built by
``just images`` before the suite runs, and a test that needs one finds it (or builds it: slower,
never wrong). A test that changes a role or watches a build uses a role id of its own
(``fresh_role``), so no test depends on another's images.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from backend.settings import Settings
from backend.state import EVENTS
from devkit.waiting import wait_for
from tests.conftest import Api, serve, sh

DEBIAN = "corral/debian:bookworm"
DISTRIBUTION = "debian-bookworm"
OPERATOR_ROLES = """
[roles.tiny]
name = "Tiny"
description = "jq only: a quick install for tests"
packages = ["jq"]
images = ["corral/debian:bookworm"]
"""
SIZE = {"memory_mb": 512, "cpu_shares": 2000}
ROLE_TIMEOUT_S = 60.0


TEST_ROLE_PREFIXES = ("t-", "cli-")


@pytest.fixture(scope="session", autouse=True)
def no_test_role_images_left(docker_client: docker.DockerClient) -> Iterator[None]:
    """After the session, no image of a test's own role is left, even one a failed test's
    teardown could not remove (each test removes its own; this is the backstop)."""
    yield
    for image in docker_client.images.list(filters={"label": "corral.role-image=true"}):
        if image.labels.get("corral.role", "").startswith(TEST_ROLE_PREFIXES):
            for container in docker_client.containers.list(
                all=True, filters={"ancestor": image.id}
            ):
                container.remove(force=True)
            docker_client.images.remove(image.id, force=True)


@pytest.fixture(scope="session")
def role_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One host-side package cache for the session's backends (downloads happen on demand)."""
    return tmp_path_factory.mktemp("package-cache")


@pytest.fixture
def roles_file(tmp_path: Path) -> Path:
    path = tmp_path / "roles.toml"
    path.write_text(OPERATOR_ROLES)
    return path


@pytest.fixture
def role_settings(settings: Settings, role_cache: Path, roles_file: Path) -> Settings:
    return settings.with_overrides(package_cache_dir=role_cache, roles_file=roles_file)


@pytest.fixture
async def rapi(role_settings: Settings) -> AsyncIterator[Api]:
    async with serve(role_settings) as served:
        yield served


@pytest.fixture
def fresh_role(
    roles_file: Path, docker_client: docker.DockerClient
) -> Iterator[Callable[..., str]]:
    """Add a role with an id of its own to the test's roles file: ``fresh_role(["jq"])`` gives
    its id. Every image of such a role is removed afterwards."""
    made: list[str] = []

    def add(packages: list[str], role_id: str | None = None) -> str:
        role_id = role_id or f"{TEST_ROLE_PREFIXES[0]}{uuid.uuid4().hex[:10]}"
        if role_id not in made:
            made.append(role_id)
        listed = ", ".join(f'"{p}"' for p in packages)
        with roles_file.open("a") as handle:
            handle.write(f'\n[roles.{role_id}]\npackages = [{listed}]\nimages = ["{DEBIAN}"]\n')
        return role_id

    yield add
    for role_id in made:
        remove_role_images(docker_client, role_id)


def remove_role_images(client: docker.DockerClient, role_id: str) -> None:
    """Remove a test role's images, and first the test's sandboxes still made from them."""
    for image in client.images.list(filters={"label": f"corral.role={role_id}"}):
        for container in client.containers.list(all=True, filters={"ancestor": image.id}):
            container.remove(force=True)
        client.images.remove(image.id, force=True)


def role_images(client: docker.DockerClient, role_id: str) -> list[Any]:
    return list(client.images.list(filters={"label": f"corral.role={role_id}"}))


def role_image_ids(client: docker.DockerClient, role_id: str) -> list[str]:
    """The role's image IDs from one listing: safe while an image is being removed (the SDK's
    ``images.list`` inspects each listed image, and one removed meanwhile raises a 404)."""
    return [
        str(i) for i in client.api.images(filters={"label": f"corral.role={role_id}"}, quiet=True)
    ]


async def create(api: Api, headers: dict[str, str], role: str, **body: Any) -> dict[str, Any]:
    return await api.create(headers, image=DEBIAN, role=role, **{**SIZE, **body})


async def wait_role(
    api: Api,
    headers: dict[str, str],
    db_id: str,
    states: tuple[str, ...],
    timeout_s: float = ROLE_TIMEOUT_S,
) -> dict[str, Any]:
    """Wait until the container's role_state is one of ``states``; the container."""
    seen: dict[str, Any] = {}

    async def reached() -> bool:
        seen.update(await api.get(headers, db_id))
        return seen["role_state"] in states

    await wait_for(reached, timeout_s, 0.2, f"role_state in {states}")
    return seen


async def events_of(api: Api, user_id: str, db_id: str) -> list[tuple[str, dict[str, Any]]]:
    """Every event of one container so far, as (type, payload)."""
    log = api.app[EVENTS]
    found = await log.since(user_id, 0, await log.last_seq(user_id))
    assert found is not None
    return [(e.type, e.container) for e in found if e.container.get("db_id") == db_id]


def messages(events: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, str | None]]:
    return [(t, p.get("message")) for t, p in events if t != "container_progress"]


def home_snapshot(client: docker.DockerClient, ident: str) -> str:
    """/home/user's contents by name, size and mtime (gVisor numbers inodes per sandbox).
    The shell's history is left out, and with it /home/user's own mtime: bash writes the
    history when a terminal hangs up, whenever that lands, and creating it touches the folder."""
    code, out = sh(
        client,
        ident,
        "cd /home/user && find . -mindepth 1 "
        "\\( -path ./lost+found -o -name .bash_history \\) -prune "
        "-o -printf '%p %s %T@\\n' 2>&1 | sort",
    )
    assert code == 0 and "./marker.txt" in out and "cannot" not in out, out
    return out


def image_of(client: docker.DockerClient, container_id: str) -> str:
    """The image a container was made from, by ID."""
    return str(client.api.inspect_container(container_id)["Image"])


async def wait_until(check: Callable[[], Any], what: str, timeout_s: float = 30) -> None:
    await wait_for(check, timeout_s, 0.1, what)
