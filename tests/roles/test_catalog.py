"""Roles: the catalog and its operator file, the host-side package cache, apt's progress, the
role columns of an older database, and ``corral roles``."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import docker
import pytest

from backend.containers.apt_install import InstallProgress
from backend.containers.catalog import (
    Role,
    RoleFileError,
    builtin_roles,
    parse_roles,
)
from backend.containers.packages import LISTS_LABEL, MANIFEST, PackageCache, PrepareFailed
from backend.settings import Settings, load_settings
from tests.conftest import BUSYBOX, Api, serve
from tests.roles.conftest import DEBIAN, DISTRIBUTION

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


@pytest.mark.sqlite_only(
    "a SQLite file written before the role columns; no PostgreSQL database predates them"
)
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


async def test_corral_roles_prepare_and_list(
    tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    from tests.test_cli import corral

    role = f"cli-{uuid.uuid4().hex[:8]}"  # a test role prefix (tests/roles/conftest.py)
    data = tmp_path / "data"
    data.mkdir()
    (data / "roles.toml").write_text(f'[roles.{role}]\npackages = ["jq"]\nimages = ["{DEBIAN}"]\n')
    try:
        first = await corral("roles", "prepare", "--data-dir", str(data), role)
        assert first.code == 0, first.err
        assert f"{role} on {DEBIAN}: corral/role-{role}:debian-bookworm-" in first.out
        assert "MB beyond the base (built in" in first.out
        assert f"{role} on {DEBIAN}: building the image of role {role}" in first.err  # progress
        (image,) = docker_client.images.list(filters={"label": f"corral.role={role}"})
        assert image.labels["corral.role.base-id"] == docker_client.images.get(DEBIAN).id
        again = await corral("roles", "prepare", "--data-dir", str(data), role)
        assert again.code == 0 and "(already built)" in again.out, again
        listed = await corral("roles", "list", "--data-dir", str(data))
        assert listed.code == 0, listed.err
        lines = {line.split("\t")[0]: line for line in listed.out.splitlines()}
        assert f"{DEBIAN}: ready, " in lines[role] and " MB]" in lines[role]
        assert lines["barebone"].startswith("barebone\tevery image\t-")
        unknown = await corral("roles", "prepare", "--data-dir", str(data), "cobol")
        assert unknown.code == 1 and "role 'cobol' does not exist" in unknown.err
        helped = await corral("roles", "prepare", "--help")
        assert helped.code == 0 and "build" in helped.out
    finally:
        for image in docker_client.images.list(filters={"label": f"corral.role={role}"}):
            docker_client.images.remove(image.id, force=True)
