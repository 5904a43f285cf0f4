"""Revoking an API token (or signing a session out) ends the streams opened with it at once:
the events and stats streams send ``{"type": "error", "error": "unauthorized", "message"}``
and close with 1008 "token revoked"; a terminal sends ``{"type": "error", "data"}``, closes the
same way, and its shell is hung up. The revocation tells the streams itself (no polling): by the
time the revoking request has answered, every such stream is already closing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import docker
import pytest

from backend.state import AUTHENTICATOR, EVENT_HUB, LIVE_STREAMS
from corral.client import CorralClient, Unauthorized
from devkit.waiting import wait_for
from tests.conftest import Api, sh


async def _api_token(api: Api, headers: dict[str, str], scopes: list[str]) -> tuple[str, str]:
    resp = await api.client.post(
        "/api/tokens", json={"name": "stream", "scopes": scopes}, headers=headers
    )
    body = await resp.json()
    assert resp.status == 201, body
    return body["id"], body["token"]


async def _final_frames(ws: aiohttp.ClientWebSocketResponse) -> tuple[list[Any], int | None]:
    """Every message left on ``ws`` until its close, and the close code."""
    messages: list[Any] = []
    async with asyncio.timeout(10):
        while True:
            msg = await ws.receive()
            if msg.type is aiohttp.WSMsgType.TEXT:
                messages.append(json.loads(msg.data))
                continue
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                return messages, ws.close_code
            raise AssertionError(f"unexpected {msg.type}")


async def _revoke(api: Api, headers: dict[str, str], token_id: str) -> None:
    resp = await api.client.delete(f"/api/tokens/{token_id}", headers=headers)
    assert resp.status == 200, await resp.text()


async def test_revoking_a_token_ends_its_event_and_stats_streams(api: Api) -> None:
    _, headers = await api.user()
    token_id, token = await _api_token(api, headers, ["read"])
    _, kept_token = await _api_token(api, headers, ["read"])
    bearer = {"Authorization": f"Bearer {token}"}
    events = await api.client.ws_connect("/api/containers/events", headers=bearer)
    assert json.loads((await events.receive()).data)["type"] == "list"
    stats = await api.client.ws_connect("/api/containers/stats", headers=bearer)
    assert json.loads((await stats.receive()).data)["type"] == "stats"
    other = await api.client.ws_connect(
        "/api/containers/events", headers={"Authorization": f"Bearer {kept_token}"}
    )
    assert json.loads((await other.receive()).data)["type"] == "list"
    await wait_for(lambda: len(api.app[LIVE_STREAMS]) == 3, what="three registered streams")

    await _revoke(api, headers, token_id)
    # Told within the revoking request: its event stream is closing already.
    closing = [s.close_code for s in api.app[EVENT_HUB].subscriptions()]
    assert sorted(closing, key=str) == [1008, None]

    for ws in (events, stats):
        messages, code = await _final_frames(ws)
        assert code == 1008
        assert messages[-1]["type"] == "error" and messages[-1]["error"] == "unauthorized"
        assert "revoked" in messages[-1]["message"]
    # The other token's stream goes on; the revoked one cannot open another.
    await other.send_str('{"type":"ping"}')
    assert json.loads((await other.receive()).data) == {"type": "pong"}
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await api.client.ws_connect("/api/containers/events", headers=bearer)
    assert refused.value.status == 401
    await other.close()


async def test_signing_out_ends_the_sessions_streams(api: Api) -> None:
    user, _ = await api.user(password="a-good-password")
    resp = await api.client.post(
        "/api/auth/login", json={"username": user.username, "password": "a-good-password"}
    )
    session = {"Authorization": f"Bearer {(await resp.json())['token']}"}
    events = await api.client.ws_connect("/api/containers/events", headers=session)
    assert json.loads((await events.receive()).data)["type"] == "list"
    assert (await api.client.post("/api/auth/logout", headers=session)).status == 200
    messages, code = await _final_frames(events)
    assert code == 1008 and messages[-1]["error"] == "unauthorized"
    assert "signed out" in messages[-1]["message"]


async def test_the_client_stream_ends_with_unauthorized(api: Api) -> None:
    _, headers = await api.user()
    token_id, token = await _api_token(api, headers, ["read"])
    async with CorralClient(api.url, token) as client:
        stream = client.events()
        assert (await anext(stream))["type"] == "list"
        await _revoke(api, headers, token_id)
        with pytest.raises(Unauthorized):
            async with asyncio.timeout(10):
                await anext(stream)
        await stream.close()


async def test_revoking_a_token_ends_its_terminal_and_the_shell(
    api: Api, docker_client: docker.DockerClient
) -> None:
    _, headers = await api.user(tier="test")
    made = await api.create(headers)
    token_id, token = await _api_token(api, headers, ["read", "write"])
    ws = await api.client.ws_connect(
        f"/ws/terminal/{made['id']}", headers={"Authorization": f"Bearer {token}"}
    )
    assert json.loads((await ws.receive()).data) == {"type": "connected"}
    await ws.send_str("echo shell-$$\n")
    pid = ""
    async with asyncio.timeout(15):
        while not pid:
            message = json.loads((await ws.receive()).data)
            text = message.get("data", "")
            if "shell-" in text and "$$" not in text:
                pid = text.split("shell-")[1].split()[0]
    await _revoke(api, headers, token_id)
    messages, code = await _final_frames(ws)
    assert code == 1008
    assert {"type": "error", "data": "This API token was revoked."} in messages

    def shell_gone() -> bool:
        return sh(docker_client, made["id"], f"kill -0 {pid}")[0] != 0

    await wait_for(shell_gone, 10, what="the revoked terminal's shell to end")


async def test_a_token_revoked_before_its_stream_registers_still_ends_it(api: Api) -> None:
    """The revocation that commits between a stream's handshake and its registration: the
    registration itself asks, so no stream slips through."""
    _, headers = await api.user()
    token_id, token = await _api_token(api, headers, ["read"])
    caller = await api.app[AUTHENTICATOR].authenticate(token)  # the handshake's check
    await _revoke(api, headers, token_id)  # nothing registered yet: nothing to end
    ended: list[str] = []
    async with api.app[LIVE_STREAMS].opened_with(caller, ended.append):
        # Ended once: by the registration's check, or (with replicas) by the revocation's hint
        # if that reached this process while the check ran.
        assert len(ended) == 1, ended
        assert ended[0] in ("This token was revoked.", "This API token was revoked.")
