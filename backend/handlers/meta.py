"""Health, the catalog of images and roles, and the OpenAPI document."""

from __future__ import annotations

from aiohttp import web

from backend.auth.policy import access
from backend.db.health import database_reachable
from backend.errors import DockerError, DockerUnavailable
from backend.openapi import openapi_document
from backend.state import CATALOG, CONTAINERS, DB_ENGINE, DOCKER, SETTINGS


@access(public=True)
async def health(request: web.Request) -> web.Response:
    """Every value is checked for real on each call: a health check that guesses is no check."""
    settings = request.app[SETTINGS]
    database = "ok" if await database_reachable(request.app[DB_ENGINE]) else "unavailable"

    docker = "ok"
    runtime_ok = False
    limits = False
    try:
        info = await request.app[DOCKER].info()
        runtime_ok = settings.runtime in (info.get("Runtimes") or {})
        cgroup_limits = bool(info.get("MemoryLimit")) and bool(info.get("CpuCfsQuota"))
        limits = runtime_ok and cgroup_limits and request.app[CONTAINERS].volumes.quota_enforced
    except (DockerUnavailable, DockerError):
        docker = "unavailable"

    runtime = settings.runtime if runtime_ok else f"{settings.runtime} (not registered)"
    if docker != "ok":
        runtime = f"{settings.runtime} (unknown: engine unreachable)"
    healthy = database == "ok" and docker == "ok" and runtime_ok
    body = {
        "status": "ok" if healthy else "degraded",
        "database": database,
        "docker": docker,
        "runtime": runtime,
        "limits_enforced": limits,
    }
    return web.json_response(body, status=200 if healthy else 503)


async def list_images(request: web.Request) -> web.Response:
    return web.json_response({"images": await request.app[CATALOG].images_json()})


async def list_roles(request: web.Request) -> web.Response:
    return web.json_response({"roles": request.app[CATALOG].roles_json()})


@access(public=True)
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())
