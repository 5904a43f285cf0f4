"""The agent relay's protocol, fast: two relays (two replicas) on an in-memory bus that delivers
each notification to every listener in order, as PostgreSQL does, and refuses what NOTIFY
would. The real thing, two ``corral serve`` on PostgreSQL with a real agent, is
tests/replicas/test_replicas_agents.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from backend.agents import relay as relay_module
from backend.agents.connection import AgentConnection
from backend.agents.relay import CHUNK, AgentRelay
from devkit.waiting import wait_for

NOTIFY_LIMIT = 8000  # bytes PostgreSQL takes in one notification's payload


class MemoryBus:
    def __init__(self) -> None:
        self.handlers: list[Callable[[str], None]] = []
        self.reconnects: list[Callable[[], None]] = []
        self.sizes: list[int] = []

    def on(self, channel: str, handler: Callable[[str], None]) -> None:
        self.handlers.append(handler)

    def on_connect(self, callback: Callable[[], None]) -> None:
        self.reconnects.append(callback)

    async def notify_many(self, channel: str, payloads: Sequence[str]) -> None:
        # PostgreSQL delivers identical payloads of one transaction once: they must differ.
        assert len(set(payloads)) == len(payloads)
        for payload in payloads:
            assert len(payload.encode()) < NOTIFY_LIMIT
            self.sizes.append(len(payload))
            for handler in list(self.handlers):
                handler(payload)


class FakeAgentSocket:
    """The agent's end of its WebSocket: a shell that echoes its input, answers ``big`` and
    ``same`` with three chunks' worth of bytes, and exits with the code ``exit N`` names."""

    def __init__(self, refuse: str | None = None) -> None:
        self.closed = False
        self.refuse = refuse
        self.connection: AgentConnection | None = None
        self.sent: list[dict[str, Any]] = []

    async def send_json(self, message: dict[str, Any]) -> None:
        self.sent.append(message)
        assert self.connection is not None
        session, kind = message.get("session"), message["type"]
        reply = self.connection.dispatch
        if kind == "open":
            if self.refuse:
                reply({"type": "error", "session": session, "data": self.refuse})
            else:
                reply({"type": "opened", "session": session})
        elif kind == "input":
            data = message["data"]
            if data.startswith("exit "):
                reply({"type": "exit", "session": session, "code": int(data.split()[1])})
            elif data == "same":  # three identical chunks, in one message
                reply({"type": "output", "session": session, "data": "x" * (3 * CHUNK)})
            elif data == "big":
                text = "".join(f"{n:07d}\n" for n in range(3 * CHUNK // 8))
                reply({"type": "output", "session": session, "data": text})
            else:
                reply({"type": "output", "session": session, "data": data})
        elif kind == "resize":
            reply({"type": "output", "session": session, "data": f"{message['cols']}x"})

    async def close(self) -> None:
        self.closed = True


def _holder(agent_id: str, refuse: str | None = None) -> tuple[AgentConnection, FakeAgentSocket]:
    ws = FakeAgentSocket(refuse)
    connection = AgentConnection(agent_id, "user", ws)  # type: ignore[arg-type]
    ws.connection = connection
    return connection, ws


def _pair(
    holds: dict[str, AgentConnection],
) -> tuple[MemoryBus, AgentRelay, AgentRelay, list[str]]:
    """Relay A (holds nothing) and relay B (holds ``holds``) on one bus; B's disconnects."""
    bus = MemoryBus()
    dropped: list[str] = []

    async def drop(agent_id: str) -> None:
        dropped.append(agent_id)

    async def never(agent_id: str) -> None:
        raise AssertionError("A holds nothing")

    origin = AgentRelay(bus, lambda _: None, never)
    holder = AgentRelay(bus, holds.get, drop)
    return bus, origin, holder, dropped


async def _read_until(shell: Any, needle: bytes) -> bytes:
    got = b""
    async with asyncio.timeout(5):
        while needle not in got:
            data = await shell.read()
            assert data, f"ended before {needle!r}: {got[-200:]!r}"
            got += data
    return got


async def test_a_shell_is_relayed_both_ways_in_order_and_in_chunks() -> None:
    connection, ws = _holder("a1")
    bus, origin, holder, _ = _pair({"a1": connection})
    shell = await origin.open_shell("a1", 90, 33)
    assert shell.holder == holder.node
    await shell.write(b"hello")
    assert await _read_until(shell, b"hello") == b"hello"
    await shell.resize(120, 40)
    await _read_until(shell, b"120x")
    await shell.write(b"big")
    big = await _read_until(shell, f"{3 * CHUNK // 8 - 1:07d}\n".encode())
    assert big == "".join(f"{n:07d}\n" for n in range(3 * CHUNK // 8)).encode()
    assert max(bus.sizes) > CHUNK  # it took several notifications, each within NOTIFY's limit
    await shell.write(b"same")  # identical chunks in one round trip all arrive
    assert await _read_until(shell, b"x" * (3 * CHUNK)) == b"x" * (3 * CHUNK)
    await shell.write(b"exit 3")
    async with asyncio.timeout(5):
        while await shell.read():
            pass
    assert await shell.exit_code() == 3
    assert [m["type"] for m in ws.sent][:2] == ["open", "input"]
    assert ws.sent[0]["cols"] == 90 and ws.sent[0]["rows"] == 33
    await origin.close()
    await holder.close()


async def test_closing_at_the_origin_closes_the_agent_s_shell() -> None:
    connection, ws = _holder("a1")
    _, origin, holder, _ = _pair({"a1": connection})
    shell = await origin.open_shell("a1", 80, 24)
    await shell.close()

    await wait_for(lambda: any(m["type"] == "close" for m in ws.sent), 5, what="the close")
    assert connection.sessions == {}
    await holder.close()


async def test_no_replica_holding_the_agent_is_said_quickly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(relay_module, "HOLDER_TIMEOUT_S", 0.2)
    _, origin, holder, _ = _pair({})
    with pytest.raises(ConnectionError, match="no replica holds"):
        await origin.open_shell("a1", 80, 24)
    await origin.close()
    await holder.close()


async def test_an_agent_refusing_the_shell_says_why() -> None:
    connection, _ = _holder("a1", refuse="no pty here")
    _, origin, holder, _ = _pair({"a1": connection})
    with pytest.raises(ConnectionError, match="no pty here"):
        await origin.open_shell("a1", 80, 24)
    await holder.close()


async def test_a_lost_bus_connection_ends_relayed_shells_with_a_reason() -> None:
    connection, _ = _holder("a1")
    bus, origin, holder, _ = _pair({"a1": connection})
    shell = await origin.open_shell("a1", 80, 24)
    for reconnected in bus.reconnects:
        reconnected()
    said = await _read_until(shell, b"lost")
    assert b"the connection between replicas was lost" in said
    assert await shell.read() == b""
    await holder.close()


async def test_a_disconnect_reaches_the_replica_holding_the_agent() -> None:
    connection, _ = _holder("a1")
    _, origin, holder, dropped = _pair({"a1": connection})
    await origin.disconnect("a1")
    await wait_for(lambda: dropped == ["a1"], 5, what="the holder to drop it")
    await holder.close()


async def test_a_silent_holder_ends_the_terminal_and_a_quiet_one_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(relay_module, "KEEPALIVE_S", 0.05)
    monkeypatch.setattr(relay_module, "SILENCE_S", 0.3)
    connection, _ = _holder("a1")
    _, origin, holder, _ = _pair({"a1": connection})
    shell = await origin.open_shell("a1", 80, 24)
    # Quiet for several silences: the holder's keepalives keep the terminal open.
    reading = asyncio.create_task(shell.read())
    done, _ = await asyncio.wait({reading}, timeout=1.0)
    assert not done and not shell.ended
    # The holder dies (its tasks end, it sends nothing more): the terminal ends, saying why.
    await holder.close()
    async with asyncio.timeout(5):
        said = await reading
        while b"stopped answering" not in said:
            said += await shell.read()
        assert await shell.read() == b""
    assert b"the replica holding the agent stopped answering" in said
