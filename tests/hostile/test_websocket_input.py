"""The WebSockets (events, stats, terminal, agents): requests that are no handshake, tokens where
they do not count, bad parameters, and hostile frames. A refused handshake is JSON in the
contract's shape, given before any lookup or Docker call; a hostile frame ends in an error frame
(terminal) or a close with a documented code (1003, 1007, 1009), never a 500, a silent close or
a traceback; nothing changes."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest

from tests.hostile.world import Case, World, assert_no_failure_logged, run_case, snapshot

pytestmark = pytest.mark.asyncio(loop_scope="module")

EVENTS, STATS, TERMINAL = "/api/containers/events", "/api/containers/stats", "/ws/terminal/{box}"
INVALID = "invalid parameters"
UPGRADE_ONLY = (("Upgrade", "websocket"),)


def _case(name: str, path: str, status: int, error: str, **kw: Any) -> Case:
    return Case(name, "GET", path, status, error, **kw)


HANDSHAKES = [
    # Not a handshake: refused by the middleware before the route looks at anything.
    *(_case(f"plain-get-{n}", p, 400, INVALID) for n, p in (("events", EVENTS), ("stats", STATS), ("terminal", TERMINAL))),
    *(_case(f"upgrade-header-only-{n}", p, 400, INVALID, headers=UPGRADE_ONLY) for n, p in (("events", EVENTS), ("terminal", TERMINAL))),
    # A token in the URL (or a subprotocol) counts only on a real handshake.
    *(_case(f"query-token-plain-{n}", p + "?token={alice_token}", 401, "unauthorized", who="none", headers=UPGRADE_ONLY)
      for n, p in (("events", EVENTS), ("stats", STATS), ("terminal", TERMINAL))),
    _case("query-token-no-upgrade", EVENTS + "?token={alice_token}", 401, "unauthorized", who="none"),
    _case("subprotocol-token-plain", TERMINAL, 401, "unauthorized", who="none",
          headers=(("Upgrade", "websocket"), ("Sec-WebSocket-Protocol", "corral.v1, corral.token.{alice_token}"))),
    _case("query-token-on-http-route", "/api/me?token={alice_token}", 401, "unauthorized", who="none", handshake=True),
    # Handshakes refused before the upgrade.
    _case("events-since-negative", EVENTS + "?since=-1", 400, INVALID, handshake=True),
    _case("events-since-text", EVENTS + "?since=abc", 400, INVALID, handshake=True),
    _case("events-since-newline", EVENTS + "?since=1%0A", 400, INVALID, handshake=True),
    _case("events-all-maybe", EVENTS + "?all=maybe", 400, INVALID, handshake=True),
    _case("events-all-not-admin", EVENTS + "?all=true", 403, "not authorized", handshake=True),
    _case("events-anonymous", EVENTS, 401, "unauthorized", who="none", handshake=True),
    _case("stats-all-not-admin", STATS + "?all=true", 403, "not authorized", handshake=True),
    _case("terminal-others", TERMINAL, 404, "container not found", who="bob", handshake=True),
    _case("terminal-unknown", "/ws/terminal/nope", 404, "container not found", handshake=True),
    _case("terminal-newline", "/ws/terminal/box%0A", 404, "container not found", handshake=True),
    _case("terminal-read-only", TERMINAL, 403, "not authorized", who="read", handshake=True),
    _case("terminal-agent-unknown", "/ws/terminal/agent:00000000-0000-4000-8000-000000000000", 404, "agent not found", handshake=True),
    _case("agents-user-token", "/ws/agents/connect", 403, "not authorized", handshake=True),
]  # fmt: skip


def _execs_since(world: World, since: float) -> list[Any]:
    events = world.docker.api.events(
        since=int(since),
        until=int(time.time()) + 1,
        filters={"container": world.ids["box"], "event": "exec_create"},
        decode=True,
    )
    return list(events)


@pytest.mark.parametrize("case", HANDSHAKES, ids=[c.name for c in HANDSHAKES])
async def test_handshake_refused(
    world: World, case: Case, caplog: pytest.LogCaptureFixture
) -> None:
    world.ids["alice_token"] = world.headers["alice"]["Authorization"].removeprefix("Bearer ")
    started = time.time()
    await run_case(world, case, caplog)
    if case.path == TERMINAL:
        assert not _execs_since(world, started), "a refused terminal started a docker exec"


# -- frames --------------------------------------------------------------------------------------

DEEP_OBJECT = '{"type": "ping", "x": ' + "[" * 200 + "]" * 200 + "}"
STREAM_FRAMES = [
    ("deep-over-the-size", "[" * 60_000, 1009),
    ("deep-within-the-size", "[" * 3000, 1007),
    ("deep-ping", DEEP_OBJECT, 1007),
    ("not-json", "not json", 1007),
    ("array", "[1, 2]", 1007),
    ("nan", '{"type": NaN}', 1007),
    ("binary", b"\x00\x01\x02", 1003),
]


async def _close_code(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    while True:
        msg = await ws.receive(timeout=10)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            return ws.close_code
        if msg.type is aiohttp.WSMsgType.ERROR:
            return ws.close_code


async def _send(ws: aiohttp.ClientWebSocketResponse, frame: str | bytes) -> None:
    if isinstance(frame, bytes):
        await ws.send_bytes(frame)
    else:
        await ws.send_str(frame)


@pytest.mark.parametrize("path", [EVENTS, STATS])
@pytest.mark.parametrize(
    ("name", "frame", "code"), STREAM_FRAMES, ids=[f[0] for f in STREAM_FRAMES]
)
async def test_stream_closes_on_a_hostile_frame(
    world: World, path: str, name: str, frame: str | bytes, code: int,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    ws = await world.api.client.ws_connect(path, headers=world.headers["alice"])
    try:
        await ws.receive_json(timeout=10)  # the first message: the stream is up
        before = await snapshot(world)
        await _send(ws, frame)
        assert await _close_code(ws) == code
    finally:
        await ws.close()
    assert await snapshot(world) == before
    assert_no_failure_logged(caplog)


async def _terminal(world: World) -> aiohttp.ClientWebSocketResponse:
    ws = await world.api.client.ws_connect(world.path(TERMINAL), headers=world.headers["alice"])
    assert (await ws.receive_json(timeout=10))["type"] == "connected"
    return ws


async def _output_until(ws: aiohttp.ClientWebSocketResponse, marker: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    text = ""
    while marker not in text:
        message = await ws.receive_json(timeout=15)
        seen.append(message)
        if message["type"] == "output":
            text += message["data"]
    return seen


TERMINAL_DEEP = [
    ("deep-input", '{"type": "input", "data": ' + "[" * 5000 + "]" * 5000 + "}"),
    ("deep-resize", '{"type": "resize", "cols": ' + "[" * 100 + "]" * 100 + ', "rows": 1}'),
    ("deep-object", "{" + '"a": {' * 60 + "}" * 61),
]


@pytest.mark.parametrize(("name", "frame"), TERMINAL_DEEP, ids=[f[0] for f in TERMINAL_DEEP])
async def test_terminal_answers_a_deep_message_with_an_error_and_goes_on(
    world: World, name: str, frame: str, caplog: pytest.LogCaptureFixture
) -> None:
    ws = await _terminal(world)
    try:
        before = await snapshot(world)
        await ws.send_str(frame)
        error = await ws.receive_json(timeout=10)
        while error["type"] == "output":  # the prompt may come first
            error = await ws.receive_json(timeout=10)
        assert error["type"] == "error" and "deeper" in error["data"], error
        await ws.send_json({"type": "input", "data": "echo still-$((6*7))\n"})
        await _output_until(ws, "still-42")
    finally:
        await ws.close()
    assert await snapshot(world) == before
    assert_no_failure_logged(caplog)


@pytest.mark.parametrize(
    "frame", ["x" * (2 * 1024 * 1024), b"x" * (2 * 1024 * 1024)], ids=["text", "binary"]
)
async def test_terminal_closes_on_an_oversized_frame(
    world: World, frame: str | bytes, caplog: pytest.LogCaptureFixture
) -> None:  # fmt: skip
    ws = await _terminal(world)
    try:
        before = await snapshot(world)
        await _send(ws, frame)
        assert await _close_code(ws) == 1009
    finally:
        await ws.close()
    assert await snapshot(world) == before
    assert_no_failure_logged(caplog)
