"""``GET /api/containers/events``: the live event stream (see ``backend.events.stream``)."""

from __future__ import annotations

from functools import partial

from aiohttp import web

from backend.endpoint import Answer, endpoint
from backend.errors import NotAuthorized
from backend.events.stream import EventConnection
from backend.handlers.containers import container_listing
from backend.middleware import principal_of
from backend.state import EVENT_HUB, EVENTS, LIVE_STREAMS, SETTINGS
from corral.shapes import EventMessage, EventsQuery


@endpoint(
    "Live events of the caller's containers and agents (WebSocket)",
    tag="containers",
    answers={
        101: Answer(
            'Switching Protocols. The server sends JSON text messages {"type", "container", '
            '"timestamp", "seq"}: first a "list" (container: {"containers", "count", "limit"}, '
            "seq: the position it reflects) or, with ?since=, the missed events; then every "
            "change as container_created, container_progress, container_started, "
            "container_stopped, container_deleted, container_updated, agent_connected, "
            'agent_disconnected. The client may send {"type": "ping"} and gets {"type": "pong"}. '
            "Close codes: 1001 server shutting down, 1008 token expired, or token revoked "
            '(revoked, or its session signed out: after a last {"type": "error", "error": '
            '"unauthorized", "message"}), 1013 the client did not keep up (reconnect with '
            "?since=).",
            messages=EventMessage,
        )
    },
    errors=(400, 401, 403),
)
async def container_events(request: web.Request, query: EventsQuery) -> web.StreamResponse:
    """Everything is refused before the upgrade (401, 403, 400 as JSON), so a client learns why
    from the status and body rather than from a close code."""
    principal = principal_of(request)
    all_users = query.get("all", False)
    if all_users and not principal.is_admin:
        raise NotAuthorized("Only administrators may follow every user's events.")
    since = query.get("since")
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
