"""``GET /api/containers/{id}/logs``: a sandbox's output (its PID 1's stdout and stderr),
streamed as plain text."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator

from aiohttp import web

from backend.agents.service import is_agent_id
from backend.endpoint import Answer, endpoint
from backend.errors import DockerError, DockerNotFound, NotSupportedForAgents, OperationFailed
from backend.middleware import principal_of
from backend.state import AGENTS, ENGINES
from corral.shapes import LogsQuery
from corral.shapes.usage import DEFAULT_TAIL

log = logging.getLogger(__name__)

# How often a follow with nothing to send checks that its client is still connected.
IDLE_CHECK_S = 2.0


@endpoint(
    "The container's output (its PID 1's stdout and stderr, demultiplexed): a line when the "
    "sandbox starts and stops, and whatever is written to /proc/1/fd/1 in it. A stopped "
    "container's output is readable; a rebuilt one starts afresh.",
    tag="usage",
    answers={
        200: Answer(
            "The output, streamed; with follow=true until the client leaves or the container stops",
            media_type="text/plain; charset=utf-8",
        )
    },
    errors=(400, 401, 403, 404, 503),
    notes={500: "failed to read container logs (sanitized message)"},
)
async def container_logs(request: web.Request, query: LogsQuery) -> web.StreamResponse:
    """Every refusal (400, 401, 403, 404, 503) is JSON, before the first byte of output; then
    the output as ``text/plain``. ``follow=true`` keeps the response open until the client
    leaves or the container stops."""
    ident = request.match_info["id"]
    principal = principal_of(request)
    tail = query.get("tail", DEFAULT_TAIL)
    follow = query.get("follow", False)
    timestamps = query.get("timestamps", False)
    if is_agent_id(ident):
        await request.app[AGENTS].get(principal, ident)
        raise NotSupportedForAgents("An agent's machine keeps its own logs.")
    row, engine = await request.app[ENGINES].resolve(principal, ident)
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/plain; charset=utf-8",
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        }
    )
    if row.docker_id is None:
        await resp.prepare(request)  # never built, or Docker lost it: no output is kept
        await resp.write_eof()
        return resp
    try:
        stream = await engine.docker.open_logs(
            row.docker_id, tail=tail, follow=follow, timestamps=timestamps, idle_s=IDLE_CHECK_S
        )
    except DockerNotFound:
        stream = None
    except DockerError as exc:
        raise OperationFailed("failed to read container logs", str(exc)) from exc
    await resp.prepare(request)
    if stream is not None:
        await _relay(request, resp, stream)
    return resp


async def _relay(
    request: web.Request, resp: web.StreamResponse, stream: AsyncGenerator[bytes, None]
) -> None:
    """Copy the output to the client until either end stops. aiohttp does not cancel a handler
    whose client left, so an idle follow checks the connection itself (the stream yields
    ``b""`` when idle) and a failed write ends it."""
    try:
        async for chunk in stream:
            transport = request.transport
            if transport is None or transport.is_closing():
                return
            if chunk:
                await resp.write(chunk)
        await resp.write_eof()
    except (ConnectionError, RuntimeError) as exc:
        log.debug("a log stream's client went away: %r", exc)
    finally:
        with contextlib.suppress(Exception):
            await stream.aclose()
