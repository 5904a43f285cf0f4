"""Kept volumes: ``GET /api/volumes`` and ``DELETE /api/volumes/{name}`` (see
``backend.containers.kept``)."""

from __future__ import annotations

from aiohttp import web

from backend.endpoint import Answer, endpoint
from backend.errors import NotAuthorized
from backend.json_answer import json_answer
from backend.middleware import principal_of
from backend.state import ENGINES
from corral.shapes import ListQuery, VolumeDeleted, VolumeList


@endpoint(
    "The caller's kept volumes (from deletes with keep_volume=true)",
    tag="volumes",
    answers={200: Answer("Kept volumes, oldest first", VolumeList)},
    errors=(400, 401, 403),
)
async def list_volumes(request: web.Request, query: ListQuery) -> web.Response:
    principal = principal_of(request)
    all_users = query.get("all", False)
    if all_users and not principal.is_admin:
        raise NotAuthorized("Only administrators may list every user's volumes.")
    items = await request.app[ENGINES].kept_json(principal, all_users)
    answer: VolumeList = {"volumes": items, "count": len(items)}
    return json_answer(answer)


@endpoint(
    "Delete a kept volume and its data",
    tag="volumes",
    answers={200: Answer("Deleted", VolumeDeleted)},
    errors=(401, 403, 503, 507),
    notes={
        404: "volume not found (also for another user's volume)",
        500: "failed to delete volume (sanitized message)",
    },
)
async def delete_volume(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    engine = await request.app[ENGINES].engine_of_volume(name)
    answer = await engine.services.kept.delete(principal_of(request), name)
    return json_answer(answer)
