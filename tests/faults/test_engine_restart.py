"""dockerd stopped and started while requests run (the second engine, never the machine's own):
503 ``docker unavailable`` while it is down, nothing changed by a refused request, and recovery
without restarting Corral: the watcher reconnects and reconciles, requests work again, the
database and Docker agree, and the data written before the fault is still there."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import docker

from backend.containers.watcher import DockerWatcher
from backend.settings import Rate, Settings
from backend.state import ENGINES, EVENTS
from corral.client import EventConnection
from devkit.second_engine import SecondEngine
from devkit.waiting import wait_for
from tests.agreement import assert_agreement, read_rows
from tests.conftest import Api, serve, sh

# What a request may answer while the engine goes away or comes back: success, the engine
# refused, or the operation's own failure (it was cut off half-way), never a bug's 500.
TRANSITION_ANSWERS = {
    (503, "docker unavailable"),
    (500, "failed to create container"),
    (500, "failed to start container"),
    (500, "failed to stop container"),
    (500, "failed to delete container"),
}


@dataclass
class Outcome:
    what: str
    phases: tuple[str, str]  # the phase when it was sent, and when it was answered
    status: int
    error: str | None


@dataclass
class Load:
    """Requests in a loop (one worker per sandbox, one that creates and deletes), each outcome
    recorded with the phases it was sent and answered in."""

    api: Api
    headers: dict[str, str]
    phase: str = "up"
    outcomes: list[Outcome] = field(default_factory=list)
    made: list[str] = field(default_factory=list)
    in_flight: dict[str, int] = field(default_factory=dict)  # requests unanswered, by phase sent
    stopping: bool = False

    async def call(self, what: str, method: str, url: str, **kw: Any) -> dict[str, Any]:
        sent = self.phase
        self.in_flight[sent] = self.in_flight.get(sent, 0) + 1
        try:
            resp = await self.api.client.request(method, url, headers=self.headers, **kw)
            body: dict[str, Any] = await resp.json()
        finally:
            self.in_flight[sent] -= 1
        self.outcomes.append(Outcome(what, (sent, self.phase), resp.status, body.get("error")))
        return body

    def count(self, phase: str) -> int:
        return sum(1 for o in self.outcomes if o.phases == (phase, phase))

    async def cycle(self, db_id: str) -> None:
        while not self.stopping:
            await self.call("list", "GET", "/api/containers")
            await self.call("stop", "POST", f"/api/containers/{db_id}/stop")
            await self.call("start", "POST", f"/api/containers/{db_id}/start")

    async def create_delete(self) -> None:
        while not self.stopping:
            if len(self.made) >= 3:  # the engine is away and deletes are refused: wait for it
                await self.call("list", "GET", "/api/containers")
                continue
            body = {"image": "corral/busybox"}
            made = await self.call("create", "POST", "/api/containers?wait=true", json=body)
            if "id" in made:  # made, or made and failed (a row in error): deleted below
                self.made.append(made["id"])
            for ident in list(self.made):
                deleted = await self.call("delete", "DELETE", f"/api/containers/{ident}")
                if "error" not in deleted:
                    self.made.remove(ident)


async def _refused_while_down(load: Load, engine: SecondEngine, database: str) -> None:
    """Stop the engine; while it is down every Docker call is a 503 and no row changes."""
    load.phase = "stopping"
    await asyncio.to_thread(engine.stop)
    load.phase = "down"
    # What was sent before the engine was gone may still change rows (a create ending in error).
    await wait_for(
        lambda: not load.in_flight.get("up") and not load.in_flight.get("stopping"),
        10,
        what="the requests sent before the engine was gone",
    )
    before = sorted(read_rows(database), key=lambda r: r.id)
    await wait_for(lambda: load.count("down") >= 30, 20, what="requests while the engine is down")
    health = await load.api.client.get("/health")
    assert health.status == 503
    assert (await health.json())["docker"] == "unavailable"
    load.phase = "starting"
    assert sorted(read_rows(database), key=lambda r: r.id) == before
    down = [o for o in load.outcomes if o.phases == ("down", "down")]
    for o in down:
        expected = (200, None) if o.what == "list" else (503, "docker unavailable")
        assert (o.status, o.error) == expected, o


async def _fault(load: Load, watcher: DockerWatcher, engine: SecondEngine, database: str) -> float:
    """Requests before, during and after the engine's outage; how long recovery took."""
    await wait_for(lambda: load.count("up") >= 20, 20, what="requests before the fault")
    assert all(o.status < 300 for o in load.outcomes), load.outcomes
    await _refused_while_down(load, engine, database)
    reconciled = watcher.reconciled
    t0 = time.monotonic()
    await asyncio.to_thread(engine.start)
    load.phase = "up again"
    # Corral notices by itself: the watcher reconnects and reconciles every row.
    await wait_for(lambda: watcher.reconciled > reconciled, 10, what="a reconcile")
    await wait_for(lambda: load.count("up again") >= 20, 20, what="requests after")
    assert (await load.api.client.get("/health")).status == 200
    return time.monotonic() - t0


async def test_engine_stopped_and_started_under_requests(
    settings: Settings, second_engine: SecondEngine, instance: str
) -> None:
    # No write limit: while the engine is down every refusal is immediate, and the load's
    # requests would soon pass the per-user rate (they are what is measured, not the limit).
    on_second = settings.with_overrides(docker_host=second_engine.host, write_rate=Rate(0, 60.0))
    client = second_engine.client()
    try:
        async with serve(on_second) as api:
            _, headers = await api.user(tier="test")
            made = [await api.create(headers, name=f"s{i}") for i in range(3)]
            marker = uuid.uuid4().hex
            for m in made:
                assert sh(client, m["id"], f"echo {marker} > /home/user/marker")[0] == 0
            watcher = api.app[ENGINES].first.watch.current
            await wait_for(watcher.connected.is_set, 10, what="the watcher")

            corral = api.corral(headers)
            stream = await corral.connect_events()
            seen: list[int] = []
            reader = asyncio.create_task(_collect(stream, seen))
            load = Load(api, headers)
            workers = [asyncio.create_task(load.cycle(m["db_id"])) for m in made]
            workers.append(asyncio.create_task(load.create_delete()))
            try:
                recovered_s = await _fault(
                    load, watcher, second_engine, on_second.resolved_database_url
                )
            finally:
                load.stopping = True
                await asyncio.gather(*workers)

            settled = [o for o in load.outcomes if o.phases[0] == "up again"]
            assert all(o.status < 300 for o in settled[-10:]), settled[-10:]
            odd = [
                o
                for o in load.outcomes
                if o.status >= 300 and (o.status, o.error) not in TRANSITION_ANSWERS
            ]
            assert not odd, odd
            assert recovered_s < 10

            await _end_state(api, headers, load, made, marker, client)
            assert_agreement(on_second.resolved_database_url, client, instance)
            # The event stream stayed open through the outage and missed nothing.
            last = await api.app[EVENTS].last_seq(made[0]["owner_id"])
            await wait_for(lambda: seen[-1] == last, 10, what="every event on the stream")
            assert seen == list(range(seen[0], last + 1))
            reader.cancel()
            await stream.close()
            await corral.close()
    finally:
        client.close()


async def _collect(stream: EventConnection, seen: list[int]) -> None:
    """Every position the stream sends (the list's, then each event's)."""
    while True:
        message = await stream.receive()
        if message["type"] != "pong":
            seen.append(int(message["seq"]))


async def _end_state(
    api: Api,
    headers: dict[str, str],
    load: Load,
    made: list[dict[str, Any]],
    marker: str,
    client: docker.DockerClient,
) -> None:
    """Every sandbox made before the fault runs again with its data; the load's leftovers go."""
    for db_id in load.made:
        resp = await api.client.delete(f"/api/containers/{db_id}", headers=headers)
        assert resp.status == 200, await resp.json()
    for m in made:
        resp = await api.client.post(f"/api/containers/{m['db_id']}/start", headers=headers)
        body = await resp.json()
        assert resp.status == 200, body
        assert sh(client, body["id"], "cat /home/user/marker") == (0, f"{marker}\n")
