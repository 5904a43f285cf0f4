"""A container's name works wherever an ID does (issue 11, item 11): the order is database ID,
full Docker ID, exact name (the caller's own first), then a unique Docker ID prefix; another
user's container stays the same 404 as an unknown one."""

from __future__ import annotations

from typing import Any

from tests.conftest import WS_HANDSHAKE, Api
from tests.test_cli import corral, remote
from tests.test_terminal import _open


async def _status_and_body(
    api: Api, headers: dict[str, str], method: str, path: str
) -> tuple[int, bytes]:
    resp = await api.client.request(method, path, headers=headers)
    return resp.status, await resp.read()


async def test_every_id_route_accepts_the_name(api: Api) -> None:
    _, headers = await api.user()
    made = await api.create(headers, name="web")
    assert (await api.get(headers, "web"))["db_id"] == made["db_id"]

    stop = await api.client.post("/api/containers/web/stop", headers=headers)
    assert stop.status == 200 and (await stop.json())["status"] == "stopped"
    start = await api.client.post("/api/containers/web/start", headers=headers)
    assert start.status == 200 and (await start.json())["status"] == "running"
    term = await _open(api, headers, "web")
    await term.send("echo named-$((6*7))\n")
    await term.expect("named-42")
    await term.ws.close()
    resized = await api.client.patch(
        "/api/containers/web/settings", json={"memory_mb": 256}, headers=headers
    )
    body = await resized.json()
    assert resized.status == 200 and body["restarted"] is True, body
    rebuilt = body["container"]
    assert rebuilt["id"] != made["id"] and rebuilt["db_id"] == made["db_id"]
    # The name still reaches it after the rebuild gave it a new Docker ID.
    assert (await api.get(headers, "web"))["id"] == rebuilt["id"]
    reinstall = await api.client.post("/api/containers/web/role/reinstall", headers=headers)
    assert reinstall.status == 202, await reinstall.text()
    renamed = await api.client.patch(
        "/api/containers/web/settings", json={"name": "site"}, headers=headers
    )
    assert renamed.status == 200
    gone = await api.client.get("/api/containers/web", headers=headers)
    assert gone.status == 404 and (await gone.json())["error"] == "container not found"
    deleted = await api.client.delete("/api/containers/site", headers=headers)
    assert deleted.status == 200 and (await deleted.json())["db_id"] == made["db_id"]


async def test_ids_come_before_names_and_names_before_prefixes(api: Api) -> None:
    _, headers = await api.user()
    first = await api.create(headers, name="first")
    # Names that look like the first container's full Docker ID and a 12-character prefix.
    full_twin = await api.create(headers, name=first["id"])
    prefix_twin = await api.create(headers, name=first["id"][:12])
    assert (await api.get(headers, first["id"]))["db_id"] == first["db_id"]
    assert (await api.get(headers, first["id"][:12]))["db_id"] == prefix_twin["db_id"]
    assert (await api.get(headers, first["id"][:13]))["db_id"] == first["db_id"]
    # A name is exact: case and partial names name nothing.
    for ident in ("FIRST", "firs", "first-"):
        status, body = await _status_and_body(api, headers, "GET", f"/api/containers/{ident}")
        assert status == 404 and b"container not found" in body
    stop = await api.client.post(f"/api/containers/{first['id']}/stop", headers=headers)
    assert (await stop.json())["name"] == "first"
    assert (await api.get(headers, full_twin["db_id"]))["status"] == "running"


async def test_another_users_name_is_the_same_404_as_no_name(api: Api) -> None:
    _, owner = await api.user()
    _, other = await api.user()
    await api.create(owner, name="private")
    for method, suffix in (
        ("GET", ""),
        ("POST", "/start"),
        ("POST", "/stop"),
        ("DELETE", ""),
        ("PATCH", "/settings"),
        ("POST", "/role/reinstall"),
    ):
        theirs = await _status_and_body(api, other, method, f"/api/containers/private{suffix}")
        nothing = await _status_and_body(api, other, method, f"/api/containers/nothing{suffix}")
        assert theirs[0] == 404 and theirs == nothing, (method, suffix)
    ws = await api.client.get("/ws/terminal/private", headers={**other, **WS_HANDSHAKE})
    ws_nothing = await api.client.get("/ws/terminal/nothing", headers={**other, **WS_HANDSHAKE})
    assert ws.status == ws_nothing.status == 404
    assert await ws.read() == await ws_nothing.read()
    assert (await api.get(owner, "private"))["status"] == "running"


async def test_an_admin_gets_their_own_name_first(api: Api) -> None:
    _, admin = await api.user(admin=True)
    _, alice = await api.user()
    _, bob = await api.user()
    alices = await api.create(alice, name="shared")
    only_bob = await api.create(bob, name="bobs")
    assert (await api.get(admin, "shared"))["db_id"] == alices["db_id"]  # one user has it
    assert (await api.get(admin, "bobs"))["db_id"] == only_bob["db_id"]
    await api.create(bob, name="shared")
    status, body = await _status_and_body(api, admin, "GET", "/api/containers/shared")
    assert status == 404 and b"container not found" in body  # two users: ambiguous
    own = await api.create(admin, name="shared")
    assert (await api.get(admin, "shared"))["db_id"] == own["db_id"]
    assert (await api.get(alice, "shared"))["db_id"] == alices["db_id"]


async def test_the_cli_passes_names_through(api: Api) -> None:
    _, headers = await api.user()
    made = await api.create(headers, name="by-name")
    server = remote(api, headers)
    stopped = await corral(*server, "stop", "by-name", "--json")
    assert stopped.code == 0, stopped.err
    result: dict[str, Any] = stopped.json()
    assert (result["name"], result["status"]) == ("by-name", "stopped")
    removed = await corral(*server, "rm", "by-name")
    assert removed.code == 0, removed.err
    status, _ = await _status_and_body(api, headers, "GET", f"/api/containers/{made['db_id']}")
    assert status == 404
