"""The Docker engines (administrators): health, sandboxes and memory of each, and drains."""

from __future__ import annotations

from aiohttp import web

from backend.auth.policy import access
from backend.endpoint import Answer, endpoint
from backend.json_answer import json_answer
from backend.state import ENGINES
from corral.shapes import Engine, EngineList

NAME_NOTE = {404: "engine not found: no engine of that name is configured"}


@endpoint(
    "The Docker engines sandboxes are placed on, each probed now: whether it answers and has "
    "the runtime, how many sandboxes it holds, its memory (total, placed, free) and its drain",
    tag="engines",
    answers={200: Answer("The engines", EngineList)},
    errors=(401, 403),
)
@access(admin=True)
async def list_engines(request: web.Request) -> web.Response:
    items = await request.app[ENGINES].listing()
    answer: EngineList = {"engines": items, "count": len(items)}
    return json_answer(answer)


@endpoint(
    "Drain an engine: no new sandboxes are placed on it; those it holds keep running and "
    "working (every backend sharing the database sees the drain)",
    tag="engines",
    answers={200: Answer("The engine, drained", Engine)},
    errors=(401, 403),
    notes=NAME_NOTE,
)
@access(admin=True)
async def drain_engine(request: web.Request) -> web.Response:
    answer = await request.app[ENGINES].drain(request.match_info["name"], True)
    return json_answer(answer)


@endpoint(
    "Undrain an engine: new sandboxes may be placed on it again",
    tag="engines",
    answers={200: Answer("The engine, undrained", Engine)},
    errors=(401, 403),
    notes=NAME_NOTE,
)
@access(admin=True)
async def undrain_engine(request: web.Request) -> web.Response:
    answer = await request.app[ENGINES].drain(request.match_info["name"], False)
    return json_answer(answer)
