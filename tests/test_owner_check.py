"""The owner check comes before any lock or Docker call: another user's container answers the
byte-identical 404 of an unknown ID at once, even while its lock is held (a rebuild, a stop),
so timing cannot tell that the ID exists.

Deterministic, no timed assertion: the test holds the container's lock itself and waits (with a
deadline) for the request to complete; a request that queues on the lock cannot complete while it
is held."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable
from typing import Any, TypeVar

import aiohttp

from backend.state import CONTAINERS
from devkit.waiting import wait_for
from tests.conftest import Api

T = TypeVar("T")

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
    ("GET", "/api/containers/{id}/files/list?path=/home/user", None),
    ("GET", "/api/containers/{id}/files?path=/home/user/x", None),
    ("POST", "/api/containers/{id}/files?path=/home/user", None),
    ("DELETE", "/api/containers/{id}/files?path=/home/user/x", None),
    ("POST", "/api/containers/{id}/files/mkdir?path=/home/user/x", None),
]


async def _answer_while_locked(
    api: Api, db_id: str, method: str, path: str, body: Any, headers: dict[str, str]
) -> tuple[int, bytes]:
    """The answer to one request sent while the test holds the container's lock; fails if the
    request does not answer while the lock is held (it queued on the lock)."""

    async def send() -> tuple[int, bytes]:
        async with api.client.request(method, path, json=body, headers=headers) as resp:
            return resp.status, await resp.read()

    return await _while_locked(api, db_id, send(), f"{method} {path}")


async def _while_locked(api: Api, db_id: str, request: Awaitable[T], what: str) -> T:
    """Run ``request`` while holding the container's lock; it must complete before the lock is
    released. (Other tasks, the Docker watcher's, may queue on the lock meanwhile: only the
    request's own completion counts.)"""
    task = asyncio.ensure_future(request)
    try:
        async with api.app[CONTAINERS].repository.lock(db_id):
            await wait_for(
                task.done, what=f"{what} to answer while the container is locked (not to wait)"
            )
        return task.result()
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
                await task


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

    async def connect() -> int:
        try:
            ws = await api.client.ws_connect(f"/ws/terminal/{made['db_id']}", headers=bob)
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status
        await ws.close()
        return 101

    assert await _while_locked(api, made["db_id"], connect(), "a terminal") == 404
