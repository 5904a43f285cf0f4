"""Several Docker engines, for real: the machine's engine ("local") and a second dockerd
(``devkit/second_engine.py``) standing in for a second host. Placement, every operation routed
to the row's engine, the second engine stopped while the first keeps working (its sandboxes 503
and ``unknown``, nothing lost when it returns), drains, ``/health`` per engine, ``corral
engines``, and an engine without the runtime refused at start."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import docker
import docker.errors
import pytest
from aiohttp.test_utils import TestServer

from backend.app import RuntimeMissing, create_app
from backend.docker_service import DockerService
from backend.events.log import Event
from backend.settings import Settings
from backend.state import EVENTS
from corral.shapes import EventType
from devkit.second_engine import SecondEngine
from devkit.waiting import wait_for
from tests.conftest import TEST_TIER, Api, containers_of, serve, sh
from tests.test_cli import corral, remote
from tests.test_terminal import _open

MB = 1024 * 1024


@pytest.fixture
def two_engines(settings: Settings, second_engine: SecondEngine) -> Settings:
    """The machine's engine and the second one; tier "near" pinned to the first, "far" to the
    second (so each test knows where its sandboxes go); health probed every 0.2 s."""
    tiers = {
        **settings.tiers,
        "near": dataclasses.replace(TEST_TIER, name="near", engines=("local",)),
        "far": dataclasses.replace(TEST_TIER, name="far", engines=("second",)),
    }
    return settings.with_overrides(
        engines=[{"name": "local"}, {"name": "second", "docker_host": second_engine.host}],
        tiers=tiers,
        engine_probe_interval_s=0.2,
    )


@pytest.fixture
def far_docker(second_engine: SecondEngine) -> Iterator[docker.DockerClient]:
    client = second_engine.client()
    yield client
    client.close()


async def _status(api: Api, headers: dict[str, str], ident: str) -> str:
    return str((await api.get(headers, ident))["status"])


async def _call(api: Api, method: str, url: str, headers: dict[str, str], **kw: Any) -> Any:
    resp = await api.client.request(method, url, headers=headers, **kw)
    return resp.status, await resp.json()


async def test_a_pinned_tier_places_there_and_every_operation_goes_to_that_engine(
    two_engines: Settings, docker_client: docker.DockerClient, far_docker: docker.DockerClient
) -> None:
    async with serve(two_engines) as api:
        _, headers = await api.user(tier="far")
        made = await api.create(headers, name="far-away")
        ident, db_id = made["id"], made["db_id"]
        assert made["engine"] == "second"
        assert far_docker.containers.get(ident).status == "running"
        with pytest.raises(docker.errors.NotFound):
            docker_client.containers.get(ident)

        status, body = await _call(api, "POST", f"/api/containers/{ident}/stop", headers)
        assert (status, body["status"]) == (200, "stopped")
        assert far_docker.containers.get(ident).status == "exited"
        status, body = await _call(api, "POST", f"/api/containers/{ident}/start", headers)
        assert (status, body["status"]) == (200, "running")
        assert far_docker.containers.get(ident).status == "running"

        status, stats = await _call(api, "GET", f"/api/containers/{ident}/stats", headers)
        assert status == 200 and stats["memory_limit_mb"] == made["resources"]["memory_mb"]
        logs = await api.client.get(f"/api/containers/{ident}/logs?tail=50", headers=headers)
        assert logs.status == 200
        term = await _open(api, headers, ident)
        await term.send("echo far-$((20+22))\n")
        await term.expect("far-42")
        await term.ws.close()
        status, _ = await _call(
            api, "POST", f"/api/containers/{ident}/files/mkdir?path=/home/user/far-dir", headers
        )
        assert status == 200
        assert sh(far_docker, ident, "test -d /home/user/far-dir")[0] == 0
        status, listed = await _call(
            api, "GET", f"/api/containers/{ident}/files/list?path=/home/user", headers
        )
        assert status == 200 and "far-dir" in [f["name"] for f in listed["files"]]

        status, changed = await _call(
            api, "PATCH", f"/api/containers/{ident}/settings", headers, json={"memory_mb": 192}
        )
        assert status == 200, changed
        rebuilt = changed["container"]["id"]
        assert far_docker.containers.get(rebuilt).attrs["HostConfig"]["Memory"] == 192 * MB
        assert containers_of(docker_client, db_id) == []

        status, _ = await _call(api, "DELETE", f"/api/containers/{rebuilt}", headers)
        assert status == 200
        assert containers_of(far_docker, db_id) == []


async def test_the_second_engine_stopped_and_started_while_the_first_keeps_working(
    two_engines: Settings, second_engine: SecondEngine, far_docker: docker.DockerClient
) -> None:
    async with serve(two_engines) as api:
        _, near_h = await api.user(tier="near")
        _, far_h = await api.user(tier="far")
        near = await api.create(near_h, name="near")
        far = await api.create(far_h, name="far")
        assert (near["engine"], far["engine"]) == ("local", "second")
        assert sh(far_docker, far["id"], "echo kept > /home/user/note")[0] == 0
        seen: list[Event] = []
        api.app[EVENTS].add_listener(seen.append)

        def announced() -> list[tuple[str, str]]:
            return [
                (e.type, e.container["status"])
                for e in seen
                if e.container.get("db_id") == far["db_id"]
            ]

        second_engine.stop()
        await wait_for(lambda: bool(announced()), what="far's engine announced down")
        assert announced() == [(EventType.CONTAINER_UPDATED, "unknown")]
        assert await _status(api, far_h, far["id"]) == "unknown"
        for method, path in (("POST", "/start"), ("POST", "/stop"), ("GET", "/logs")):
            status, body = await _call(api, method, f"/api/containers/{far['id']}{path}", far_h)
            assert (status, body["error"]) == (503, "docker unavailable"), (path, body)

        # The first engine's sandbox keeps working, and says so.
        assert await _status(api, near_h, near["id"]) == "running"
        status, body = await _call(api, "POST", f"/api/containers/{near['id']}/stop", near_h)
        assert (status, body["status"]) == (200, "stopped")
        status, body = await _call(api, "POST", f"/api/containers/{near['id']}/start", near_h)
        assert (status, body["status"]) == (200, "running")
        health = await api.client.get("/health")
        assert health.status == 503
        assert (await health.json())["engines"] == {
            "local": {"docker": "ok", "runtime": "ok"},
            "second": {"docker": "unavailable", "runtime": "unavailable"},
        }

        second_engine.start()

        async def known_again() -> bool:
            return await _status(api, far_h, far["id"]) not in ("unknown", "running")

        # The engine stopped its sandbox on the way down: its watcher reconciles that.
        await wait_for(known_again, 20, what="far reconciled once its engine is back")
        assert await _status(api, far_h, far["id"]) == "stopped"
        assert (await api.client.get("/health")).status == 200
        status, body = await _call(api, "POST", f"/api/containers/{far['id']}/start", far_h)
        assert (status, body["status"]) == (200, "running"), body
        client = second_engine.client()
        try:
            assert sh(client, body["id"], "cat /home/user/note") == (0, "kept\n")
        finally:
            client.close()


async def test_drain_engines_listing_and_the_cli(two_engines: Settings) -> None:
    async with serve(two_engines) as api:
        _, admin = await api.user("operator", admin=True, tier="test")
        _, user = await api.user(tier="test")
        status, listed = await _call(api, "GET", "/api/engines", admin)
        assert status == 200 and [e["name"] for e in listed["engines"]] == ["local", "second"]
        for engine in listed["engines"]:
            assert (engine["docker"], engine["runtime"], engine["draining"]) == ("ok", "ok", False)
            assert engine["sandboxes"] == 0 and engine["memory_total_mb"] > 0
        assert (await _call(api, "GET", "/api/engines", user))[0] == 403

        drained = await corral(*remote(api, admin), "engines", "drain", "local")
        assert drained.code == 0, drained.err
        made = await api.create(user, name="placed")
        assert made["engine"] == "second"
        shown = await corral(*remote(api, admin), "engines", "--json")
        engines = {e["name"]: e for e in shown.json()["engines"]}
        assert engines["local"]["draining"] and engines["local"]["drained_at"]
        assert engines["second"]["sandboxes"] == 1
        assert engines["second"]["memory_placed_mb"] == made["resources"]["memory_mb"]
        table = await corral(*remote(api, admin), "engines")
        assert "second" in table.out and "ok" in table.out, table.err
        listing = await corral(*remote(api, user), "ls")
        header, row = listing.out.splitlines()[:2]
        assert header.split()[-1] == "ENGINE" and row.split()[-1] == "second", listing.out

        status, _ = await _call(api, "POST", "/api/engines/second/drain", admin)
        assert status == 200
        status, body = await _call(
            api, "POST", "/api/containers", user, json={"image": "corral/busybox", "name": "x"}
        )
        assert (status, body["error"]) == (503, "no engine available"), body
        assert "local is drained" in body["message"] and "second is drained" in body["message"]
        status, body = await _call(api, "POST", "/api/engines/nowhere/drain", admin)
        assert (status, body["error"]) == (404, "engine not found")

        undrained = await corral(*remote(api, admin), "engines", "undrain", "local")
        assert undrained.code == 0, undrained.err
        assert (await api.create(user, name="again"))["engine"] == "local"


async def test_an_engine_without_the_runtime_is_refused_at_start(
    two_engines: Settings, second_engine: SecondEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_info = DockerService.info

    async def second_without_runsc(self: DockerService) -> dict[str, Any]:
        info = await real_info(self)
        if self._base_url == second_engine.host:
            info["Runtimes"] = {"runc": {}}
        return info

    monkeypatch.setattr(DockerService, "info", second_without_runsc)
    server = TestServer(create_app(two_engines))
    with pytest.raises(RuntimeMissing, match="'second' has no 'runsc' runtime"):
        await server.start_server()
    await server.close()


async def test_a_kept_volume_stays_on_its_engine_and_brings_its_next_sandbox_there(
    two_engines: Settings, far_docker: docker.DockerClient
) -> None:
    async with serve(two_engines) as api:
        _, admin = await api.user("operator", admin=True, tier="test")
        _, user = await api.user(tier="test")
        assert (await _call(api, "POST", "/api/engines/local/drain", admin))[0] == 200
        made = await api.create(user, name="first")
        assert made["engine"] == "second"
        assert sh(far_docker, made["id"], "echo there > /home/user/note")[0] == 0
        status, _ = await _call(
            api, "DELETE", f"/api/containers/{made['id']}?keep_volume=true", user
        )
        assert status == 200
        assert (await _call(api, "POST", "/api/engines/local/undrain", admin))[0] == 200

        status, kept = await _call(api, "GET", "/api/volumes", user)
        (volume,) = kept["volumes"]
        assert volume["used_mb"] is not None  # measured on the second engine's host
        # With both engines open, a plain create goes to "local" (a tie, by name)...
        assert (await api.create(user, name="plain"))["engine"] == "local"
        # ...but one on the kept volume goes where the volume is.
        again = await api.create(user, name="again", volume=volume["name"])
        assert again["engine"] == "second"
        assert sh(far_docker, again["id"], "cat /home/user/note") == (0, "there\n")
