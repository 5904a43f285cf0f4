"""``@endpoint``: what a route takes and answers, declared once on its handler.

The handler names its inputs in its signature, with shapes from ``corral.shapes``::

    @endpoint("Create a container", answers={202: Answer("Accepted", Container)}, errors=...)
    async def create_container(
        request: web.Request, body: ContainerCreate, query: CreateQuery
    ) -> web.Response: ...

The decorator reads the annotations of ``body`` and ``query`` once, checks both on every request
before the handler runs (400 ``invalid parameters``, naming the field), and keeps the whole
declaration on the handler, where ``backend.openapi`` finds it by walking the route table. So the
shape that validates a request is the one the document shows, and a route cannot be served
without being described.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from backend.http_input import read_body, read_query

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ENDPOINT_ATTR = "__corral_endpoint__"


@dataclass(frozen=True)
class Answer:
    """One success status of a route: its description and JSON shape (None: no JSON body)."""

    description: str
    shape: type[Any] | None = None
    media_type: str = "application/json"
    # A WebSocket's messages (documented as ``x-websocket-messages`` on its 101 answer).
    messages: type[Any] | None = None


@dataclass(frozen=True)
class Endpoint:
    summary: str
    tag: str
    answers: Mapping[int, Answer]
    errors: tuple[int, ...]
    notes: Mapping[int, str] = field(default_factory=dict)  # error texts of this route's own
    body: type[Any] | None = None
    query: type[Any] | None = None
    # A multipart/form-data body of one file, in the part of this name (read by the handler).
    upload: str | None = None


def endpoint(
    summary: str,
    *,
    tag: str,
    answers: Mapping[int, Answer],
    errors: Iterable[int] = (),
    notes: Mapping[int, str] | None = None,
    upload: str | None = None,
) -> Callable[[Callable[..., Awaitable[web.StreamResponse]]], Handler]:
    """Declare a handler's route (see the module's docstring). ``errors`` are the statuses it
    may refuse with; ``notes`` say what a status means on this route where the usual text does
    not fit. ``upload`` names the part of a multipart/form-data body carrying one file (the
    handler streams it itself)."""

    def declare(func: Callable[..., Awaitable[web.StreamResponse]]) -> Handler:
        hints = typing.get_type_hints(func)
        spec = Endpoint(
            summary=summary,
            tag=tag,
            answers=dict(answers),
            errors=tuple(sorted(set(errors) | set(notes or {}))),
            notes=dict(notes or {}),
            body=hints.get("body"),
            query=hints.get("query"),
            upload=upload,
        )

        @functools.wraps(func)
        async def handle(request: web.Request) -> web.StreamResponse:
            inputs: dict[str, Any] = {}
            if spec.query is not None:
                inputs["query"] = read_query(request, spec.query)
            if spec.body is not None:
                inputs["body"] = await read_body(request, spec.body)
            return await func(request, **inputs)

        setattr(handle, ENDPOINT_ATTR, spec)
        return handle

    return declare


def endpoint_of(handler: Any) -> Endpoint | None:
    value = getattr(handler, ENDPOINT_ATTR, None)
    return value if isinstance(value, Endpoint) else None


def is_websocket(handler: Any) -> bool:
    """Whether the route is a WebSocket (it answers 101)."""
    spec = endpoint_of(handler)
    return spec is not None and 101 in spec.answers
