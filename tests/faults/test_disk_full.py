"""The data directory's disk full: the data directory is a small filesystem the test mounts,
filled to the last block while the backend runs.

Reads go on; a write answers 507 ``insufficient storage`` (never a 500) and leaves the database
intact (``PRAGMA integrity_check``); once space returns, writes work again without a restart, a
change Docker made meanwhile reaches its row, and the data written before is still there.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from backend.containers.recreate import Rebuilder
from backend.settings import Settings
from backend.state import ENGINES
from devkit.waiting import wait_for
from tests.agreement import assert_agreement, check_agreement
from tests.conftest import Api, serve, sh

DISK_MB = 48
FULL = (507, "insufficient storage")

pytestmark = pytest.mark.sqlite_only(
    "SQLite's full-disk fault: the file on a full data directory (PostgreSQL's data is "
    "elsewhere; its 53100 -> 507 is in tests/test_postgres.py)"
)


def _run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def _mounts_under(point: Path) -> list[str]:
    lines = Path("/proc/self/mountinfo").read_text().splitlines()
    points = [line.split()[4] for line in lines]
    return [p for p in points if p == str(point) or p.startswith(f"{point}/")]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A filesystem of DISK_MB (tmpfs with ``size=``: a full disk without a loop device of its
    own) mounted where the test's data directory goes. Afterwards, whatever happened, it and
    every mount inside it (the sandboxes' volumes) are unmounted."""
    mountpoint = tmp_path / "data"
    mountpoint.mkdir()
    _run("mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m,mode=0755", "corral-test", str(mountpoint))
    try:
        yield mountpoint
    finally:
        for point in sorted(_mounts_under(mountpoint), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], check=False)


def fill(directory: Path) -> Path:
    """Fill the filesystem holding ``directory`` to its last block; the filler file."""
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as handle:
        stats = os.statvfs(directory)
        with contextlib.suppress(OSError):  # the last blocks are taken below
            os.posix_fallocate(handle.fileno(), 0, stats.f_bavail * stats.f_frsize)
        handle.seek(0, os.SEEK_END)
        with contextlib.suppress(OSError):
            while True:
                handle.write(b"\0" * 4096)
    return filler


def integrity(database: Path) -> str:
    with sqlite3.connect(database) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


async def _answer(api: Api, method: str, url: str, **kw: Any) -> tuple[int, str | None]:
    resp = await api.client.request(method, url, **kw)
    body = await resp.json()
    return resp.status, body.get("error") if isinstance(body, dict) else None


async def test_data_disk_full(
    small_disk: Path, settings: Settings, docker_client: docker.DockerClient, instance: str
) -> None:
    assert settings.data_dir == small_disk
    database = settings.database_path
    db_url = settings.resolved_database_url
    async with serve(settings) as api:
        _, headers = await api.user(tier="test")
        made = await api.create(headers, name="kept", disk_mb=16)
        marker = uuid.uuid4().hex
        assert sh(docker_client, made["id"], f"echo {marker} > /home/user/marker")[0] == 0
        await wait_for(
            api.app[ENGINES].first.watch.current.connected.is_set, 10, what="the watcher"
        )

        filler = fill(small_disk)
        try:
            await _while_full(api, headers, made)
            assert integrity(database) == "ok"
        finally:
            filler.unlink()

        # Space is back: writes work again, with no restart, and the rows catch up with Docker.
        assert await _answer(api, "POST", "/api/auth/guest", json={"username": "later"}) == (
            200,
            None,
        )
        await wait_for(
            lambda: not check_agreement(db_url, docker_client, instance),
            15,
            what="the database and Docker to agree",
        )
        extra = await api.create(headers, disk_mb=16)
        resp = await api.client.post(f"/api/containers/{made['db_id']}/start", headers=headers)
        body = await resp.json()
        assert resp.status == 200, body
        assert sh(docker_client, body["id"], "cat /home/user/marker") == (0, f"{marker}\n")
        resp = await api.client.delete(f"/api/containers/{extra['db_id']}", headers=headers)
        assert resp.status == 200
        assert_agreement(db_url, docker_client, instance)
    assert integrity(database) == "ok"


async def _while_full(api: Api, headers: dict[str, str], made: dict[str, Any]) -> None:
    """Reads answer; each write answers or says the disk is full, never a 500."""
    assert await _answer(api, "GET", "/api/containers", headers=headers) == (200, None)
    # SQLite may still fit a write in its log's free pages: a few tries find the wall.
    refused = []
    for i in range(10):
        answer = await _answer(api, "POST", "/api/auth/guest", json={"username": f"g{i}"})
        assert answer in ((200, None), FULL), answer
        refused.append(answer == FULL)
        if answer == FULL:
            break
    assert any(refused)
    writes = [
        ("POST", "/api/containers?wait=true", {"image": "corral/busybox", "disk_mb": 16}),
        ("POST", f"/api/containers/{made['db_id']}/stop", None),
        ("POST", f"/api/containers/{made['db_id']}/start", None),
        ("POST", "/api/tokens", {"name": "full"}),
    ]
    for method, url, body in writes:
        status, error = await _answer(api, method, url, json=body, headers=headers)
        assert status < 300 or (status, error) == FULL, (url, status, error)
    assert await _answer(api, "GET", f"/api/containers/{made['db_id']}", headers=headers) == (
        200,
        None,
    )


async def test_disk_fills_half_way_through_a_create(
    small_disk: Path,
    settings: Settings,
    docker_client: docker.DockerClient,
    instance: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The disk fills between the sandbox's creation on Docker and the write of its ID: the
    create answers 507, and once space returns the row finds its sandbox (the watcher looks it
    up by name) and starts like any other."""
    fillers: list[Path] = []
    create = Rebuilder.create

    async def create_then_fill(self: Rebuilder, row: Any, image: Any) -> str:
        docker_id = await create(self, row, image)
        fillers.append(fill(small_disk))
        return docker_id

    monkeypatch.setattr(Rebuilder, "create", create_then_fill)
    database = settings.database_path
    db_url = settings.resolved_database_url
    async with serve(settings) as api:
        _, headers = await api.user(tier="test")
        await wait_for(
            api.app[ENGINES].first.watch.current.connected.is_set, 10, what="the watcher"
        )
        body = {"image": "corral/busybox", "disk_mb": 16}
        assert (
            await _answer(api, "POST", "/api/containers?wait=true", json=body, headers=headers)
            == FULL
        )
        monkeypatch.setattr(Rebuilder, "create", create)
        assert integrity(database) == "ok"
        fillers[0].unlink()

        await wait_for(
            lambda: not check_agreement(db_url, docker_client, instance),
            15,
            what="the database and Docker to agree",
        )
        listed = await (await api.client.get("/api/containers", headers=headers)).json()
        (row,) = listed["containers"]
        resp = await api.client.post(f"/api/containers/{row['db_id']}/start", headers=headers)
        assert resp.status == 200, await resp.json()
        assert_agreement(db_url, docker_client, instance)
