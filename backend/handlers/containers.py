"""The container routes: thin handlers over the container services (``backend.containers``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from backend.agents.service import is_agent_id
from backend.auth.principal import Principal
from backend.errors import NotAuthorized, NotSupportedForAgents, OperationFailed
from backend.middleware import principal_of
from backend.state import AGENTS, CONTAINERS, SETTINGS
from backend.validation import query_flag, read_json


async def container_listing(
    app: web.Application, principal: Principal, all_users: bool
) -> dict[str, Any]:
    """The body of ``GET /api/containers``. The events stream's first message carries exactly
    this, so it is built in one place."""
    items = await app[CONTAINERS].repository.list_json(principal, all_users)
    items += await app[AGENTS].list_json(principal, all_users)
    limit = app[SETTINGS].tier(principal.user.tier).containers
    return {"containers": items, "count": len(items), "limit": limit}


async def list_containers(request: web.Request) -> web.Response:
    principal = principal_of(request)
    all_users = query_flag(request, "all")
    if all_users and not principal.is_admin:
        raise NotAuthorized("Only administrators may list every user's containers.")
    return web.json_response(await container_listing(request.app, principal, all_users))


async def create_container(request: web.Request) -> web.Response:
    principal = principal_of(request)
    wait = query_flag(request, "wait")
    containers = request.app[CONTAINERS]
    result = await containers.provisioner.create(principal, await read_json(request))
    if not wait:
        body = result.container.as_json()
        body["message"] = (
            "container is being created; progress arrives as container_progress events"
        )
        return web.json_response(body, status=202)
    await result.task
    row = await containers.repository.reload(result.container.id)
    if row.status not in ("running", "configuring"):
        raise OperationFailed(
            "failed to create container", row.error or "the sandbox did not start", id=row.public_id
        )
    body = row.as_json()
    body["message"] = "container created"
    return web.json_response(body, status=201)


async def get_container(request: web.Request) -> web.Response:
    ident = request.match_info["id"]
    if is_agent_id(ident):
        agent = await request.app[AGENTS].get(principal_of(request), ident)
        return web.json_response(agent.as_json())
    row = await request.app[CONTAINERS].repository.resolve(principal_of(request), ident)
    return web.json_response(row.as_json())


async def start_container(request: web.Request) -> web.Response:
    ident = request.match_info["id"]
    if is_agent_id(ident):
        await request.app[AGENTS].get(principal_of(request), ident)
        raise NotSupportedForAgents("An agent is started on its own machine (corral agent).")
    body = await request.app[CONTAINERS].lifecycle.start(principal_of(request), ident)
    return web.json_response(body)


async def stop_container(request: web.Request) -> web.Response:
    ident = request.match_info["id"]
    if is_agent_id(ident):
        return web.json_response(await request.app[AGENTS].stop(principal_of(request), ident))
    body = await request.app[CONTAINERS].lifecycle.stop(principal_of(request), ident)
    return web.json_response(body)


async def delete_container(request: web.Request) -> web.Response:
    ident = request.match_info["id"]
    if is_agent_id(ident):
        return web.json_response(await request.app[AGENTS].delete(principal_of(request), ident))
    keep = query_flag(request, "keep_volume")
    body = await request.app[CONTAINERS].lifecycle.delete(principal_of(request), ident, keep)
    return web.json_response(body)


async def update_settings(request: web.Request) -> web.Response:
    ident = request.match_info["id"]
    if is_agent_id(ident):
        await request.app[AGENTS].get(principal_of(request), ident)
        raise NotSupportedForAgents("An agent's machine is not configured through Corral.")
    body = await request.app[CONTAINERS].reconfigure.update_settings(
        principal_of(request), ident, await read_json(request)
    )
    return web.json_response(body)


async def reinstall_role(request: web.Request) -> web.Response:
    """``POST /api/containers/{id}/role/reinstall``: 202 with the container; the install runs in
    the background and reports through container_progress events."""
    ident = request.match_info["id"]
    if is_agent_id(ident):
        await request.app[AGENTS].get(principal_of(request), ident)
        raise NotSupportedForAgents("An agent's machine has no Corral role.")
    body = await request.app[CONTAINERS].reconfigure.reinstall_role(principal_of(request), ident)
    return web.json_response(body, status=202)
