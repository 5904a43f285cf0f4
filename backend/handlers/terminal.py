"""``GET /ws/terminal/{id}``: an interactive shell in a running sandbox."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from backend.agents.service import is_agent_id
from backend.auth.live import CLOSE_CREDENTIALS, REVOKED_REASON
from backend.auth.policy import access
from backend.endpoint import Answer, endpoint
from backend.errors import ContainerNotRunning
from backend.middleware import WS_SUBPROTOCOL, principal_of
from backend.state import AGENTS, ENGINES, LIVE_STREAMS
from backend.terminal.bridge import MAX_FRAME, bridge
from backend.terminal.shell import DockerShell, Shell
from corral.shapes import Scope, TerminalQuery
from corral.shapes.terminal import DEFAULT_COLS, DEFAULT_ROWS


@endpoint(
    "WebSocket: an interactive shell (TTY) in a running container. Messages: client "
    '{"type": "input"|"resize"|"ping"} or raw text/binary input; server '
    '{"type": "connected"|"output"|"exit"|"error"|"pong"}.',
    tag="terminal",
    answers={
        101: Answer(
            "Switching to the WebSocket protocol. Revoking the token it was opened with (or "
            'signing its session out) ends it: {"type": "error", "data"}, then close 1008 '
            '"token revoked", and the shell is hung up.'
        )
    },
    errors=(400, 401, 403, 404, 503),
)
@access(scope=Scope.WRITE)
async def terminal(request: web.Request, query: TerminalQuery) -> web.StreamResponse:
    """Every refusal (404, 400 not running, 401, 403) happens before the upgrade, as JSON; a
    request that is no WebSocket handshake is refused by the auth middleware, before any lookup
    or Docker call."""
    principal = principal_of(request)
    ident = request.match_info["id"]
    size = (query.get("cols", DEFAULT_COLS), query.get("rows", DEFAULT_ROWS))
    shell: Shell
    if is_agent_id(ident):
        shell = await request.app[AGENTS].open_shell(principal, ident, *size)
    else:
        row, engine = await request.app[ENGINES].resolve(principal, ident)
        state = await engine.services.lifecycle.docker_state_of(row)
        if state is None or not state.running:
            raise ContainerNotRunning()
        docker_shell = DockerShell(engine.docker, state.id)
        await docker_shell.open(*size)
        await engine.services.repository.touch(row)
        shell = docker_shell
    ws = web.WebSocketResponse(
        heartbeat=30, protocols=(WS_SUBPROTOCOL,), compress=False, max_msg_size=MAX_FRAME
    )
    try:
        await ws.prepare(request)
    except BaseException:
        await shell.close()
        raise
    ending: set[asyncio.Task[None]] = set()

    def revoked(message: str) -> None:
        """The token was revoked: end the session (the bridge then hangs the shell up)."""
        task = asyncio.ensure_future(_end_revoked(ws, message))
        ending.add(task)
        task.add_done_callback(ending.discard)

    async with request.app[LIVE_STREAMS].opened_with(principal, revoked):
        await bridge(ws, shell)
    return ws


async def _end_revoked(ws: web.WebSocketResponse, message: str) -> None:
    if ws.closed:
        return
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_json({"type": "error", "data": message})
        await ws.close(code=CLOSE_CREDENTIALS, message=REVOKED_REASON.encode())
