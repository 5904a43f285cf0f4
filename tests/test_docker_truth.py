"""Docker-side truth: changes made on the host, outside Corral, show through the API within a
second, are announced as events, and survive engine hiccups and backend restarts."""

from __future__ import annotations

import secrets
import subprocess
import time
import uuid
from typing import Any

import docker
import pytest
from sqlalchemy import select

from backend.db.models import EventRecord
from backend.docker_service import DockerService
from backend.errors import DockerUnavailable
from backend.settings import Settings
from backend.state import CONTAINERS, ENGINES, SESSIONS
from devkit.waiting import wait_for
from tests.conftest import Api, containers_of, serve, sh


def docker_cli(*args: str) -> None:
    subprocess.run(["docker", *args], check=True, capture_output=True)


async def _status_becomes(
    api: Api, headers: dict[str, str], ident: str, status: str, within_s: float = 1.0
) -> None:
    async def check() -> bool:
        return (await api.get(headers, ident))["status"] == status

    await wait_for(check, within_s, interval_s=0.02, what=f"status {status}")


async def _event_types(api: Api, db_id: str) -> list[str]:
    async with api.app[SESSIONS]() as session:
        rows = (await session.execute(select(EventRecord).order_by(EventRecord.seq))).scalars()
        return [r.type for r in rows if r.payload.get("db_id") == db_id]


async def _watching(api: Api) -> None:
    await wait_for(
        lambda: api.app[ENGINES].first.watch.current.connected.is_set(), 10, what="the watcher"
    )


async def test_kill_stop_and_start_outside_corral_show_within_a_second(api: Api) -> None:
    _, headers = await api.user(tier="test")
    made = await api.create(headers)
    await _watching(api)

    t0 = time.monotonic()
    docker_cli("kill", made["id"])
    await _status_becomes(api, headers, made["db_id"], "stopped")
    assert time.monotonic() - t0 < 1.5
    got = await api.get(headers, made["db_id"])
    assert "killed" in got["error"]

    docker_cli("start", made["id"])
    await _status_becomes(api, headers, made["db_id"], "running")
    docker_cli("stop", "-t", "1", made["id"])
    await _status_becomes(api, headers, made["db_id"], "stopped")
    types = await _event_types(api, made["db_id"])
    assert types[-3:] == ["container_stopped", "container_started", "container_stopped"]


async def test_removed_outside_becomes_missing_and_start_recreates_with_data(
    api: Api, docker_client: docker.DockerClient
) -> None:
    _, headers = await api.user(tier="test")
    made = await api.create(headers)
    assert sh(docker_client, made["id"], "echo survivor > /home/user/f")[0] == 0
    await _watching(api)
    docker_cli("rm", "-f", made["id"])
    await _status_becomes(api, headers, made["db_id"], "missing")
    assert (await _event_types(api, made["db_id"]))[-1] == "container_updated"

    resp = await api.client.post(f"/api/containers/{made['db_id']}/start", headers=headers)
    body = await resp.json()
    assert resp.status == 200
    assert body["message"] == "container recreated and started"
    assert body["recreated"] is True and body["volume_kept"] is True
    assert body["old_id"] == made["id"] and body["id"] != made["id"]
    assert body["status"] == "running"
    assert sh(docker_client, body["id"], "cat /home/user/f") == (0, "survivor\n")
    # A row is never deleted because Docker lost its container.
    assert (await api.get(headers, body["id"]))["db_id"] == made["db_id"]


async def test_out_of_memory_kill_is_reflected(api: Api) -> None:
    _, headers = await api.user(tier="test")
    made = await api.create(headers, memory_mb=64)
    await _watching(api)
    client = docker.from_env(version="auto")
    try:
        exec_id = client.api.exec_create(
            made["id"], ["sh", "-c", "head -c 300000000 /dev/zero | tail > /dev/null"]
        )
        client.api.exec_start(exec_id["Id"], detach=True)
    finally:
        client.close()
    await _status_becomes(api, headers, made["db_id"], "stopped", within_s=30)
    got = await api.get(headers, made["db_id"])
    assert "memory" in got["error"] or "killed" in got["error"]


async def test_failed_or_partial_listing_marks_nothing_missing(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, headers = await api.user(tier="test")
    made = await api.create(headers)
    service = api.app[CONTAINERS].reconciler

    async def empty(self: DockerService, labels: dict[str, str]) -> list[Any]:
        return []

    monkeypatch.setattr(DockerService, "list_containers", empty)
    await service.reconcile_all()
    assert (await api.get(headers, made["db_id"]))["status"] == "running"

    async def down(self: DockerService, labels: dict[str, str]) -> list[Any]:
        raise DockerUnavailable()

    monkeypatch.setattr(DockerService, "list_containers", down)
    with pytest.raises(DockerUnavailable):
        await service.reconcile_all()
    assert (await api.get(headers, made["db_id"]))["status"] == "running"


async def test_a_search_finds_containers_by_exact_id_or_exact_name(api: Api) -> None:
    """What confirms a batch of rows gone (``DockerService.find_containers``): many IDs and
    names in one search; a prefix of a name, or an ID that is not there, finds nothing."""
    _, headers = await api.user(tier="test")
    made = await api.create(headers)
    docker = api.app[ENGINES].first.docker
    name = f"corral-{made['db_id']}"
    others = [secrets.token_hex(32) for _ in range(99)]

    by_id = await docker.find_containers([*others, made["id"]], [])
    assert [(c.id, c.name) for c in by_id] == [(made["id"], name)]
    by_name = await docker.find_containers([], [f"corral-{uuid.uuid4()}", name])
    assert [c.id for c in by_name] == [made["id"]]
    both = await docker.find_containers([made["id"]], [name])
    assert [c.id for c in both] == [made["id"]]  # once, though found twice
    assert await docker.find_containers(others, [name[:-1], "corral-.*"]) == []
    assert await docker.find_containers([], []) == []


async def test_watcher_reconnects_and_catches_up(api: Api) -> None:
    _, headers = await api.user(tier="test")
    made = await api.create(headers)
    watcher = api.app[ENGINES].first.watch.current
    await _watching(api)
    before = watcher.reconciled
    # Break the stream, and change the container while nobody watches.
    watcher._close_stream()
    docker_cli("stop", "-t", "1", made["id"])
    await wait_for(lambda: watcher.reconciled > before, 10, what="a reconnect")
    await _status_becomes(api, headers, made["db_id"], "stopped", within_s=5)


async def test_restart_reconciles_changes_made_while_down(
    settings: Settings, docker_client: docker.DockerClient
) -> None:
    async with serve(settings) as api:
        _, headers = await api.user("owner", tier="test")
        gone = await api.create(headers, name="gone")
        halted = await api.create(headers, name="halted")
        kept = await api.create(headers, name="kept")

    docker_cli("rm", "-f", gone["id"])
    docker_cli("stop", "-t", "1", halted["id"])

    async with serve(settings) as api:
        await _watching(api)
        assert (await api.get(headers, gone["db_id"]))["status"] == "missing"
        assert (await api.get(headers, halted["db_id"]))["status"] == "stopped"
        assert (await api.get(headers, kept["db_id"]))["status"] == "running"
    assert containers_of(docker_client, kept["db_id"])[0].status == "running"
