"""The bad-input catalogue's shared machinery: one backend per module, the people in it, and
the proof that a refused request changed nothing.

Each module of ``tests/hostile`` serves one backend (``world`` in its conftest), since its cases
cannot affect one another: each is refused. Each case still proves it: the caller's container
list, the engine (containers and volumes of the module's instance label, with their state) and
every table of the database are the same after the request as before it, the answer has the
contract's status and ``{"error", "message"}`` body, and nothing was logged as a failure.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import docker
import pytest
from sqlalchemy import select

from backend.db.models import Base
from backend.state import SESSIONS
from tests.conftest import WS_HANDSHAKE, Api

# Columns that reading them changes (an API token records when it was last used).
VOLATILE = {("api_tokens", "last_used_at")}


@dataclass
class World:
    api: Api
    docker: docker.DockerClient
    instance: str
    headers: dict[str, dict[str, str]]  # who -> their request headers ("none": no token)
    ids: dict[str, str] = field(default_factory=dict)  # what a path's {placeholder} becomes

    def path(self, template: str) -> str:
        return template.format(**self.ids)


async def snapshot(world: World, who: str = "alice") -> dict[str, Any]:
    """What a refused request must leave as it was."""
    listed = await world.api.client.get("/api/containers", headers=world.headers[who])
    label = f"corral.instance={world.instance}"
    containers = sorted(
        (c.id, c.name, c.status)
        for c in world.docker.containers.list(all=True, filters={"label": label})
    )
    volumes = sorted(v.name for v in world.docker.volumes.list(filters={"label": label}))
    tables: dict[str, list[tuple[Any, ...]]] = {}
    async with world.api.app[SESSIONS]() as session:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if (table.name, c.name) not in VOLATILE]
            rows = (await session.execute(select(*columns))).all()
            tables[table.name] = sorted(tuple(map(repr, row)) for row in rows)
    return {
        "list": (listed.status, await listed.json()),
        "containers": containers,
        "volumes": volumes,
        "tables": tables,
    }


def assert_refusal(status: int, content_type: str, raw: bytes, expected: tuple[int, str]) -> None:
    """The contract's shape: the status, JSON, ``error`` exactly, ``message`` a sentence."""
    body = json.loads(raw) if content_type == "application/json" else None
    assert (status, content_type) == (expected[0], "application/json"), raw[:300]
    assert isinstance(body, dict), raw[:300]
    assert body.get("error") == expected[1], body
    assert isinstance(body.get("message"), str) and body["message"], body


def assert_no_failure_logged(caplog: pytest.LogCaptureFixture) -> None:
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info is not None]
    assert not failures, [r.getMessage() for r in failures]


@dataclass(frozen=True)
class Case:
    """One bad HTTP request and the refusal it must get."""

    name: str
    method: str
    path: str  # a template: {box} is alice's container, {token} her read-only token's ID ...
    status: int
    error: str
    body: Any = None  # sent as JSON when not None
    raw: bytes | None = None  # sent as it is (Content-Type: application/json)
    who: str = "alice"
    headers: tuple[tuple[str, str], ...] = ()  # values are templates too
    handshake: bool = False  # send the WebSocket handshake's headers


async def run_case(world: World, case: Case, caplog: pytest.LogCaptureFixture) -> None:
    before = await snapshot(world)
    extra = {key: value.format(**world.ids) for key, value in case.headers}
    headers = {**world.headers[case.who], **extra}
    if case.handshake:
        headers.update(WS_HANDSHAKE)
    kwargs: dict[str, Any] = {"headers": headers}
    if case.raw is not None:
        kwargs["data"] = case.raw
        headers.setdefault("Content-Type", "application/json")
    elif case.body is not None:
        kwargs["json"] = case.body
    resp = await world.api.client.request(case.method, world.path(case.path), **kwargs)
    raw = await resp.read()
    assert_refusal(resp.status, resp.content_type, raw, (case.status, case.error))
    if case.status == 405:
        assert resp.headers.get("Allow"), "a 405 names the methods allowed"
    assert await snapshot(world) == before, "a refused request changed something"
    assert_no_failure_logged(caplog)
