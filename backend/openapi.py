"""The OpenAPI 3.1 document for every route.

Request schemas come from the same ``Schema`` declarations that validate requests, so the document
cannot describe a body the server would refuse. A test checks that every route in
``backend.routes.ROUTES`` is documented here and nothing else is.
"""

from __future__ import annotations

import functools
from typing import Any

from backend import validation as v

ERROR = {"$ref": "#/components/schemas/Error"}
CONTAINER = {"$ref": "#/components/schemas/Container"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Bad input: invalid parameters, invalid json, invalid container name, "
        "unsupported image, unsupported role, container is not running",
        401: "unauthorized: missing, malformed, expired, wrongly signed or revoked token",
        403: "not authorized, container limit reached, or guest session expired",
        404: "container not found (also for another user's container)",
        409: "container with this name already exists",
        413: "request too large",
        500: "failed to start / stop / delete container, failed to update settings "
        "(sanitized message)",
        503: "docker unavailable: nothing was changed",
    }
    return {str(code): _json(ERROR, text[code]) for code in codes}


def _obj(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props}


STR = {"type": "string"}
INT = {"type": "integer"}
BOOL = {"type": "boolean"}
ID_PARAM = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": STR,
    "description": "The container, by (in this order) its database ID (UUID), its full Docker ID, "
    "its exact name (the caller's own first), or a unique Docker ID prefix of 12+ characters; "
    "agent:<uuid> names an agent. The database ID and the name survive rebuilds; the Docker ID "
    "does not.",
}


def _flag(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": BOOL,
        "description": description,
    }


NUM = {"type": "number"}
STATS_SAMPLE = _obj(
    id=STR,
    db_id=STR,
    name=STR,
    cpu_percent={**NUM, "description": "Percent of one host core (as docker stats)"},
    memory_used_mb={**NUM, "description": "Memory in use, inactive file cache left out"},
    memory_limit_mb=NUM,
    pids={**INT, "description": "Host tasks of the sandbox (under gVisor, its threads)"},
    timestamp=STR,
)
KEPT_VOLUME = _obj(
    name=STR,
    owner_id=STR,
    size_mb=INT,
    used_mb={"type": ["integer", "null"], "description": "null when it cannot be measured"},
    container_name=STR,
    container_db_id=STR,
    kept_at=STR,
)


def _error(code: int, text: str) -> dict[str, Any]:
    return {str(code): _json(ERROR, text)}


LIFECYCLE = _obj(
    message=STR, id=STR, name=STR, status=STR, old_id=STR, recreated=BOOL, volume_kept=BOOL
)


def _op(
    summary: str,
    responses: dict[str, Any],
    *,
    body: v.Schema | None = None,
    params: list[dict[str, Any]] | None = None,
    public: bool = False,
    tag: str = "containers",
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
    if body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{body.name}"}}
            },
        }
    if params:
        op["parameters"] = params
    if public:
        op["security"] = []
    return op


RATE_LIMITED = {
    "description": "too many requests (a rate limit: sign-in per client IP, writes per user), "
    "or on guest sign-in guest limit reached (as many guest sessions are live as allowed); "
    "retry_after in the body, as the header",
    "headers": {
        "Retry-After": {
            "description": "Seconds until the request may succeed",
            "schema": INT,
        }
    },
    "content": {"application/json": {"schema": ERROR}},
}
SIGN_IN = ("/api/auth/guest", "/api/auth/login")


def _add_rate_limits(paths: dict[str, dict[str, Any]]) -> None:
    """429 on every rate-limited operation: sign-in, and every write of a signed-in caller."""
    for path, operations in paths.items():
        for method, operation in operations.items():
            if path in SIGN_IN or method in ("post", "put", "patch", "delete"):
                operation["responses"]["429"] = RATE_LIMITED


@functools.cache
def openapi_document() -> dict[str, Any]:
    bodies = [v.GUEST_LOGIN, v.LOGIN, v.TOKEN_CREATE, v.CONTAINER_CREATE, v.CONTAINER_SETTINGS]
    paths: dict[str, dict[str, Any]] = {
        "/health": {
            "get": _op(
                "Health of the database, the engine, the runtime and the limits",
                {
                    "200": _json(
                        _obj(
                            status=STR, database=STR, docker=STR, runtime=STR, limits_enforced=BOOL
                        ),
                        "All checked and healthy",
                    ),
                    "503": _json(
                        _obj(
                            status=STR, database=STR, docker=STR, runtime=STR, limits_enforced=BOOL
                        ),
                        "The engine or the database is down",
                    ),
                },
                public=True,
                tag="meta",
            )
        },
        "/api/openapi.json": {
            "get": _op(
                "This document",
                {"200": _json({"type": "object"}, "OpenAPI 3.1")},
                public=True,
                tag="meta",
            )
        },
        "/api/auth/guest": {
            "post": _op(
                "Start a 50-hour guest session",
                {
                    "200": _json(
                        _obj(
                            token=STR,
                            user={"type": "object"},
                            guest=BOOL,
                            expires_in=INT,
                            expires_at=STR,
                        ),
                        "Signed in",
                    ),
                    **_errors(400, 409),
                },
                body=v.GUEST_LOGIN,
                public=True,
                tag="auth",
            )
        },
        "/api/auth/login": {
            "post": _op(
                "Sign in with a password",
                {
                    "200": _json(
                        _obj(token=STR, user={"type": "object"}, expires_in=INT, expires_at=STR),
                        "Signed in",
                    ),
                    **_errors(400, 401),
                },
                body=v.LOGIN,
                public=True,
                tag="auth",
            )
        },
        "/api/auth/logout": {
            "post": _op(
                "Revoke the session token used for this call",
                {"200": _json(_obj(message=STR), "Signed out"), **_errors(400, 401)},
                tag="auth",
            )
        },
        "/api/me": {
            "get": _op(
                "The caller, their tier's limits and usage",
                {
                    "200": _json(
                        _obj(
                            user={"type": "object"},
                            tier=STR,
                            limits={"type": "object"},
                            usage=_obj(
                                containers=INT,
                                disk_mb={
                                    **INT,
                                    "description": "Disk held: containers' and kept volumes'",
                                },
                                kept_volumes=INT,
                                kept_volumes_mb=INT,
                            ),
                        ),
                        "The caller",
                    ),
                    **_errors(401),
                },
                tag="auth",
            )
        },
        "/api/tokens": {
            "post": _op(
                "Create an API token (shown once)",
                {
                    "201": _json(
                        _obj(
                            token=STR,
                            id=STR,
                            name=STR,
                            token_prefix=STR,
                            scopes={"type": "array", "items": STR},
                            expires_at=STR,
                            created_at=STR,
                        ),
                        "Created",
                    ),
                    **_errors(400, 401, 403),
                },
                body=v.TOKEN_CREATE,
                tag="auth",
            ),
            "get": _op(
                "The caller's active API tokens",
                {
                    "200": _json(
                        _obj(tokens={"type": "array", "items": {"type": "object"}}, count=INT),
                        "Tokens",
                    ),
                    **_errors(401),
                },
                tag="auth",
            ),
        },
        "/api/tokens/{token_id}": {
            "delete": _op(
                "Revoke an API token",
                {"200": _json(_obj(message=STR, id=STR), "Revoked"), **_errors(401, 403, 404)},
                params=[{"name": "token_id", "in": "path", "required": True, "schema": STR}],
                tag="auth",
            )
        },
        "/api/images": {
            "get": _op(
                "Images that create accepts",
                {
                    "200": _json(
                        _obj(images={"type": "array", "items": {"type": "object"}}), "Images"
                    ),
                    **_errors(401, 503),
                },
                tag="catalog",
            )
        },
        "/api/roles": {
            "get": _op(
                "Roles that create accepts: development tools a sandbox starts with (from the "
                "role's image, built once per host). A role on an image it does not list is 400 "
                "unsupported role.",
                {
                    "200": _json(
                        _obj(
                            roles={
                                "type": "array",
                                "items": _obj(
                                    id=STR,
                                    name=STR,
                                    description=STR,
                                    packages={"type": "array", "items": STR},
                                    images={"type": "array", "items": STR},
                                ),
                            }
                        ),
                        "Roles",
                    ),
                    **_errors(401),
                },
                tag="catalog",
            )
        },
        "/api/containers": {
            "get": _op(
                "The caller's containers and agents",
                {
                    "200": _json(
                        _obj(
                            containers={"type": "array", "items": CONTAINER}, count=INT, limit=INT
                        ),
                        "Containers",
                    ),
                    **_errors(401, 403),
                },
                params=[_flag("all", "Admins only: every user's containers")],
            ),
            "post": _op(
                "Create a container (progress arrives as events)",
                {
                    "202": _json(CONTAINER, "Accepted: status creating"),
                    "201": _json(CONTAINER, "With ?wait=true: created and running"),
                    **_errors(400, 401, 403, 409, 413, 500, 503),
                },
                body=v.CONTAINER_CREATE,
                params=[_flag("wait", "Answer 201 once the container runs")],
            ),
        },
        "/api/containers/events": {
            "get": _op(
                "Live events of the caller's containers and agents (WebSocket)",
                {
                    "101": {
                        "description": "Switching Protocols. The server sends JSON text messages "
                        '{"type", "container", "timestamp", "seq"}: first a "list" (container: '
                        '{"containers", "count", "limit"}, seq: the position it reflects) or, with '
                        "?since=, the missed events; then every change as container_created, "
                        "container_progress, container_started, container_stopped, "
                        "container_deleted, container_updated, agent_connected, "
                        'agent_disconnected. The client may send {"type": "ping"} and gets '
                        '{"type": "pong"}. Close codes: 1001 server shutting down, 1008 token '
                        "expired, 1013 the client did not keep up (reconnect with ?since=).",
                        "headers": {
                            "Sec-WebSocket-Protocol": {
                                "description": "corral.v1 when the client offered it",
                                "schema": STR,
                            }
                        },
                    },
                    **_errors(400, 401, 403),
                },
                params=[
                    {
                        "name": "since",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 0},
                        "description": "Resume after this seq (the last one received): the missed "
                        "events are sent first, or a fresh list when they are no longer kept.",
                    },
                    _flag(
                        "all",
                        "Admins only: every user's events; seq is then the event's global ID "
                        "(increasing, not by one)",
                    ),
                    {
                        "name": "token",
                        "in": "query",
                        "required": False,
                        "schema": STR,
                        "description": "The bearer token, for clients that cannot set headers "
                        "(or use the subprotocols corral.v1, corral.token.<token>)",
                    },
                ],
            )
        },
        "/api/containers/stats": {
            "get": _op(
                "Live usage of the caller's running sandboxes (WebSocket). A stream of its own "
                "rather than an event type: samples are not persisted, numbered or replayed.",
                {
                    "101": {
                        "description": "Switching Protocols. The server sends "
                        '{"type": "stats", "stats": [<sample>, ...], "timestamp"} at once and '
                        "then every stats_interval_s (2 s), each with the latest sample of every "
                        "running container the caller may see (a slow client gets the newest, "
                        'never a backlog). The client may send {"type": "ping"} and gets '
                        '{"type": "pong"}. Close codes: 1001 server shutting down, 1008 token '
                        "expired.",
                        "headers": {
                            "Sec-WebSocket-Protocol": {
                                "description": "corral.v1 when the client offered it",
                                "schema": STR,
                            }
                        },
                    },
                    **_errors(400, 401, 403),
                },
                params=[
                    _flag("all", "Admins only: every user's running containers"),
                    {
                        "name": "token",
                        "in": "query",
                        "required": False,
                        "schema": STR,
                        "description": "The bearer token, for clients that cannot set headers",
                    },
                ],
                tag="usage",
            )
        },
        "/api/containers/{id}/stats": {
            "get": _op(
                "One usage sample of a running container (the stream's latest when fresh, else "
                "read from the engine, about a second)",
                {
                    "200": _json(STATS_SAMPLE, "The sample"),
                    **_errors(400, 401, 403, 404),
                    **_error(500, "failed to read container stats (sanitized message)"),
                    **_errors(503),
                },
                params=[ID_PARAM],
                tag="usage",
            )
        },
        "/api/containers/{id}/logs": {
            "get": _op(
                "The container's output (its PID 1's stdout and stderr, demultiplexed): a line "
                "when the sandbox starts and stops, and whatever is written to /proc/1/fd/1 in "
                "it. A stopped container's output is readable; a rebuilt one starts afresh.",
                {
                    "200": {
                        "description": "The output, streamed; with follow=true until the "
                        "client leaves or the container stops",
                        "content": {"text/plain; charset=utf-8": {"schema": STR}},
                    },
                    **_errors(400, 401, 403, 404),
                    **_error(500, "failed to read container logs (sanitized message)"),
                    **_errors(503),
                },
                params=[
                    ID_PARAM,
                    {
                        "name": "tail",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 10000},
                        "description": "How many of the last lines to send first (default 200)",
                    },
                    _flag("follow", "Keep the response open and stream new output"),
                    _flag("timestamps", "Prefix each line with the engine's RFC 3339 time"),
                ],
                tag="usage",
            )
        },
        "/api/volumes": {
            "get": _op(
                "The caller's kept volumes (from deletes with keep_volume=true)",
                {
                    "200": _json(
                        _obj(volumes={"type": "array", "items": KEPT_VOLUME}, count=INT),
                        "Kept volumes, oldest first",
                    ),
                    **_errors(401, 403),
                },
                params=[_flag("all", "Admins only: every user's kept volumes")],
                tag="volumes",
            )
        },
        "/api/volumes/{name}": {
            "delete": _op(
                "Delete a kept volume and its data",
                {
                    "200": _json(_obj(message=STR, name=STR), "Deleted"),
                    **_errors(401, 403),
                    **_error(404, "volume not found (also for another user's volume)"),
                    **_error(500, "failed to delete volume (sanitized message)"),
                    **_errors(503),
                },
                params=[{"name": "name", "in": "path", "required": True, "schema": STR}],
                tag="volumes",
            )
        },
        "/api/containers/{id}": {
            "get": _op(
                "One container",
                {"200": _json(CONTAINER, "The container"), **_errors(401, 403, 404)},
                params=[ID_PARAM],
            ),
            "delete": _op(
                "Delete a container and, unless kept, its volume",
                {
                    "200": _json(_obj(message=STR, id=STR, db_id=STR, name=STR), "Deleted"),
                    **_errors(401, 403, 404, 500, 503),
                },
                params=[ID_PARAM, _flag("keep_volume", "Keep the volume (the data)")],
            ),
        },
        "/api/containers/{id}/start": {
            "post": _op(
                "Start a container, recreating it if Docker lost it",
                {
                    "200": _json(LIFECYCLE, "Started, already running, or recreated and started"),
                    **_errors(400, 401, 403, 404, 500, 503),
                },
                params=[ID_PARAM],
            )
        },
        "/api/containers/{id}/settings": {
            "patch": _op(
                "Rename, or change memory, CPU or disk (a running container is rebuilt on the "
                "same volume and restarted)",
                {
                    "200": _json(_obj(message=STR, restarted=BOOL, container=CONTAINER), "Updated"),
                    **_errors(400, 401, 403, 404, 409, 500, 503),
                },
                body=v.CONTAINER_SETTINGS,
                params=[ID_PARAM],
            )
        },
        "/api/containers/{id}/role/reinstall": {
            "post": _op(
                "Recreate the running sandbox from a freshly checked role image (built when stale "
                "or missing), keeping the volume: after a failed role, or to repair one. The "
                "container answers status configuring and role_state pending at once; "
                "container_progress events (stages role_download, role_image, role_done, "
                "role_failed; role_install where roles install inside the sandbox) follow. A "
                "reinstall already running is left to finish.",
                {
                    "202": _json(CONTAINER, "Accepted: the install runs in the background"),
                    **_errors(400, 401, 403, 404, 503),
                },
                params=[ID_PARAM],
            )
        },
        "/ws/terminal/{id}": {
            "get": _op(
                "WebSocket: an interactive shell (TTY) in a running container. Messages: "
                'client {"type": "input"|"resize"|"ping"} or raw text/binary input; server '
                '{"type": "connected"|"output"|"exit"|"error"|"pong"}. Optional ?cols=&rows=.',
                {
                    "101": {"description": "Switching to the WebSocket protocol"},
                    **_errors(400, 401, 403, 404, 503),
                },
                params=[ID_PARAM],
                tag="terminal",
            )
        },
        "/ws/agents/connect": {
            "get": _op(
                "WebSocket for corral agent (an agent token: scope agent). The agent sends "
                '{"type": "register", "name", "facts"} first, then heartbeats; the server '
                "multiplexes terminal sessions (open, input, resize, close / opened, output, "
                "exit, error) over it.",
                {
                    "101": {"description": "Switching to the WebSocket protocol"},
                    **_errors(401, 403),
                },
                tag="agents",
            )
        },
        "/api/containers/{id}/stop": {
            "post": _op(
                "Stop a container (or disconnect an agent)",
                {
                    "200": _json(LIFECYCLE, "Stopped or already stopped"),
                    **_errors(401, 403, 404, 500, 503),
                },
                params=[ID_PARAM],
            )
        },
    }
    _add_rate_limits(paths)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Corral API",
            "version": "1",
            "description": "Per-user sandboxed containers on Docker with gVisor. Every error is "
            '{"error": "<short string>", "message": "<sentence>"}; clients match on "error".',
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A JWT from /api/auth/* or an API token (crl_...)",
                }
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {"error": STR, "message": STR, "field": STR},
                },
                "Container": {
                    "type": "object",
                    "properties": {
                        "id": STR,
                        "db_id": STR,
                        "name": STR,
                        "image": STR,
                        "role": STR,
                        "role_state": {
                            "enum": ["none", "pending", "installing", "installed", "failed", None],
                            "description": "The role in the current sandbox: none (nothing to "
                            "install), installed (the sandbox runs from its role image), pending "
                            "(due: a reinstall, or resumed at the next start), installing (its "
                            "role image is being built), failed (role_error says why)",
                        },
                        "role_error": {"type": ["string", "null"]},
                        "status": {
                            "enum": [
                                "creating",
                                "configuring",
                                "running",
                                "stopped",
                                "missing",
                                "error",
                                "offline",
                            ]
                        },
                        "created_at": STR,
                        "last_used_at": {"type": ["string", "null"]},
                        "resources": _obj(memory_mb=INT, cpu_shares=INT, disk_mb=INT),
                        "runtime": STR,
                        "labels": {"type": "object"},
                        "volume": {
                            **STR,
                            "description": "The Docker volume holding /home/user (a kept one "
                            "when the container was created with volume)",
                        },
                    },
                },
                **{body.name: body.json_schema() for body in bodies},
            },
        },
    }
