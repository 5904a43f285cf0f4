"""An agent connected to one replica, used through the other: its terminal is relayed over the
bus, a stop or delete reaches the replica that holds it, and when that replica dies the agent
is marked offline by the sweep (docs/scale-out.md)."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from corral.client import CorralClient
from corral.client.errors import ContainerNotRunning
from corral.client.events import EventConnection
from corral.client.terminal import open_terminal
from devkit.waiting import wait_for
from tests.replicas.conftest import CONFIG, Replicas
from tests.test_terminal import Term

# Agents report every second here, so one not heard from is offline within about 4 s.
HEARTBEAT_S = 1.0

Start = Callable[[str, str, str], "subprocess.Popen[bytes]"]


@pytest.fixture
def replicas_config() -> str:
    return f"agent_heartbeat_s = {HEARTBEAT_S}\n{CONFIG}"


async def _agent(client: CorralClient, name: str) -> dict[str, Any] | None:
    listing = await client.list_containers()
    found = [c for c in listing["containers"] if c.get("name") == name]
    return dict(found[0]) if found else None


async def _until_status(client: CorralClient, name: str, status: str, within_s: float) -> None:
    async def reached() -> bool:
        agent = await _agent(client, name)
        return agent is not None and agent["status"] == status

    await wait_for(reached, within_s, what=f"agent {name} to be {status}")


async def _agent_events(
    stream: EventConnection, agent_id: str, *, until: str, within_s: float
) -> list[str]:
    """The agent events B announces for ``agent_id``, up to and including ``until``."""
    seen: list[str] = []
    async with asyncio.timeout(within_s):
        while not seen or seen[-1] != until:
            message = await stream.receive()
            container = message.get("container")
            ours = isinstance(container, dict) and container.get("id") == agent_id
            if ours and message["type"].startswith("agent_"):
                seen.append(message["type"])
    return seen


async def test_an_agent_on_one_replica_is_used_through_the_other(
    replicas: Replicas, launch_agent: Start
) -> None:
    token = await replicas.user("ada")
    async with CorralClient(replicas.b.url, token) as on_b:
        laptop = (await on_b.create_token("laptop", ["agent"]))["token"]
        spare = (await on_b.create_token("spare", ["agent"]))["token"]
        laptop_proc = launch_agent(replicas.a.url, laptop, "laptop")  # both dial in to A
        launch_agent(replicas.a.url, spare, "spare")
        await _until_status(on_b, "laptop", "running", 30)
        await _until_status(on_b, "spare", "running", 30)
        agent = await _agent(on_b, "laptop")
        assert agent is not None

        # A terminal through B, to the agent A holds: output larger than one notification,
        # the size it was opened with, and the shell's exit code.
        term = Term(await open_terminal(on_b, agent["id"], 90, 33))
        await term.send("echo agent-$((6*7)); stty size; seq 1 6000 | tail -c 12\n")
        await term.expect(r"agent-42")
        await term.expect(r"33 90")
        await term.expect(r"5999\r?\n6000")
        await term.send("seq 1 4000 | wc -c; seq 1 4000\n")  # 18893 bytes in a burst
        await term.expect(r"18893")
        await term.expect(r"3999\r?\n4000")
        await term.send("exit 3\n")
        assert await term.until_exit() == 3
        await term.ws.close()

        # A stop through B disconnects it on A; it dials in again by itself. The agent may be
        # back within milliseconds (its backoff has full jitter), so "offline" is read from B's
        # event stream, where it cannot be missed, rather than polled.
        async with await on_b.connect_events() as stream:
            assert (await stream.receive())["type"] == "list"
            stopped = await on_b.stop_container(agent["id"])
            assert stopped["message"] == "agent disconnected"
            seen = await _agent_events(stream, agent["id"], until="agent_connected", within_s=20)
            assert seen == ["agent_disconnected", "agent_connected"]
        await _until_status(on_b, "laptop", "running", 20)

        # A delete through B: A drops it, and its revoked token keeps it out.
        deleted = await on_b.delete_container(agent["id"])
        assert deleted["message"] == "agent deleted"
        assert await asyncio.to_thread(laptop_proc.wait, 20) == 1
        assert await _agent(on_b, "laptop") is None

        # A dies: the agent it held cannot reach it, and B's sweep marks it offline.
        replicas.a.kill()
        await _until_status(on_b, "spare", "offline", 20)
        spare_agent = await _agent(on_b, "spare")
        assert spare_agent is not None
        with pytest.raises(ContainerNotRunning, match="offline"):
            await open_terminal(on_b, spare_agent["id"], 80, 24)
