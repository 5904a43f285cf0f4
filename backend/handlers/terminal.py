"""``GET /ws/terminal/{id}``: an interactive shell in a running sandbox."""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from backend.agents.service import is_agent_id
from backend.auth.live import CLOSE_CREDENTIALS, REVOKED_REASON
from backend.auth.policy import access
from backend.errors import ContainerNotRunning
from backend.middleware import WS_SUBPROTOCOL, principal_of
from backend.state import AGENTS, CONTAINERS, DOCKER, LIVE_STREAMS
from backend.terminal.bridge import bridge
from backend.terminal.shell import DockerShell, Shell

DEFAULT_COLS, DEFAULT_ROWS = 80, 24


def _initial_size(request: web.Request) -> tuple[int, int]:
    try:
        cols = int(request.query.get("cols", DEFAULT_COLS))
        rows = int(request.query.get("rows", DEFAULT_ROWS))
    except ValueError:
        return DEFAULT_COLS, DEFAULT_ROWS
    if 0 < cols <= 1000 and 0 < rows <= 1000:
        return cols, rows
    return DEFAULT_COLS, DEFAULT_ROWS


@access(scope="write")
async def terminal(request: web.Request) -> web.StreamResponse:
    """Every refusal (404, 400 not running, 401, 403) happens before the upgrade, as JSON."""
    principal = principal_of(request)
    ident = request.match_info["id"]
    shell: Shell
    if is_agent_id(ident):
        shell = await request.app[AGENTS].open_shell(principal, ident, *_initial_size(request))
    else:
        containers = request.app[CONTAINERS]
        row = await containers.repository.resolve(principal, ident)
        state = await containers.lifecycle.docker_state_of(row)
        if state is None or not state.running:
            raise ContainerNotRunning()
        docker_shell = DockerShell(request.app[DOCKER], state.id)
        await docker_shell.open(*_initial_size(request))
        await containers.repository.touch(row)
        shell = docker_shell
    ws = web.WebSocketResponse(heartbeat=30, protocols=(WS_SUBPROTOCOL,), compress=False)
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
