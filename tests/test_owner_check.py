"""The owner check comes before any lock or Docker call: another user's container answers the
byte-identical 404 of an unknown ID at once, even while its lock is held (a rebuild, a stop),
so timing cannot tell that the ID exists.

Deterministic, no timed assertion: the test holds the container's lock itself and waits until
the request either completes or queues on that lock; only completing passes."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp

from backend.state import CONTAINERS
from tests.conftest import Api, wait_for

# Every route that takes a container ID, with a body where it needs one.
ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/api/containers/{id}", None),
    ("GET", "/api/containers/{id}/stats", None),
    ("GET", "/api/containers/{id}/logs", None),
    ("POST", "/api/containers/{id}/start", None),
    ("POST", "/api/containers/{id}/stop", None),
    ("DELETE", "/api/containers/{id}", None),
    ("DELETE", "/api/containers/{id}?keep_volume=true", None),
    ("PATCH", "/api/containers/{id}/settings", {"memory_mb": 256}),
    ("POST", "/api/containers/{id}/role/reinstall", None),
]


async def _answer_while_locked(
    api: Api, db_id: str, method: str, path: str, body: Any, headers: dict[str, str]
) -> tuple[int, bytes]:
    """The answer to one request sent while the test holds the container's lock; fails if the
    request queued on the lock instead of answering."""
    rows = api.app[CONTAINERS].repository

    async def send() -> tuple[int, bytes]:
        async with api.client.request(method, path, json=body, headers=headers) as resp:
            return resp.status, await resp.read()

    async with rows.lock(db_id):
        task = asyncio.ensure_future(send())
        await wait_for(
            lambda: task.done() or rows.lock_users(db_id) > 1,
            what=f"{method} {path} to answer or to queue on the lock",
        )
        queued = rows.lock_users(db_id) > 1
    result = await task
    assert not queued, f"{method} {path} waited for the lock of a container that is not its own"
    return result


async def test_another_users_ids_answer_404_while_the_container_is_locked(api: Api) -> None:
    _, alice = await api.user()
    _, bob = await api.user()
    made = await api.create(alice, name="locked")
    await api.get(alice, made["id"])  # the backend now remembers its Docker ID, too
    idents = [made["db_id"], made["id"], made["id"][:12], "locked"]
    for method, template, body in ROUTES:
        unknown = await api.client.request(
            method, template.format(id=str(uuid.uuid4())), json=body, headers=bob
        )
        expected = (unknown.status, await unknown.read())
        assert expected[0] == 404
        for ident in idents:
            path = template.format(id=ident)
            answer = await _answer_while_locked(api, made["db_id"], method, path, body, bob)
            assert answer == expected, (method, path, answer)
    # Nothing was done to it.
    assert (await api.get(alice, made["db_id"]))["status"] == "running"


async def test_another_users_terminal_answers_404_while_the_container_is_locked(
    api: Api,
) -> None:
    _, alice = await api.user()
    _, bob = await api.user()
    made = await api.create(alice)
    rows = api.app[CONTAINERS].repository

    async def connect() -> int:
        try:
            ws = await api.client.ws_connect(f"/ws/terminal/{made['db_id']}", headers=bob)
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status
        await ws.close()
        return 101

    async with rows.lock(made["db_id"]):
        task = asyncio.ensure_future(connect())
        await wait_for(lambda: task.done() or rows.lock_users(made["db_id"]) > 1)
        queued = rows.lock_users(made["db_id"]) > 1
    assert not queued
    assert await task == 404
