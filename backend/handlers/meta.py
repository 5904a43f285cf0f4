"""Health, the catalog of images and roles, and the OpenAPI document."""

from __future__ import annotations

from aiohttp import web

from backend.auth.policy import access
from backend.db.health import database_reachable
from backend.endpoint import Answer, endpoint
from backend.json_answer import json_answer
from backend.state import CATALOG, DB_ENGINE, ENGINES, OPENAPI, SETTINGS
from corral.shapes import EngineHealth, Health, ImageList, RoleList


@endpoint(
    "Health of the database, the engine, the runtime and the limits",
    tag="meta",
    answers={
        200: Answer("All checked and healthy", Health),
        503: Answer("The engine or the database is down (status degraded)", Health),
    },
)
@access(public=True)
async def health(request: web.Request) -> web.Response:
    """Every value is checked for real on each call: a health check that guesses is no check.
    ``docker`` is ok only when every engine answers (``engines`` says which does not)."""
    settings = request.app[SETTINGS]
    database = "ok" if await database_reachable(request.app[DB_ENGINE]) else "unavailable"
    engines = request.app[ENGINES]
    await engines.refresh()
    each: dict[str, EngineHealth] = {
        engine.name: {
            "docker": "ok" if engine.health.reachable else "unavailable",
            "runtime": "ok" if engine.health.runtime else "unavailable",
        }
        for engine in engines
    }
    docker_ok = all(engine.health.reachable for engine in engines)
    runtime_ok = all(engine.health.runtime for engine in engines if engine.health.reachable)
    limits = docker_ok and all(
        engine.health.ok and engine.health.cgroup_limits and engine.services.volumes.quota_enforced
        for engine in engines
    )
    runtime = settings.runtime if runtime_ok else f"{settings.runtime} (not registered)"
    if not docker_ok and runtime_ok:
        runtime = f"{settings.runtime} (unknown: engine unreachable)"
    healthy = database == "ok" and docker_ok and runtime_ok
    answer: Health = {
        "status": "ok" if healthy else "degraded",
        "database": "ok" if database == "ok" else "unavailable",
        "docker": "ok" if docker_ok else "unavailable",
        "runtime": runtime,
        "limits_enforced": limits,
        "engines": each,
    }
    return json_answer(answer, status=200 if healthy else 503)


@endpoint(
    "Images that create accepts",
    tag="catalog",
    answers={200: Answer("Images", ImageList)},
    errors=(401, 403, 503),
)
async def list_images(request: web.Request) -> web.Response:
    answer: ImageList = {"images": await request.app[CATALOG].images_json()}
    return json_answer(answer)


@endpoint(
    "Roles that create accepts: development tools a sandbox starts with (from the role's image, "
    "built once per host). A role on an image it does not list is 400 unsupported role.",
    tag="catalog",
    answers={200: Answer("Roles", RoleList)},
    errors=(401, 403),
)
async def list_roles(request: web.Request) -> web.Response:
    answer: RoleList = {"roles": request.app[CATALOG].roles_json()}
    return json_answer(answer)


@endpoint(
    "This document",
    tag="meta",
    answers={200: Answer("OpenAPI 3.1", dict)},
)
@access(public=True)
async def openapi(request: web.Request) -> web.Response:
    """The declared document, with what the configuration fixes (``backend.openapi_served``)."""
    return json_answer(await request.app[OPENAPI].current())
