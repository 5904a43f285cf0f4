"""The contract's "WebSocket: events" section, with real WebSockets against a real backend and
the real engine. Clients are the project's own (``corral.client``) except where a test needs a
client that misbehaves on purpose (``tests.rawws``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import aiohttp
import docker
import pytest
from sqlalchemy import func, select

from backend.db.models import EventRecord
from backend.settings import Settings
from backend.state import EVENT_HUB, EVENTS, SESSIONS, SIGNER
from corral.client import (
    CorralClient,
    EventConnection,
    EventMessage,
    InvalidParameters,
    NotAuthorized,
    StreamClosed,
    Unauthorized,
)
from devkit.waiting import wait_for
from tests.conftest import BUSYBOX, Api, serve
from tests.rawws import RawWebSocket

TIMEOUT_S = 30.0
CONTAINER_KEYS = {"id", "db_id", "name", "image", "status", "resources", "labels"}


async def recv(conn: EventConnection, timeout_s: float = TIMEOUT_S) -> EventMessage:
    async with asyncio.timeout(timeout_s):
        return await conn.receive()


async def recv_until(
    conn: EventConnection,
    done: Callable[[EventMessage], bool],
    timeout_s: float = TIMEOUT_S,
) -> list[EventMessage]:
    """Every message up to and including the first for which ``done`` holds."""
    got: list[EventMessage] = []
    async with asyncio.timeout(timeout_s):
        while True:
            got.append(await conn.receive())
            if done(got[-1]):
                return got


async def assert_nothing_pending(conn: EventConnection) -> None:
    """Nothing is queued for ``conn``: a pong goes through the same queue as events, so if the
    very next message after a ping is the pong, no event was waiting ahead of it."""
    await conn.ping()
    assert (await recv(conn))["type"] == "pong"


def progress_complete(m: EventMessage) -> bool:
    return m["type"] == "container_progress" and bool(m["container"].get("complete"))


def consecutive(messages: list[EventMessage]) -> bool:
    seqs = [m["seq"] for m in messages]
    return seqs == list(range(seqs[0], seqs[0] + len(seqs)))


# -- the first message and every lifecycle change ---------------------------------------------


async def test_first_message_is_the_list(api: Api) -> None:
    user, headers = await api.user()
    made = await api.create(headers, name="listed")
    last = await api.app[EVENTS].last_seq(user.id)
    async with api.corral(headers) as client, await client.connect_events() as conn:
        first = await recv(conn)
        assert first["type"] == "list"
        assert first["seq"] == last > 0
        assert first["timestamp"].endswith("Z")
        listing = first["container"]
        assert listing["count"] == 1 and listing["limit"] == 5
        (item,) = listing["containers"]
        assert set(item) >= CONTAINER_KEYS
        assert (item["db_id"], item["id"], item["status"]) == (made["db_id"], made["id"], "running")
        assert listing == await client.list_containers()  # exactly what the list route says
        await assert_nothing_pending(conn)


async def test_create_start_stop_delete_each_produce_their_event(api: Api) -> None:
    _, headers = await api.user()
    async with api.corral(headers) as client, await client.connect_events() as conn:
        first = await recv(conn)
        assert (first["type"], first["seq"], first["container"]["count"]) == ("list", 0, 0)

        made = await client.create_container(BUSYBOX, name="life")
        created = await recv_until(conn, progress_complete)
        assert created[0]["type"] == "container_created"
        assert created[0]["container"]["db_id"] == made["db_id"]
        assert created[0]["container"]["status"] == "creating"
        types = [m["type"] for m in created]
        assert set(types) == {"container_created", "container_progress", "container_started"}
        started = next(m for m in created if m["type"] == "container_started")
        assert started["container"]["status"] == "running"
        percents = [
            m["container"]["progress"] for m in created if m["type"] == "container_progress"
        ]
        assert percents == sorted(percents) and percents[-1] == 100
        ident = started["container"]["id"]
        assert len(ident) == 64

        await client.stop_container(ident)
        stopped = await recv(conn)
        assert stopped["type"] == "container_stopped"
        assert (stopped["container"]["id"], stopped["container"]["status"]) == (ident, "stopped")

        await client.start_container(ident)
        restarted = await recv(conn)
        assert restarted["type"] == "container_started"
        assert restarted["container"]["status"] == "running"

        await client.delete_container(ident)
        deleted = await recv(conn)
        assert deleted["type"] == "container_deleted"
        assert deleted["container"]["db_id"] == made["db_id"]

        everything = [*created, stopped, restarted, deleted]
        assert everything[0]["seq"] == 1 and consecutive(everything)
        assert all(m["timestamp"].endswith("Z") for m in everything)
        await assert_nothing_pending(conn)


async def test_settings_change_produces_container_updated(api: Api) -> None:
    _, headers = await api.user()
    made = await api.create(headers, name="before")
    async with api.corral(headers) as client, await client.connect_events() as conn:
        await recv(conn)
        await client.update_settings(made["id"], name="after")
        updated = await recv_until(conn, lambda m: m["type"] == "container_updated")
        assert updated[-1]["container"]["name"] == "after"


async def test_docker_stop_outside_corral_produces_container_stopped(
    api: Api, docker_client: docker.DockerClient
) -> None:
    _, headers = await api.user()
    made = await api.create(headers)
    async with api.corral(headers) as client, await client.connect_events() as conn:
        await recv(conn)
        await asyncio.to_thread(docker_client.containers.get(made["id"]).stop, timeout=1)
        got = await recv_until(conn, lambda m: m["type"] == "container_stopped", timeout_s=10)
        assert got[-1]["container"]["id"] == made["id"]
        assert got[-1]["container"]["status"] == "stopped"


async def test_docker_rm_outside_corral_produces_container_updated_missing(
    api: Api, docker_client: docker.DockerClient
) -> None:
    _, headers = await api.user()
    made = await api.create(headers)
    async with api.corral(headers) as client, await client.connect_events() as conn:
        await recv(conn)
        await asyncio.to_thread(docker_client.containers.get(made["id"]).remove, force=True)
        got = await recv_until(
            conn,
            lambda m: m["type"] == "container_updated" and m["container"]["status"] == "missing",
            timeout_s=10,
        )
        assert got[-1]["container"]["db_id"] == made["db_id"]


# -- replay -------------------------------------------------------------------------------------


async def test_reconnect_with_since_gets_the_missed_three_once_in_order(api: Api) -> None:
    _, headers = await api.user()
    made = await api.create(headers)
    async with api.corral(headers) as client:
        async with await client.connect_events() as conn:
            seen = (await recv(conn))["seq"]
        # Three changes while disconnected.
        await client.stop_container(made["id"])
        await client.start_container(made["id"])
        await client.stop_container(made["id"])
        async with await client.connect_events(since=seen) as conn:
            missed = [await recv(conn) for _ in range(3)]
            assert [m["type"] for m in missed] == [
                "container_stopped",
                "container_started",
                "container_stopped",
            ]
            assert [m["seq"] for m in missed] == [seen + 1, seen + 2, seen + 3]
            # Then live ones, with nothing repeated in between.
            await client.start_container(made["id"])
            live = await recv(conn)
            assert (live["type"], live["seq"]) == ("container_started", seen + 4)
            await assert_nothing_pending(conn)


async def test_since_resumes_exactly_whatever_arrives_during_the_catch_up(api: Api) -> None:
    """Events committed while a client is being caught up are neither lost nor doubled."""
    user, headers = await api.user()
    log = api.app[EVENTS]
    api.conformance.events = False  # made-up payloads, not containers
    for i in range(50):
        await log.publish(user.id, "container_progress", {"id": "x", "progress": i})
    async with api.corral(headers) as client:
        conn = await client.connect_events(since=10)

        async def more() -> None:
            for i in range(50, 100):
                await log.publish(user.id, "container_progress", {"id": "x", "progress": i})

        writer = asyncio.create_task(more())
        got = [await recv(conn) for _ in range(90)]
        await writer
        assert [m["seq"] for m in got] == list(range(11, 101))
        assert [m["container"]["progress"] for m in got] == list(range(10, 100))
        await assert_nothing_pending(conn)
        await conn.close()


async def test_pruned_gap_gets_a_fresh_list_and_the_log_stays_bounded(
    settings: Settings,
) -> None:
    bounded = settings.with_overrides(event_log_per_user=5, event_prune_interval_s=0.05)
    async with serve(bounded) as api:
        user, headers = await api.user()
        log = api.app[EVENTS]
        api.conformance.events = False  # made-up payloads, not containers
        for i in range(12):
            await log.publish(user.id, "container_progress", {"id": "x", "progress": i})

        async def kept() -> int:
            async with api.app[SESSIONS]() as session:
                query = select(func.count()).where(EventRecord.user_id == user.id)
                return int(await session.scalar(query) or 0)

        await wait_for(lambda: _eq(kept(), 5), what="the background prune")
        async with api.corral(headers) as client:
            async with await client.connect_events(since=2) as conn:
                fresh = await recv(conn)
                assert (fresh["type"], fresh["seq"]) == ("list", 12)
                await assert_nothing_pending(conn)
            async with await client.connect_events(since=9) as conn:
                replay = [await recv(conn) for _ in range(3)]
                assert [m["seq"] for m in replay] == [10, 11, 12]
                await assert_nothing_pending(conn)
            async with await client.connect_events(since=12) as conn:
                await assert_nothing_pending(conn)
            # A seq this server never gave (another server's, or before a reset): a fresh list.
            async with await client.connect_events(since=99) as conn:
                assert (await recv(conn))["type"] == "list"


async def _eq(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


# -- isolation and the admin's view -----------------------------------------------------------


async def test_users_see_only_their_own_and_admins_may_see_all(api: Api) -> None:
    alice, alice_h = await api.user()
    bob, bob_h = await api.user()
    _, admin_h = await api.user(admin=True)
    async with (
        api.corral(alice_h) as alice_c,
        api.corral(bob_h) as bob_c,
        api.corral(admin_h) as admin_c,
    ):
        alice_s = await alice_c.connect_events()
        bob_s = await bob_c.connect_events()
        all_s = await admin_c.connect_events(all_users=True)
        admin_own = await admin_c.connect_events()
        for conn in (alice_s, bob_s, all_s, admin_own):
            assert (await recv(conn))["type"] == "list"

        made_a = await alice_c.create_container(BUSYBOX, wait=True)
        alice_events = await recv_until(alice_s, progress_complete)
        await assert_nothing_pending(bob_s)  # nothing of Alice's reached Bob
        made_b = await bob_c.create_container(BUSYBOX, wait=True)
        bob_events = await recv_until(bob_s, progress_complete)
        await assert_nothing_pending(alice_s)
        await assert_nothing_pending(admin_own)  # without ?all=true an admin sees only theirs

        everyone = await recv_until(
            all_s,
            lambda m: progress_complete(m) and m["container"]["db_id"] == made_b["db_id"],
        )
        assert len(everyone) == len(alice_events) + len(bob_events)
        owners = [m["container"].get("db_id") for m in everyone]
        assert set(owners) == {made_a["db_id"], made_b["db_id"]}
        # On the all-users stream, seq is the event's global ID: increasing, and resumable.
        seqs = [m["seq"] for m in everyone]
        assert seqs == sorted(set(seqs))
        async with await admin_c.connect_events(all_users=True, since=seqs[2]) as again:
            replay = [await recv(again) for _ in range(len(seqs) - 3)]
            assert [m["seq"] for m in replay] == seqs[3:]
            await assert_nothing_pending(again)

        # And an admin's list with ?all=true holds both users' containers.
        async with await admin_c.connect_events(all_users=True) as fresh:
            listing = (await recv(fresh))["container"]
            assert {c["db_id"] for c in listing["containers"]} == {
                made_a["db_id"],
                made_b["db_id"],
            }
        for conn in (alice_s, bob_s, all_s, admin_own):
            await conn.close()
    assert alice.id != bob.id


async def test_non_admin_asking_for_all_is_refused_before_the_upgrade(api: Api) -> None:
    _, headers = await api.user()
    async with api.corral(headers) as client:
        with pytest.raises(NotAuthorized) as refused:
            await client.connect_events(all_users=True)
    assert (refused.value.status, refused.value.error) == (403, "not authorized")
    with pytest.raises(aiohttp.WSServerHandshakeError) as raw:
        await api.client.ws_connect("/api/containers/events?all=true", headers=headers)
    assert raw.value.status == 403
    body = await _handshake_body(api, "/api/containers/events?all=true", headers)
    assert body["error"] == "not authorized"


async def _handshake_body(api: Api, path: str, headers: dict[str, str]) -> dict[str, Any]:
    """The JSON body of a refused upgrade, sent as a real handshake request."""
    upgrade = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }
    resp = await api.client.get(path, headers={**headers, **upgrade})
    assert resp.content_type == "application/json"
    body: dict[str, Any] = await resp.json()
    return body


# -- authentication and protocol ----------------------------------------------------------------


@pytest.mark.parametrize("auth", ["header", "query", "subprotocol"])
async def test_every_auth_method_works_and_a_bad_token_is_refused(api: Api, auth: str) -> None:
    _, headers = await api.user()
    async with api.corral(headers) as client:
        conn = await client.connect_events(auth=auth)  # type: ignore[arg-type]
        assert (await recv(conn))["type"] == "list"
        assert conn.protocol == "corral.v1"  # echoed whenever offered; the token never is
        await conn.close()
    async with CorralClient(api.url, "not-a-token") as bad:
        with pytest.raises(Unauthorized) as refused:
            await bad.connect_events(auth=auth)  # type: ignore[arg-type]
        assert (refused.value.status, refused.value.error) == (401, "unauthorized")


async def test_refusals_happen_before_the_upgrade_as_json(api: Api) -> None:
    _, headers = await api.user()
    for path, hdrs, status, error in [
        ("/api/containers/events", {}, 401, "unauthorized"),
        ("/api/containers/events?token=nope", {}, 401, "unauthorized"),
        ("/api/containers/events?since=abc", headers, 400, "invalid parameters"),
        ("/api/containers/events?since=-1", headers, 400, "invalid parameters"),
    ]:
        with pytest.raises(aiohttp.WSServerHandshakeError) as raw:
            await api.client.ws_connect(path, headers=hdrs)
        assert raw.value.status == status, path
        assert (await _handshake_body(api, path, hdrs))["error"] == error, path
    subprotocol = {"Sec-WebSocket-Protocol": "corral.v1, corral.token.bad"}
    with pytest.raises(aiohttp.WSServerHandshakeError) as raw:
        await api.client.ws_connect("/api/containers/events", headers=subprotocol)
    assert raw.value.status == 401
    # A plain GET (no upgrade) is told what the route is.
    resp = await api.client.get("/api/containers/events", headers=headers)
    assert resp.status == 400
    assert (await resp.json())["error"] == "invalid parameters"
    async with api.corral(headers) as client:
        with pytest.raises(InvalidParameters) as bad_since:
            await client.connect_events(since=-5)
        assert bad_since.value.field == "since"


async def test_ping_gets_pong(api: Api) -> None:
    _, headers = await api.user()
    async with api.corral(headers) as client, await client.connect_events() as conn:
        assert (await recv(conn))["type"] == "list"
        for _ in range(3):
            await conn.ping()
            assert await recv(conn) == {"type": "pong"}


async def test_the_server_pings(settings: Settings) -> None:
    async with serve(settings.with_overrides(event_heartbeat_s=0.2)) as api:
        _, headers = await api.user()
        ws = await api.client.ws_connect("/api/containers/events", headers=headers, autoping=False)
        assert (await ws.receive_json(timeout=TIMEOUT_S))["type"] == "list"
        msg = await ws.receive(timeout=TIMEOUT_S)
        assert msg.type is aiohttp.WSMsgType.PING
        await ws.pong(msg.data)
        await ws.close()


async def test_a_stream_ends_when_its_token_expires(api: Api) -> None:
    user, _ = await api.user()
    # Long enough that a loaded host still opens the stream before it expires.
    token = api.app[SIGNER].issue(user, timedelta(seconds=4)).token
    async with CorralClient(api.url, token) as client:
        conn = await client.connect_events()
        assert (await recv(conn))["type"] == "list"
        with pytest.raises(StreamClosed) as closed:
            await recv(conn, timeout_s=10)
        assert closed.value.code == 1008
        with pytest.raises(Unauthorized):
            await client.connect_events()


# -- robustness ---------------------------------------------------------------------------------


async def test_stalled_client_is_closed_1013_while_50_others_get_every_event(
    settings: Settings,
) -> None:
    small = settings.with_overrides(event_queue_size=16, event_send_buffer_bytes=16 * 1024)
    async with serve(small) as api:
        user, headers = await api.user()
        hub = api.app[EVENT_HUB]
        log = api.app[EVENTS]
        api.conformance.events = False  # made-up payloads, not containers
        token = headers["Authorization"].removeprefix("Bearer ")
        async with api.corral(headers) as client:
            others = [await client.connect_events() for _ in range(50)]
            for conn in others:
                assert (await recv(conn))["type"] == "list"
            host, port = api.client.host, api.client.port
            stalled = await RawWebSocket.connect(host, port, "/api/containers/events", token)
            await wait_for(lambda: len(hub) == 51, what="51 subscribers")

            async def collect(conn: EventConnection) -> list[EventMessage]:
                got: list[EventMessage] = []
                while not got or got[-1]["container"].get("id") != "last":
                    got.append(await recv(conn))
                return got

            collectors = [asyncio.create_task(collect(conn)) for conn in others]
            payload = {"id": "x", "stage": "test", "message": "m" * 500, "progress": 0}
            published = 0
            while hub.kicked == 0:  # the stalled client fills its buffers, then its queue
                await log.publish(user.id, "container_progress", {**payload, "n": published})
                published += 1
                assert published < 20_000, "the stalled client was never closed"
            for n in range(20):  # the others keep receiving after the kick
                await log.publish(user.id, "container_progress", {**payload, "n": published + n})
            await log.publish(user.id, "container_updated", {"id": "last"})
            total = published + 21

            frames = await stalled.read_until_close()
            stalled.close()
            assert frames.close_code == 1013
            assert len(frames.texts) < total  # it was cut off, not sent everything
            results = await asyncio.gather(*collectors)
            for got in results:
                assert [m["seq"] for m in got] == list(range(1, total + 1))
            await wait_for(lambda: len(hub) == 50, what="the stalled subscriber to go")
            for conn in others:
                await conn.close()


async def test_shutdown_closes_every_client_with_1001(settings: Settings) -> None:
    async with serve(settings) as api:
        _, headers = await api.user()
        client = api.corral(headers)
        conns = [await client.connect_events() for _ in range(3)]
        for conn in conns:
            assert (await recv(conn))["type"] == "list"

        async def closed_code(conn: EventConnection) -> int | None:
            with pytest.raises(StreamClosed) as closed:
                await recv(conn)
            return closed.value.code

        waiting = [asyncio.create_task(closed_code(conn)) for conn in conns]
        hub = api.app[EVENT_HUB]
        await api.client.close()  # the server's shutdown, as on SIGTERM
        assert await asyncio.gather(*waiting) == [1001, 1001, 1001]
        assert len(hub) == 0
        await client.close()
