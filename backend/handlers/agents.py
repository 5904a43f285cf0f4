"""``GET /ws/agents/connect``: where ``corral agent`` dials in and stays."""

from __future__ import annotations

import logging

from aiohttp import WSMsgType, web

from backend import bounded_json
from backend.agents.connection import AgentConnection
from backend.auth.policy import access
from backend.endpoint import Answer, endpoint
from backend.errors import CorralError
from backend.middleware import WS_SUBPROTOCOL, principal_of
from backend.state import AGENTS
from corral.shapes import Scope

log = logging.getLogger(__name__)

REGISTER_TIMEOUT_S = 10.0


@endpoint(
    "WebSocket for corral agent (an agent token: scope agent). The agent sends "
    '{"type": "register", "name", "facts"} first, then heartbeats; the server multiplexes '
    "terminal sessions (open, input, resize, close / opened, output, exit, error) over it.",
    tag="agents",
    answers={101: Answer("Switching to the WebSocket protocol")},
    errors=(401, 403),
)
@access(scope=Scope.AGENT)
async def connect(request: web.Request) -> web.StreamResponse:
    principal = principal_of(request)
    service = request.app[AGENTS]
    ws = web.WebSocketResponse(heartbeat=30, protocols=(WS_SUBPROTOCOL,))
    await ws.prepare(request)
    try:
        hello = bounded_json.loads(await ws.receive_str(timeout=REGISTER_TIMEOUT_S))
        if not isinstance(hello, dict) or hello.get("type") != "register":
            raise ValueError("the first message must be register")
        agent = await service.register(principal, hello)
    except (TimeoutError, ValueError, TypeError, CorralError) as exc:
        await ws.send_json({"type": "error", "data": f"registration refused: {exc}"})
        await ws.close(code=4400, message=b"registration refused")
        return ws
    connection = AgentConnection(agent.id, agent.user_id, ws)
    await service.attach(connection)
    await ws.send_json(
        {
            "type": "registered",
            "id": agent.public_id,
            "name": agent.name,
            "heartbeat_s": service.heartbeat_s,
        }
    )
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                message = bounded_json.loads(msg.data)
            except ValueError:
                continue
            if not isinstance(message, dict):
                continue
            if message.get("type") == "heartbeat":
                await service.heartbeat(agent.id, message)
            else:
                connection.dispatch(message)
    finally:
        await service.detach(connection)
    return ws
