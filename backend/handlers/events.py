"""``GET /api/containers/events``: the live event stream (see ``backend.events.stream``)."""

from __future__ import annotations

from functools import partial

from aiohttp import web

from backend.errors import NotAuthorized
from backend.events.stream import EventConnection
from backend.handlers.containers import container_listing
from backend.middleware import principal_of
from backend.state import EVENT_HUB, EVENTS, LIVE_STREAMS, SETTINGS
from backend.validation import query_flag, query_int


async def container_events(request: web.Request) -> web.StreamResponse:
    """Everything is refused before the upgrade (401, 403, 400 as JSON), so a client learns why
    from the status and body rather than from a close code."""
    principal = principal_of(request)
    all_users = query_flag(request, "all")
    if all_users and not principal.is_admin:
        raise NotAuthorized("Only administrators may follow every user's events.")
    since = query_int(request, "since", minimum=0)
    connection = EventConnection(
        request,
        settings=request.app[SETTINGS],
        hub=request.app[EVENT_HUB],
        events=request.app[EVENTS],
        listing=partial(container_listing, request.app, principal, all_users),
        principal=principal,
        all_users=all_users,
        since=since,
        live=request.app[LIVE_STREAMS],
    )
    return await connection.run()
