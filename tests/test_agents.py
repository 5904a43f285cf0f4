"""Agents: a real ``corral agent`` process on this machine, attached to a real backend."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import pytest
from sqlalchemy import select

from backend.db.models import EventRecord
from backend.settings import Settings
from backend.state import SESSIONS
from devkit.waiting import wait_for
from tests.conftest import WS_HANDSHAKE, Api, serve
from tests.test_terminal import Term


async def _agent_token(api: Api, headers: dict[str, str], name: str = "laptop") -> str:
    resp = await api.client.post(
        "/api/tokens", json={"name": name, "scopes": ["agent"]}, headers=headers
    )
    body = await resp.json()
    assert resp.status == 201, body
    assert body["scopes"] == ["agent"]
    return str(body["token"])


@pytest.fixture
def agent_process(api: Api, launch_agent: Any) -> Any:
    """Start ``corral agent`` on the ``api`` backend (token, name)."""
    url = str(api.client.make_url("")).rstrip("/")
    return lambda token, name: launch_agent(url, token, name)


async def _agents(api: Api, headers: dict[str, str]) -> list[dict[str, Any]]:
    body = await (await api.client.get("/api/containers", headers=headers)).json()
    return [c for c in body["containers"] if c.get("session_type") == "agent"]


async def _wait_status(api: Api, headers: dict[str, str], status: str, within_s: float) -> None:
    async def check() -> bool:
        agents = await _agents(api, headers)
        return bool(agents) and agents[0]["status"] == status

    await wait_for(check, within_s, what=f"the agent to be {status}")


async def _event_types(api: Api, user_id: str) -> list[str]:
    async with api.app[SESSIONS]() as session:
        rows = (
            await session.execute(
                select(EventRecord).where(EventRecord.user_id == user_id).order_by(EventRecord.seq)
            )
        ).scalars()
        return [r.type for r in rows]


async def test_agent_connects_serves_a_shell_reconnects_and_is_deleted(
    api: Api, agent_process: Any
) -> None:
    user, headers = await api.user()
    token = await _agent_token(api, headers)
    proc = agent_process(token, "laptop")
    await _wait_status(api, headers, "running", 20)
    agent = (await _agents(api, headers))[0]
    assert agent["id"].startswith("agent:") and agent["name"] == "laptop"
    assert agent["agent"]["hostname"] and agent["agent"]["cpus"] >= 1
    assert (await _event_types(api, user.id)).count("agent_connected") == 1

    got = await (await api.client.get(f"/api/containers/{agent['id']}", headers=headers)).json()
    assert got["session_type"] == "agent"

    ws = await api.client.ws_connect(f"/ws/terminal/{agent['id']}?cols=90&rows=33", headers=headers)
    term = Term(ws)
    await term._receive_once(10)
    assert term.others[0] == {"type": "connected"}
    await term.send("echo agent-$((6*7)); stty size\n")
    await term.expect(r"agent-42")
    await term.expect(r"33 90")
    await term.send("exit 3\n")
    assert await term.until_exit() == 3
    await ws.close()

    stop = await api.client.post(f"/api/containers/{agent['id']}/stop", headers=headers)
    body = await stop.json()
    assert stop.status == 200
    assert body == {
        "message": "agent disconnected",
        "id": agent["id"],
        "name": "laptop",
        "status": "offline",
    }
    # Not polled for "offline": the agent may dial in again within milliseconds (its backoff
    # has full jitter). The events below prove it went and came back.
    await _wait_status(api, headers, "running", 15)  # back by itself

    async def reconnected() -> bool:  # the events commit beside the row, not before it
        types = await _event_types(api, user.id)
        return types.count("agent_disconnected") >= 1 and types.count("agent_connected") >= 2

    await wait_for(reconnected, 10, what="the disconnect's and the reconnect's events")

    gone = await api.client.delete(f"/api/containers/{agent['id']}", headers=headers)
    assert gone.status == 200
    assert await gone.json() == {"message": "agent deleted", "id": agent["id"], "name": "laptop"}
    code = await asyncio.to_thread(proc.wait, 20)
    assert code == 1  # its token was revoked: it cannot come back
    assert await _agents(api, headers) == []


async def test_agent_errors_and_isolation(api: Api, agent_process: Any) -> None:
    _, owner = await api.user()
    _, other = await api.user()
    token = await _agent_token(api, owner)
    agent_process(token, "box")
    await _wait_status(api, owner, "running", 20)
    agent_id = (await _agents(api, owner))[0]["id"]

    for method, suffix in (("GET", ""), ("POST", "/stop"), ("DELETE", ""), ("POST", "/start")):
        resp = await api.client.request(
            method, f"/api/containers/{agent_id}{suffix}", headers=other
        )
        assert resp.status == 403, (method, suffix)
        assert (await resp.json())["error"] == "not authorized"
    resp = await api.client.get(f"/ws/terminal/{agent_id}", headers={**other, **WS_HANDSHAKE})
    assert resp.status == 403
    assert await _agents(api, other) == []

    unknown = "agent:11111111-2222-4333-8444-555555555555"
    resp = await api.client.post(f"/api/containers/{unknown}/stop", headers=owner)
    assert resp.status == 404 and (await resp.json())["error"] == "agent not found"

    start = await api.client.post(f"/api/containers/{agent_id}/start", headers=owner)
    assert start.status == 400 and (await start.json())["error"] == "not supported for agents"
    settings = await api.client.patch(
        f"/api/containers/{agent_id}/settings", json={"name": "x"}, headers=owner
    )
    assert settings.status == 400
    assert (await settings.json())["error"] == "not supported for agents"

    agent_headers = {"Authorization": f"Bearer {token}"}
    denied = await api.client.get("/api/containers", headers=agent_headers)
    assert denied.status == 403  # an agent token is for the agent only

    mixed = await api.client.post(
        "/api/tokens", json={"name": "m", "scopes": ["agent", "read"]}, headers=owner
    )
    assert mixed.status == 400


async def test_an_agent_that_stops_reporting_is_marked_offline_and_comes_back(
    settings: Settings, launch_agent: Any
) -> None:
    """The sweep: a hung agent (SIGSTOP) misses its heartbeats, is marked offline and
    disconnected; resumed, it dials in again."""
    async with serve(settings.with_overrides(agent_heartbeat_s=1.0)) as api:
        user, headers = await api.user()
        token = await _agent_token(api, headers)
        proc = launch_agent(str(api.client.make_url("")).rstrip("/"), token, "sleepy")
        await _wait_status(api, headers, "running", 20)
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            await _wait_status(api, headers, "offline", 15)

            async def announced() -> bool:  # the event commits beside the row, not before it
                return (await _event_types(api, user.id)).count("agent_disconnected") == 1

            await wait_for(announced, 10, what="agent_disconnected")
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        await _wait_status(api, headers, "running", 20)
