"""The container routes: thin handlers over the container services (``backend.containers``)."""

from __future__ import annotations

from aiohttp import web

from backend.agents.service import is_agent_id
from backend.auth.principal import Principal
from backend.endpoint import Answer, endpoint
from backend.errors import NotAuthorized, NotSupportedForAgents, OperationFailed
from backend.json_answer import json_answer
from backend.middleware import principal_of
from backend.state import AGENTS, CONTAINERS, ENGINES, SETTINGS
from corral.shapes import (
    RUNNING_STATUSES,
    Container,
    ContainerCreate,
    ContainerList,
    ContainerSettings,
    CreateQuery,
    Deleted,
    DeleteQuery,
    Lifecycle,
    ListQuery,
    SettingsChanged,
)

# The refusals every ``{id}`` route shares (see docs/api.md).
ON_ID = (401, 403, 404)


async def container_listing(
    app: web.Application, principal: Principal, all_users: bool
) -> ContainerList:
    """The body of ``GET /api/containers``. The events stream's first message carries exactly
    this, so it is built in one place. Containers on an engine that does not answer read
    ``unknown`` (``backend.engines.pool``)."""
    items = app[ENGINES].overlay(await app[CONTAINERS].repository.list_json(principal, all_users))
    items += await app[AGENTS].list_json(principal, all_users)
    limit = app[SETTINGS].tier(principal.user.tier).containers
    return {"containers": items, "count": len(items), "limit": limit}


@endpoint(
    "The caller's containers and agents",
    tag="containers",
    answers={200: Answer("Containers", ContainerList)},
    errors=(400, 401, 403),
)
async def list_containers(request: web.Request, query: ListQuery) -> web.Response:
    principal = principal_of(request)
    all_users = query.get("all", False)
    if all_users and not principal.is_admin:
        raise NotAuthorized("Only administrators may list every user's containers.")
    return json_answer(await container_listing(request.app, principal, all_users))


@endpoint(
    "Create a container (progress arrives as events)",
    tag="containers",
    answers={
        202: Answer("Accepted: status creating", Container),
        201: Answer("With ?wait=true: created and running", Container),
    },
    errors=(400, 401, 403, 409, 413, 503, 507),
    notes={
        404: "volume not found: volume names none of your kept volumes",
        503: "docker unavailable (no engine it may go on answers), no engine available (they "
        "answer, but each is drained, full, or lacks the runtime; the message says which), or "
        "database busy",
        500: "failed to create container: with ?wait=true, the sandbox did not start",
    },
)
async def create_container(
    request: web.Request, body: ContainerCreate, query: CreateQuery
) -> web.Response:
    principal = principal_of(request)
    containers = request.app[CONTAINERS]
    result = await request.app[ENGINES].create(principal, body)
    if not query.get("wait", False):
        answer = result.container.as_json()
        answer["message"] = (
            "container is being created; progress arrives as container_progress events"
        )
        return json_answer(answer, status=202)
    await result.task
    row = await containers.repository.reload(result.container.id)
    if row.status not in RUNNING_STATUSES:
        raise OperationFailed(
            "failed to create container", row.error or "the sandbox did not start", id=row.public_id
        )
    answer = row.as_json()
    answer["message"] = "container created"
    return json_answer(answer, status=201)


@endpoint(
    "One container (or agent)",
    tag="containers",
    answers={200: Answer("The container", Container)},
    errors=ON_ID,
)
async def get_container(request: web.Request) -> web.Response:
    ident = request.match_info["id"]
    if is_agent_id(ident):
        agent = await request.app[AGENTS].get(principal_of(request), ident)
        return json_answer(agent.as_json())
    repository = request.app[CONTAINERS].repository
    item = await repository.get_json(principal_of(request), ident)
    return json_answer(request.app[ENGINES].overlay([item])[0])


@endpoint(
    "Start a container, recreating it if Docker lost it",
    tag="containers",
    answers={200: Answer("Started, already running, or recreated and started", Lifecycle)},
    errors=(*ON_ID, 503, 507),
    notes={
        400: "not supported for agents",
        403: "not authorized, or guest session expired",
        500: "failed to start container (sanitized message)",
    },
)
async def start_container(request: web.Request) -> web.Response:
    ident = request.match_info["id"]
    if is_agent_id(ident):
        await request.app[AGENTS].get(principal_of(request), ident)
        raise NotSupportedForAgents("An agent is started on its own machine (corral agent).")
    services = await request.app[ENGINES].services_for(principal_of(request), ident)
    answer: Lifecycle = await services.lifecycle.start(principal_of(request), ident)
    return json_answer(answer)


@endpoint(
    "Stop a container (or disconnect an agent)",
    tag="containers",
    answers={200: Answer("Stopped or already stopped", Lifecycle)},
    errors=(*ON_ID, 503, 507),
    notes={500: "failed to stop container (sanitized message)"},
)
async def stop_container(request: web.Request) -> web.Response:
    ident = request.match_info["id"]
    answer: Lifecycle
    if is_agent_id(ident):
        answer = await request.app[AGENTS].stop(principal_of(request), ident)
    else:
        services = await request.app[ENGINES].services_for(principal_of(request), ident)
        answer = await services.lifecycle.stop(principal_of(request), ident)
    return json_answer(answer)


@endpoint(
    "Delete a container and, unless kept, its volume (or forget an agent)",
    tag="containers",
    answers={200: Answer("Deleted", Deleted)},
    errors=(400, *ON_ID, 503, 507),
    notes={500: "failed to delete container (sanitized message)"},
)
async def delete_container(request: web.Request, query: DeleteQuery) -> web.Response:
    ident = request.match_info["id"]
    answer: Deleted
    if is_agent_id(ident):
        answer = await request.app[AGENTS].delete(principal_of(request), ident)
    else:
        keep = query.get("keep_volume", False)
        services = await request.app[ENGINES].services_for(principal_of(request), ident)
        answer = await services.lifecycle.delete(principal_of(request), ident, keep)
    return json_answer(answer)


@endpoint(
    "Rename, or change memory, CPU or disk (a running container is rebuilt on the same volume "
    "and restarted)",
    tag="containers",
    answers={200: Answer("Updated", SettingsChanged)},
    errors=(400, *ON_ID, 409, 413, 503, 507),
    notes={500: "failed to update settings (sanitized message)"},
)
async def update_settings(request: web.Request, body: ContainerSettings) -> web.Response:
    ident = request.match_info["id"]
    if is_agent_id(ident):
        await request.app[AGENTS].get(principal_of(request), ident)
        raise NotSupportedForAgents("An agent's machine is not configured through Corral.")
    services = await request.app[ENGINES].services_for(principal_of(request), ident)
    answer = await services.reconfigure.update_settings(principal_of(request), ident, body)
    return json_answer(answer)


@endpoint(
    "Recreate the running sandbox from a freshly checked role image (built when stale or "
    "missing), keeping the volume: after a failed role, or to repair one. The container answers "
    "status configuring and role_state pending at once; container_progress events (stages "
    "role_download, role_image, role_done, role_failed; role_install where roles install inside "
    "the sandbox) follow. A reinstall already running is left to finish.",
    tag="containers",
    answers={202: Answer("Accepted: the install runs in the background", Container)},
    errors=(400, *ON_ID, 503, 507),
)
async def reinstall_role(request: web.Request) -> web.Response:
    """``POST /api/containers/{id}/role/reinstall``: 202 with the container; the install runs in
    the background and reports through container_progress events."""
    ident = request.match_info["id"]
    if is_agent_id(ident):
        await request.app[AGENTS].get(principal_of(request), ident)
        raise NotSupportedForAgents("An agent's machine has no Corral role.")
    services = await request.app[ENGINES].services_for(principal_of(request), ident)
    answer = await services.reconfigure.reinstall_role(principal_of(request), ident)
    return json_answer(answer, status=202)
