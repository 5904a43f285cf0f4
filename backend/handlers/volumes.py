"""Kept volumes: ``GET /api/volumes`` and ``DELETE /api/volumes/{name}`` (see
``backend.containers.kept``)."""

from __future__ import annotations

from aiohttp import web

from backend.errors import NotAuthorized
from backend.middleware import principal_of
from backend.state import CONTAINERS
from backend.validation import query_flag


async def list_volumes(request: web.Request) -> web.Response:
    principal = principal_of(request)
    all_users = query_flag(request, "all")
    if all_users and not principal.is_admin:
        raise NotAuthorized("Only administrators may list every user's volumes.")
    items = await request.app[CONTAINERS].kept.list_json(principal, all_users)
    return web.json_response({"volumes": items, "count": len(items)})


async def delete_volume(request: web.Request) -> web.Response:
    body = await request.app[CONTAINERS].kept.delete(
        principal_of(request), request.match_info["name"]
    )
    return web.json_response(body)
