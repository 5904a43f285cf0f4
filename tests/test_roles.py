"""Roles: the catalog, the host-side package cache, and installs in the background, against the
real engine with the Debian image.

Real installs are slow under runsc's ptrace platform (the python role takes about a minute), so
only a few tests install the python role; the others use a one-package operator role (``tiny``:
jq and its two libraries). The package cache is prepared once per session by the ``role_cache``
fixture, in a folder of its own that every test's backend shares (``package_cache_dir``).
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import docker
import pytest

from backend.containers.catalog import (
    Role,
    RoleFileError,
    builtin_roles,
    parse_roles,
)
from backend.containers.packages import LISTS_LABEL, MANIFEST, PackageCache, PrepareFailed
from backend.containers.roles import InstallProgress
from backend.settings import Settings, load_settings
from backend.state import CONTAINERS, EVENTS
from tests.conftest import BUSYBOX, Api, serve, sh, wait_for
from tests.test_terminal import _open

DEBIAN = "corral/debian:bookworm"
DISTRIBUTION = "debian-bookworm"
TINY = Role("tiny", "Tiny", "jq only", ("jq",), (DEBIAN,))
OPERATOR_ROLES = """
[roles.tiny]
name = "Tiny"
description = "jq only: a quick install for tests"
packages = ["jq"]
images = ["corral/debian:bookworm"]
"""
# Enough memory for dpkg under gVisor (128 MB is not: the sandbox is killed), and two CPUs so a
# test's install is not throttled to half a core.
SIZE = {"memory_mb": 512, "cpu_shares": 2000}
INSTALL_TIMEOUT_S = 600.0


@pytest.fixture(scope="session")
def role_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One package cache for the whole session: the python and tiny roles, prepared once
    (what a fresh machine needs; the download takes seconds, the installs take the time)."""
    root = tmp_path_factory.mktemp("package-cache")
    cache = PackageCache(load_settings(data_dir=root / "unused", package_cache_dir=root))
    python = builtin_roles()["python"]
    for role in (python, TINY):
        cache.prepare_blocking(DISTRIBUTION, role)
        assert cache.is_ready(DISTRIBUTION, role)
    return root


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


async def create(api: Api, headers: dict[str, str], role: str, **body: Any) -> dict[str, Any]:
    return await api.create(headers, image=DEBIAN, role=role, **{**SIZE, **body})


async def wait_role(
    api: Api, headers: dict[str, str], db_id: str, states: tuple[str, ...]
) -> dict[str, Any]:
    """Wait until the container's role_state is one of ``states``; the container."""
    seen: dict[str, Any] = {}

    async def reached() -> bool:
        seen.update(await api.get(headers, db_id))
        return seen["role_state"] in states

    await wait_for(reached, INSTALL_TIMEOUT_S, 0.5, f"role_state in {states}")
    return seen


async def events_of(api: Api, user_id: str, db_id: str) -> list[tuple[str, dict[str, Any]]]:
    """Every event of one container so far, as (type, payload)."""
    log = api.app[EVENTS]
    found = await log.since(user_id, 0, await log.last_seq(user_id))
    assert found is not None
    return [(e.type, e.container) for e in found if e.container.get("db_id") == db_id]


def home_snapshot(client: docker.DockerClient, ident: str) -> str:
    code, out = sh(
        client,
        ident,
        "cd /home/user && find . -path ./lost+found -prune -o -printf '%p %s %T@\\n' 2>&1 | sort",
    )
    assert code == 0 and "./marker.txt" in out and "cannot" not in out, out
    return out


# -- the catalog ------------------------------------------------------------------------------


async def test_roles_route_lists_the_catalog_with_the_operator_roles(rapi: Api) -> None:
    _, headers = await rapi.user()
    resp = await rapi.client.get("/api/roles", headers=headers)
    assert resp.status == 200
    roles = {r["id"]: r for r in (await resp.json())["roles"]}
    assert {"barebone", "standard", "python", "node", "go", "tiny"} <= set(roles)
    for role in roles.values():
        assert set(role) == {"id", "name", "description", "packages", "images"}
    assert roles["barebone"]["packages"] == []
    assert set(roles["barebone"]["images"]) == {BUSYBOX, DEBIAN}
    assert roles["python"]["packages"] == ["python3", "python3-pip", "python3-venv", "git"]
    assert roles["python"]["images"] == [DEBIAN]
    assert roles["standard"]["packages"] == ["git", "curl", "vim", "htop", "jq", "tmux", "zsh"]
    assert roles["node"]["packages"] == ["nodejs", "npm", "git"]
    assert roles["go"]["packages"] == ["golang", "make", "git"]
    assert roles["tiny"] == {
        "id": "tiny",
        "name": "Tiny",
        "description": "jq only: a quick install for tests",
        "packages": ["jq"],
        "images": [DEBIAN],
    }


async def test_a_role_on_an_image_it_does_not_support_is_refused(rapi: Api) -> None:
    _, headers = await rapi.user(tier="test")
    resp = await rapi.client.post(
        "/api/containers", json={"image": BUSYBOX, "role": "python"}, headers=headers
    )
    body = await resp.json()
    assert resp.status == 400, body
    assert body["error"] == "unsupported role"
    assert "busybox" in body["message"] and DEBIAN in body["message"]
    resp = await rapi.client.post(
        "/api/containers", json={"image": DEBIAN, "role": "cobol"}, headers=headers
    )
    body = await resp.json()
    assert (resp.status, body["error"]) == (400, "unsupported role")
    assert "does not exist" in body["message"]
    listed = await (await rapi.client.get("/api/containers", headers=headers)).json()
    assert listed["count"] == 0


def test_operator_file_merges_field_by_field() -> None:
    base = builtin_roles()
    merged = parse_roles(
        {
            "roles": {
                "standard": {"packages": ["git"]},
                "go": {"enabled": False},
                "ruby": {"packages": ["ruby"], "images": [DEBIAN], "name": "Ruby"},
            }
        },
        "roles.toml",
        base,
    )
    assert merged["standard"].packages == ("git",)
    assert merged["standard"].description == base["standard"].description
    assert "go" not in merged
    assert merged["ruby"] == Role("ruby", "Ruby", "", ("ruby",), (DEBIAN,))
    assert merged["barebone"] == base["barebone"]


@pytest.mark.parametrize(
    ("roles", "fault"),
    [
        ({"x": {"packages": ["-o", "APT::Foo=1"]}}, "not a valid package name"),
        ({"x": {"packages": ["jq; rm -rf /"]}}, "not a valid package name"),
        ({"Bad Id": {"packages": []}}, "ids are"),
        ({"x": {"images": ["*"]}}, "needs packages"),
        ({"x": {"packages": [], "colour": "red"}}, "unknown field"),
    ],
)
def test_operator_file_faults_are_named(roles: dict[str, Any], fault: str) -> None:
    with pytest.raises(RoleFileError, match=fault):
        parse_roles({"roles": roles}, "roles.toml", builtin_roles())


def test_apt_status_lines_become_progress() -> None:
    progress = InstallProgress()
    assert not progress.feed("corral:cached 51")
    assert progress.feed("pmstatus:dpkg-exec:0.0000:Running dpkg")
    assert progress.package is None
    assert progress.feed("pmstatus:libssl3:amd64:5.8537:Installing libssl3 (amd64)")
    assert (progress.package, int(progress.percent)) == ("libssl3", 5)
    assert progress.feed("pmstatus:python3.11:45.4:Unpacking python3.11 (amd64)")
    assert (progress.package, int(progress.percent)) == ("python3.11", 45)
    assert not progress.feed("something apt said")
    assert not progress.feed("corral:error E: Unable to locate package nope")
    assert progress.errors == ["Unable to locate package nope"]
    mirror = InstallProgress()
    mirror.feed("corral:stage mirror")
    mirror.feed("dlstatus:3:50.0:Retrieving file 3 of 6")
    assert int(mirror.percent) == 15
    mirror.feed("pmstatus:git:50.0:Unpacking git (amd64)")
    assert int(mirror.percent) == 65


# -- the host-side cache -----------------------------------------------------------------------


async def test_concurrent_prepares_of_one_role_download_once(tmp_path: Path) -> None:
    cache = PackageCache(load_settings(data_dir=tmp_path, package_cache_dir=tmp_path / "pk"))
    role = Role("jq-only", "", "", ("jq",), (DEBIAN,))
    results = await asyncio.gather(
        cache.prepare(DISTRIBUTION, role),
        asyncio.to_thread(cache.prepare_blocking, DISTRIBUTION, role),
        cache.prepare(DISTRIBUTION, role),
    )
    assert sorted(r.downloaded for r in results) == [False, False, True]
    folder = tmp_path / "pk" / DISTRIBUTION
    debs = sorted(p.name for p in (folder / "jq-only").glob("*.deb"))
    assert any(name.startswith("jq_") for name in debs)
    assert any(name.startswith("libjq1_") for name in debs)
    assert (folder / "jq-only" / MANIFEST).is_file()
    assert not [p for p in folder.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


async def test_a_failed_prepare_leaves_nothing_behind(tmp_path: Path) -> None:
    cache = PackageCache(load_settings(data_dir=tmp_path, package_cache_dir=tmp_path / "pk"))
    role = Role("broken", "", "", ("jq", "corral-no-such-package"), (DEBIAN,))
    with pytest.raises(PrepareFailed, match="Unable to locate package corral-no-such-package"):
        await cache.prepare(DISTRIBUTION, role)
    folder = tmp_path / "pk" / DISTRIBUTION
    assert not cache.is_ready(DISTRIBUTION, role)
    assert [p.name for p in folder.iterdir()] == [".broken.lock"]


# -- installs (real, under runsc) ----------------------------------------------------------------


async def test_python_role_installs_in_the_background_and_survives_a_disk_change(
    rapi: Api, docker_client: docker.DockerClient
) -> None:
    user, headers = await rapi.user(tier="test")
    made = await create(rapi, headers, "python")
    db_id = made["db_id"]
    # Usable at once: the container is configuring, and a terminal works while it installs.
    assert made["status"] == "configuring"
    assert made["role_state"] in ("pending", "installing")
    term = await _open(rapi, headers, made["id"])
    await term.send("echo usable-$((6*7)) $(id -u)\n")
    await term.expect(r"usable-42 0")
    await term.ws.close()
    assert (await rapi.get(headers, db_id))["status"] == "configuring"

    done = await wait_role(rapi, headers, db_id, ("installed", "failed"))
    assert done["role_state"] == "installed", done
    assert (done["status"], done["role_error"]) == ("running", None)
    assert sh(docker_client, done["id"], 'python3 -c "print(1)"') == (0, "1\n")
    assert sh(docker_client, done["id"], "python3 -m venv /tmp/v && /tmp/v/bin/pip -V")[0] == 0
    assert sh(docker_client, done["id"], "git --version")[0] == 0
    events = await events_of(rapi, user.id, db_id)
    installs = [p for t, p in events if t == "container_progress" and p["stage"] == "role_install"]
    assert any(p.get("package") for p in installs), installs
    assert all(0 <= p["progress"] <= 100 for p in installs)
    assert max(p["progress"] for p in installs) > 50
    assert ("container_updated", "role packages installed") in [
        (t, p.get("message")) for t, p in events
    ]

    # A disk change rebuilds the sandbox: the role is reinstalled, /home/user is untouched.
    marker = uuid.uuid4().hex
    code, _ = sh(docker_client, done["id"], f"echo {marker} > /home/user/marker.txt")
    assert code == 0
    before = home_snapshot(docker_client, done["id"])
    resp = await rapi.client.patch(
        f"/api/containers/{db_id}/settings", json={"disk_mb": 128}, headers=headers
    )
    body = await resp.json()
    assert resp.status == 200, body
    rebuilt = body["container"]
    assert body["restarted"] is True and rebuilt["id"] != done["id"]
    assert (rebuilt["status"], rebuilt["role_state"]) == ("configuring", "pending")
    code, _ = sh(docker_client, rebuilt["id"], "command -v python3")
    assert code != 0, "a new sandbox starts without the role's packages"
    events = await events_of(rapi, user.id, db_id)
    assert ("container_updated", "role packages reinstalling") in [
        (t, p.get("message")) for t, p in events
    ]

    again = await wait_role(rapi, headers, db_id, ("installed", "failed"))
    assert again["role_state"] == "installed", again
    assert again["status"] == "running"
    assert sh(docker_client, again["id"], 'python3 -c "print(1)"') == (0, "1\n")
    assert sh(docker_client, again["id"], "cat /home/user/marker.txt") == (0, f"{marker}\n")
    assert home_snapshot(docker_client, again["id"]) == before
    events = await events_of(rapi, user.id, db_id)
    restored = [
        p
        for t, p in events
        if t == "container_updated" and p.get("message") == "role packages restored"
    ]
    assert len(restored) == 1 and restored[0]["role_state"] == "installed"


async def test_a_broken_package_fails_the_role_and_reinstall_retries(
    rapi: Api, roles_file: Path, docker_client: docker.DockerClient
) -> None:
    roles_file.write_text(
        OPERATOR_ROLES
        + '\n[roles.tools]\npackages = ["jq", "corral-no-such-package"]\n'
        + f'images = ["{DEBIAN}"]\n'
    )
    user, headers = await rapi.user(tier="test")
    made = await create(rapi, headers, "tools")
    failed = await wait_role(rapi, headers, made["db_id"], ("failed", "installed"))
    assert failed["role_state"] == "failed"
    assert "Unable to locate package corral-no-such-package" in failed["role_error"]
    assert failed["status"] == "running"
    assert sh(docker_client, failed["id"], "echo still-here") == (0, "still-here\n")
    events = await events_of(rapi, user.id, made["db_id"])
    final = [p for t, p in events if t == "container_progress" and p.get("complete")][-1]
    assert final["stage"] == "role_failed" and "corral-no-such-package" in final["error"]

    # The operator fixes the role; the user retries.
    roles_file.write_text(
        OPERATOR_ROLES + f'\n[roles.tools]\npackages = ["jq"]\nimages = ["{DEBIAN}"]\n'
    )
    resp = await rapi.client.post(
        f"/api/containers/{made['db_id']}/role/reinstall", headers=headers
    )
    body = await resp.json()
    assert resp.status == 202, body
    assert (body["status"], body["role_state"], body["role_error"]) == (
        "configuring",
        "pending",
        None,
    )
    fixed = await wait_role(rapi, headers, made["db_id"], ("installed", "failed"))
    assert fixed["role_state"] == "installed", fixed
    assert fixed["status"] == "running"
    assert sh(docker_client, fixed["id"], "echo '{\"a\": 7}' | jq .a") == (0, "7\n")


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


async def test_a_stop_during_the_install_resumes_it_at_the_next_start(
    rapi: Api, docker_client: docker.DockerClient
) -> None:
    _, headers = await rapi.user(tier="test")
    resp = await rapi.client.post(
        "/api/containers", json={"image": DEBIAN, "role": "tiny", **SIZE}, headers=headers
    )
    made = await resp.json()
    assert resp.status == 202, made
    assert (made["status"], made["role_state"]) == ("creating", "pending")

    async def configuring() -> bool:
        return (await rapi.get(headers, made["db_id"]))["status"] == "configuring"

    await wait_for(configuring, 30, what="the sandbox to run")
    resp = await rapi.client.post(f"/api/containers/{made['db_id']}/stop", headers=headers)
    assert resp.status == 200
    stopped = await rapi.get(headers, made["db_id"])
    assert (stopped["status"], stopped["role_state"]) == ("stopped", "pending")
    assert not rapi.app[CONTAINERS].roles.active(made["db_id"])

    resp = await rapi.client.post(f"/api/containers/{made['db_id']}/start", headers=headers)
    body = await resp.json()
    assert (resp.status, body["status"]) == (200, "running"), body
    assert (await rapi.get(headers, made["db_id"]))["status"] == "configuring"
    done = await wait_role(rapi, headers, made["db_id"], ("installed", "failed"))
    assert (done["role_state"], done["status"]) == ("installed", "running")
    assert sh(docker_client, done["id"], "jq --version")[0] == 0


async def test_recreation_of_a_lost_container_reinstalls_the_role(
    rapi: Api, docker_client: docker.DockerClient
) -> None:
    user, headers = await rapi.user(tier="test")
    made = await create(rapi, headers, "tiny")
    first = await wait_role(rapi, headers, made["db_id"], ("installed", "failed"))
    assert first["role_state"] == "installed"
    docker_client.containers.get(first["id"]).remove(force=True)

    async def missing() -> bool:
        return (await rapi.get(headers, made["db_id"]))["status"] == "missing"

    await wait_for(missing, 15, what="the row to become missing")
    resp = await rapi.client.post(f"/api/containers/{made['db_id']}/start", headers=headers)
    body = await resp.json()
    assert resp.status == 200, body
    assert body["recreated"] is True
    again = await rapi.get(headers, made["db_id"])
    assert (again["status"], again["role_state"]) == ("configuring", "pending")
    done = await wait_role(rapi, headers, made["db_id"], ("installed", "failed"))
    assert (done["role_state"], done["status"]) == ("installed", "running")
    assert sh(docker_client, done["id"], "jq --version")[0] == 0
    messages = [p.get("message") for _, p in await events_of(rapi, user.id, made["db_id"])]
    assert "role packages reinstalling" in messages
    assert "role packages restored" in messages


async def test_an_install_cut_off_by_a_backend_restart_is_resumed(
    role_settings: Settings, docker_client: docker.DockerClient
) -> None:
    async with serve(role_settings) as first:
        _, headers = await first.user(tier="test")
        made = await create(first, headers, "tiny")
        assert made["role_state"] in ("pending", "installing")
    # The first backend is gone; its install task went with it (apt in the sandbox may go on).
    with sqlite3.connect(role_settings.database_path) as conn:
        (state,) = conn.execute(
            "SELECT role_state FROM containers WHERE id = ?", (made["db_id"],)
        ).fetchone()
    assert state in ("pending", "installing")
    async with serve(role_settings) as second:
        # The signing key lives in the data directory, so the first backend's token still works.
        done = await wait_role(second, headers, made["db_id"], ("installed", "failed"))
        assert (done["role_state"], done["status"]) == ("installed", "running")
        assert sh(docker_client, done["id"], "jq --version")[0] == 0


@pytest.fixture
def old_database(settings: Settings) -> Settings:
    """A data directory whose database predates the role columns."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(settings.database_path) as conn:
        conn.execute(
            "CREATE TABLE containers (id VARCHAR(36) PRIMARY KEY, user_id VARCHAR(36), "
            "name VARCHAR(64), image VARCHAR(255), role VARCHAR(64), status VARCHAR(16), "
            "docker_id VARCHAR(64), memory_mb INTEGER, cpu_shares INTEGER, disk_mb INTEGER, "
            "runtime VARCHAR(16), environment JSON, labels JSON, error VARCHAR(1024), "
            "created_at VARCHAR(24), last_used_at VARCHAR(24), started_at VARCHAR(24), "
            "needs_recreate BOOLEAN)"
        )
        conn.execute(
            "INSERT INTO containers VALUES ('00000000-0000-4000-8000-000000000001', 'u', 'old',"
            " 'corral/busybox', 'barebone', 'stopped', NULL, 256, 500, 1024, 'runsc', '{}', '{}',"
            " NULL, '2026-01-01T00:00:00.000Z', NULL, NULL, 0)"
        )
    return settings


async def test_an_older_database_gets_the_role_columns(old_database: Settings) -> None:
    async with serve(old_database) as served:
        admin, headers = await served.user(admin=True)
        resp = await served.client.get("/api/containers?all=true", headers=headers)
        body = await resp.json()
        assert resp.status == 200, body
        (old,) = [c for c in body["containers"] if c["name"] == "old"]
        assert (old["role_state"], old["role_error"]) == ("none", None)
        assert admin.is_admin


def test_the_cache_follows_the_package_lists(tmp_path: Path) -> None:
    """Downloads are only as good as the package lists they were chosen from: a folder made
    with other lists is not ready, and an image imported with other lists is refused."""
    lists = tmp_path / "rootfs" / DISTRIBUTION / "var" / "lib" / "apt" / "lists"
    lists.mkdir(parents=True)
    (lists / "deb.debian.org_debian_dists_bookworm_InRelease").write_text("one\n")
    settings = load_settings(
        data_dir=tmp_path, package_cache_dir=tmp_path / "pk", rootfs_dir=tmp_path / "rootfs"
    )
    cache = PackageCache(settings)
    empty = Role("empty", "", "", (), (DEBIAN,))
    cache.prepare_blocking(DISTRIBUTION, empty)
    assert cache.is_ready(DISTRIBUTION, empty)
    first = cache.lists_fingerprint(DISTRIBUTION)
    cache.check_image(DISTRIBUTION, {LISTS_LABEL: str(first)})
    cache.check_image(DISTRIBUTION, {})  # an image from an older images.sh: not checked

    (lists / "deb.debian.org_debian_dists_bookworm_InRelease").write_text("two\n")
    assert cache.lists_fingerprint(DISTRIBUTION) != first
    assert not cache.is_ready(DISTRIBUTION, empty)
    with pytest.raises(PrepareFailed, match=r"images\.sh --force"):
        cache.check_image(DISTRIBUTION, {LISTS_LABEL: str(first)})


async def test_corral_roles_prepare_and_list(tmp_path: Path) -> None:
    from tests.test_cli import corral

    data = tmp_path / "data"
    data.mkdir()
    (data / "roles.toml").write_text(OPERATOR_ROLES)
    first = await corral("roles", "prepare", "--data-dir", str(data), "tiny")
    assert first.code == 0, first.err
    assert "tiny on debian-bookworm: 3 packages" in first.out and "downloaded in" in first.out
    assert any((data / "packages" / DISTRIBUTION / "tiny").glob("jq_*.deb"))
    again = await corral("roles", "prepare", "--data-dir", str(data), "tiny")
    assert again.code == 0 and "already prepared" in again.out, again
    listed = await corral("roles", "list", "--data-dir", str(data))
    assert listed.code == 0
    lines = {line.split("\t")[0]: line for line in listed.out.splitlines()}
    assert "debian-bookworm: prepared" in lines["tiny"]
    assert "not prepared" in lines["python"]
    assert lines["barebone"].startswith("barebone\tevery image\t-")
    unknown = await corral("roles", "prepare", "--data-dir", str(data), "cobol")
    assert unknown.code == 1 and "role 'cobol' does not exist" in unknown.err
    helped = await corral("roles", "prepare", "--help")
    assert helped.code == 0 and "download" in helped.out
