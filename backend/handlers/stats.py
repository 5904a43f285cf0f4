"""Live usage: one sample (``GET /api/containers/{id}/stats``) and the stream of every running
sandbox's samples (``GET /api/containers/stats``, a WebSocket; see ``backend.stats``)."""

from __future__ import annotations

from aiohttp import web

from backend.agents.service import is_agent_id
from backend.endpoint import Answer, endpoint
from backend.errors import (
    ContainerNotRunning,
    DockerError,
    NotAuthorized,
    NotSupportedForAgents,
    OperationFailed,
)
from backend.json_answer import json_answer
from backend.middleware import principal_of
from backend.state import AGENTS, CONTAINERS, LIVE_STREAMS, SETTINGS, STATS
from backend.stats.stream import StatsConnection
from corral.shapes import RUNNING_STATUSES, ContainerStats, StatsMessage, StatsQuery


@endpoint(
    "One usage sample of a running container (the stream's latest when fresh, else read from "
    "the engine, about a second)",
    tag="usage",
    answers={200: Answer("The sample", ContainerStats)},
    errors=(400, 401, 403, 404, 503),
    notes={500: "failed to read container stats (sanitized message)"},
)
async def container_stats(request: web.Request) -> web.Response:
    ident = request.match_info["id"]
    principal = principal_of(request)
    if is_agent_id(ident):
        await request.app[AGENTS].get(principal, ident)
        raise NotSupportedForAgents("An agent's usage is in its heartbeat (the container list).")
    row = await request.app[CONTAINERS].repository.resolve(principal, ident)
    if row.status not in RUNNING_STATUSES:
        raise ContainerNotRunning()
    try:
        sample = await request.app[STATS].sample_of(row)
    except DockerError as exc:
        raise OperationFailed("failed to read container stats", str(exc)) from exc
    if sample is None:
        raise ContainerNotRunning()
    return json_answer(sample.as_json())


@endpoint(
    "Live usage of the caller's running sandboxes (WebSocket). A stream of its own rather than "
    "an event type: samples are not persisted, numbered or replayed.",
    tag="usage",
    answers={
        101: Answer(
            "Switching Protocols. The server sends a stats message at once and then every "
            "stats_interval_s (2 s), each with the latest sample of every running container the "
            "caller may see (a slow client gets the newest, never a backlog). The client may send "
            '{"type": "ping"} and gets {"type": "pong"}. Close codes: 1001 server shutting down, '
            "1008 token expired, or token revoked (revoked, or its session signed out: after a "
            'last {"type": "error", "error": "unauthorized", "message"}).',
            messages=StatsMessage,
        )
    },
    errors=(400, 401, 403),
)
async def stats_stream(request: web.Request, query: StatsQuery) -> web.StreamResponse:
    """Refusals (401, 403, 400) happen before the upgrade, as JSON, as on the events stream."""
    principal = principal_of(request)
    all_users = query.get("all", False)
    if all_users and not principal.is_admin:
        raise NotAuthorized("Only administrators may follow every user's containers.")
    connection = StatsConnection(
        request,
        settings=request.app[SETTINGS],
        sampler=request.app[STATS],
        principal=principal,
        all_users=all_users,
        live=request.app[LIVE_STREAMS],
    )
    return await connection.run()
