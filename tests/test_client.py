"""``corral.client`` against a real backend: every route, and errors typed by the contract's
strings. The reconnecting event stream is tested here; the stream's protocol in test_events."""

from __future__ import annotations

import asyncio

import pytest

from backend.state import EVENT_HUB
from corral.client import (
    ERRORS,
    ApiError,
    Backoff,
    ContainerNotFound,
    CorralClient,
    InvalidContainerName,
    InvalidParameters,
    NameTaken,
    NotAuthorized,
    OperationFailed,
    TransportError,
    Unauthorized,
    UnsupportedImage,
    api_error,
)
from devkit.waiting import wait_for
from tests.conftest import BUSYBOX, Api

FAST = Backoff(initial_s=0.01, maximum_s=0.1)


async def test_meta_and_auth_routes(api: Api) -> None:
    user, _ = await api.user(password="correct horse")
    async with CorralClient(api.url) as client:
        health = await client.health()
        assert health["status"] == "ok" and health["database"] == "ok"
        assert (await client.openapi())["openapi"].startswith("3.1")

        session = await client.login(user.username, "correct horse")
        assert client.token == session["token"]
        me = await client.me()
        assert me["user"]["username"] == user.username
        assert me["usage"] == {
            "containers": 0,
            "disk_mb": 0,
            "kept_volumes": 0,
            "kept_volumes_mb": 0,
        }
        assert {i["name"] for i in (await client.images())["images"]} >= {BUSYBOX}
        assert (await client.roles())["roles"]

        made = await client.create_token("ci", scopes=["read"], expires_in_days=1)
        assert made["token"].startswith("crl_") and made["scopes"] == ["read"]
        listed = await client.list_tokens()
        assert [t["id"] for t in listed["tokens"]] == [made["id"]]
        async with CorralClient(api.url, made["token"]) as scoped:
            assert (await scoped.list_containers())["count"] == 0
            with pytest.raises(NotAuthorized) as read_only:
                await scoped.create_container(BUSYBOX)
            assert (read_only.value.status, read_only.value.error) == (403, "not authorized")
            await client.revoke_token(made["id"])
            with pytest.raises(Unauthorized):
                await scoped.me()

        await client.logout()
        assert client.token is None

        with pytest.raises(Unauthorized) as wrong:
            await client.login(user.username, "wrong")
        assert wrong.value.status == 401
        assert wrong.value.error == "unauthorized"
        assert wrong.value.message and wrong.value.body["error"] == "unauthorized"

        guest = await client.guest_login("visitor")
        assert guest["guest"] is True and guest["user"]["tier"] == "guest"
        with pytest.raises(NotAuthorized):
            await client.create_token("nope")


async def test_container_routes_and_their_typed_errors(api: Api) -> None:
    _, headers = await api.user()
    async with api.corral(headers) as client:
        made = await client.create_container(
            BUSYBOX, name="typed", labels={"team": "a"}, environment={"K": "v"}, wait=True
        )
        assert made["status"] == "running" and made["labels"] == {"team": "a"}
        assert (await client.get_container(made["id"][:12]))["db_id"] == made["db_id"]
        listed = await client.list_containers()
        assert [c["db_id"] for c in listed["containers"]] == [made["db_id"]]
        assert (await client.stop_container(made["id"]))["status"] == "stopped"
        assert (await client.stop_container(made["id"]))["message"] == "container already stopped"
        assert (await client.start_container(made["id"]))["status"] == "running"

        with pytest.raises(NameTaken) as taken:
            await client.create_container(BUSYBOX, name="typed")
        assert (taken.value.status, taken.value.error) == (
            409,
            "container with this name already exists",
        )
        with pytest.raises(InvalidContainerName):
            await client.create_container(BUSYBOX, name="-bad")
        with pytest.raises(UnsupportedImage):
            await client.create_container("nope/nothing")
        with pytest.raises(InvalidParameters) as out_of_range:
            await client.create_container(BUSYBOX, memory_mb=4096)
        assert out_of_range.value.field == "memory_mb"
        assert out_of_range.value.message == (
            "memory_mb must be between 256 and 2048 on the free tier"
        )
        with pytest.raises(NotAuthorized):
            await client.list_containers(all_users=True)

        deleted = await client.delete_container(made["id"], keep_volume=False)
        assert (deleted["message"], deleted["db_id"]) == ("container deleted", made["db_id"])
        with pytest.raises(ContainerNotFound) as gone:
            await client.get_container(made["db_id"])
        assert (gone.value.status, gone.value.error) == (404, "container not found")
        assert str(gone.value).startswith("container not found: ")
        # Odd IDs stay inside the path they belong to.
        with pytest.raises(ContainerNotFound):
            await client.get_container("../../health")


async def test_update_settings(api: Api) -> None:
    _, headers = await api.user()
    async with api.corral(headers) as client:
        made = await client.create_container(BUSYBOX, name="old", wait=True)
        result = await client.update_settings(made["id"], name="new")
        assert result["message"] == "settings updated"
        assert result["container"]["name"] == "new"


def test_every_contract_error_string_has_its_class() -> None:
    for error, cls in ERRORS.items():
        raised = api_error(400, {"error": error, "message": "m", "field": "f"})
        assert type(raised) is cls
        assert (raised.error, raised.message, raised.field) == (error, "m", "f")
    failed = api_error(500, {"error": "failed to start container", "message": "engine said no"})
    assert isinstance(failed, OperationFailed) and failed.error == "failed to start container"
    unknown = api_error(418, {"error": "teapot", "message": "short and stout"})
    assert type(unknown) is ApiError and unknown.error == "teapot"
    bodiless = api_error(401, None)
    assert isinstance(bodiless, Unauthorized) and bodiless.status == 401


async def test_an_unreachable_server_is_a_transport_error() -> None:
    async with CorralClient("http://127.0.0.1:9", "token") as client:
        with pytest.raises(TransportError):
            await client.me()
        with pytest.raises(TransportError):
            await client.connect_events()


async def test_event_stream_reconnects_and_resumes_with_since(api: Api) -> None:
    _, headers = await api.user()
    hub = api.app[EVENT_HUB]
    async with api.corral(headers) as client:
        made = await client.create_container(BUSYBOX, wait=True)
        # The test reads nothing while the sandbox stops and starts (seconds on a slow host).
        # The 1013 close frame waits unread meanwhile, and a heartbeat ping then goes
        # unanswered (a closing server sends nothing more), so aiohttp would call the
        # connection dead (1006) before the frame is read. The heartbeat is not under test.
        stream = client.events(backoff=FAST, heartbeat_s=600)
        first = await anext(stream)
        assert first["type"] == "list" and stream.last_seq == first["seq"]
        await wait_for(lambda: len(hub) == 1, what="the subscription")
        for sub in hub.subscriptions():  # the server drops it, as for a client too slow
            sub.close(1013, "test")
        await wait_for(lambda: len(hub) == 0, what="the server to close it")
        await client.stop_container(made["id"])
        await client.start_container(made["id"])
        await client.stop_container(made["id"])
        async with asyncio.timeout(30):
            missed = [await anext(stream) for _ in range(3)]
        assert [m["type"] for m in missed] == [
            "container_stopped",
            "container_started",
            "container_stopped",
        ]
        assert [m["seq"] for m in missed] == [first["seq"] + i for i in (1, 2, 3)]
        assert stream.reconnects == 1 and stream.last_close_code == 1013
        await client.start_container(made["id"])
        async with asyncio.timeout(30):
            live = await anext(stream)
        assert (live["type"], live["seq"]) == ("container_started", first["seq"] + 4)
        await stream.close()
        with pytest.raises(StopAsyncIteration):
            await anext(stream)


async def test_event_stream_gives_up_on_a_refusal_retrying_cannot_fix(api: Api) -> None:
    async with CorralClient(api.url, "bad-token") as client:
        stream = client.events(backoff=FAST)
        with pytest.raises(Unauthorized):
            await anext(stream)
