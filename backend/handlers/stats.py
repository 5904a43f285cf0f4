"""Live usage: one sample (``GET /api/containers/{id}/stats``) and the stream of every running
sandbox's samples (``GET /api/containers/stats``, a WebSocket; see ``backend.stats``)."""

from __future__ import annotations

from aiohttp import web

from backend.agents.service import is_agent_id
from backend.errors import (
    ContainerNotRunning,
    DockerError,
    NotAuthorized,
    NotSupportedForAgents,
    OperationFailed,
)
from backend.middleware import principal_of
from backend.state import AGENTS, CONTAINERS, LIVE_STREAMS, SETTINGS, STATS
from backend.stats.sampler import RUNNING
from backend.stats.stream import StatsConnection
from backend.validation import query_flag


async def container_stats(request: web.Request) -> web.Response:
    ident = request.match_info["id"]
    principal = principal_of(request)
    if is_agent_id(ident):
        await request.app[AGENTS].get(principal, ident)
        raise NotSupportedForAgents("An agent's usage is in its heartbeat (the container list).")
    row = await request.app[CONTAINERS].repository.resolve(principal, ident)
    if row.status not in RUNNING:
        raise ContainerNotRunning()
    try:
        sample = await request.app[STATS].sample_of(row)
    except DockerError as exc:
        raise OperationFailed("failed to read container stats", str(exc)) from exc
    if sample is None:
        raise ContainerNotRunning()
    return web.json_response(sample.as_json())


async def stats_stream(request: web.Request) -> web.StreamResponse:
    """Refusals (401, 403, 400) happen before the upgrade, as JSON, as on the events stream."""
    principal = principal_of(request)
    all_users = query_flag(request, "all")
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
