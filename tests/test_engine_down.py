"""An unreachable engine: 503 ``docker unavailable`` and nothing changed in the database."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from backend.app import RuntimeMissing, create_app
from backend.db.models import Container
from backend.docker_service import DockerService
from backend.settings import Settings
from backend.state import SESSIONS
from tests.conftest import BUSYBOX, serve


async def _rows(client: TestClient[Any, Any]) -> list[tuple[object, ...]]:
    async with client.app[SESSIONS]() as session:
        rows = (await session.execute(select(Container).order_by(Container.id))).scalars().all()
        return [(r.id, r.status, r.docker_id, r.name, r.memory_mb) for r in rows]


async def test_unreachable_engine_is_503_and_changes_nothing(settings: Settings) -> None:
    async with serve(settings) as api:
        _, headers = await api.user("owner")
        made = await api.create(headers, name="kept")
        token = headers

    down = settings.with_overrides(docker_host="unix:///nonexistent/docker.sock")
    async with serve(down) as served:
        client = served.client
        before = await _rows(client)
        assert before and before[0][1] == "running"

        health = await client.get("/health")
        body = await health.json()
        assert health.status == 503
        assert set(body) == {
            "status",
            "database",
            "docker",
            "runtime",
            "limits_enforced",
            "engines",
        }
        assert body["docker"] == "unavailable" and body["database"] == "ok"
        assert body["engines"] == {"local": {"docker": "unavailable", "runtime": "unavailable"}}
        assert body["limits_enforced"] is False

        calls = [
            ("POST", f"/api/containers/{made['id']}/start", None),
            ("POST", f"/api/containers/{made['id']}/stop", None),
            ("DELETE", f"/api/containers/{made['id']}", None),
            ("POST", "/api/containers", {"image": BUSYBOX, "name": "new"}),
        ]
        for method, url, payload in calls:
            resp = await client.request(method, url, json=payload, headers=token)
            data = await resp.json()
            assert resp.status == 503, (method, url, data)
            assert data["error"] == "docker unavailable"
            assert "/nonexistent" not in data["message"]
        assert await _rows(client) == before

        listed = await client.get("/api/containers", headers=token)
        assert listed.status == 200
        assert (await listed.json())["count"] == 1
        # Nothing is known of a sandbox whose engine does not answer (the row is unchanged).
        assert [c["status"] for c in (await listed.json())["containers"]] == ["unknown"]


async def test_backend_refuses_to_start_without_runsc(settings: Settings, monkeypatch: Any) -> None:
    real_info = DockerService.info

    async def only_runc(self: DockerService) -> dict[str, Any]:
        return {**await real_info(self), "Runtimes": {"runc": {}, "io.containerd.runc.v2": {}}}

    monkeypatch.setattr(DockerService, "info", only_runc)
    server = TestServer(create_app(settings))
    with pytest.raises(RuntimeMissing, match="just engine") as refused:
        await server.start_server()
    assert 'runtime = "runc"' in str(refused.value)


async def test_runc_when_configured_explicitly(settings: Settings, monkeypatch: Any) -> None:
    real_info = DockerService.info

    async def only_runc(self: DockerService) -> dict[str, Any]:
        return {**await real_info(self), "Runtimes": {"runc": {}}}

    monkeypatch.setattr(DockerService, "info", only_runc)
    runc = settings.with_overrides(runtime="runc")
    async with serve(runc) as served:
        client = served.client
        body = await (await client.get("/health")).json()
        assert body["runtime"] == "runc"
