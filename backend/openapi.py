"""The OpenAPI 3.1 document, assembled from the route table.

Each route's handler carries its declaration (``backend.endpoint``): summary, query and body
shapes, answers and refusals. The shapes are ``corral.shapes``' declarations, the same that
validate requests, and pydantic writes their JSON Schema (2020-12, the dialect of OpenAPI 3.1),
so the document cannot describe a body the server would refuse, nor miss a route: a route whose
handler declares nothing stops the build.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

from aiohttp import web
from pydantic import TypeAdapter
from pydantic.json_schema import JsonSchemaMode

from backend.auth.policy import access_of
from backend.endpoint import Endpoint, endpoint_of
from backend.ratelimit import WRITE_METHODS, ip_limit_of
from backend.routes import ROUTES
from corral.shapes import Error
from corral.shapes.check import adapter

REF = "#/components/schemas/{model}"

# What each refusal status means on most routes; a route's ``notes`` say it where it differs.
ERRORS = {
    400: "invalid parameters (naming the field), invalid json, invalid container name, "
    "unsupported image, unsupported role, container is not running, not supported for agents",
    401: "unauthorized: missing, malformed, expired, wrongly signed or revoked token",
    403: "not authorized, container limit reached, or guest session expired",
    404: "container not found (also for another user's container), or agent not found",
    409: "container with this name already exists",
    413: "request too large",
    500: "failed to ... (the operation; sanitized message)",
    503: "docker unavailable (the engine cannot be reached; nothing was changed), or database "
    "busy (another process held the database past the busy timeout; Retry-After says when to "
    "try again)",
    507: "insufficient storage: the data directory's disk is full, so the change could not be "
    "recorded",
}
# Every rate-limited operation (backend.ratelimit): sign-in per client IP, and every write of a
# signed-in caller per user.
RATE_LIMITED = (
    "too many requests: a rate limit (sign-in per client IP, writes per user); Retry-After and "
    "retry_after say when to retry. Nothing was done"
)
GUEST_LIMITED = (
    RATE_LIMITED + "; or guest limit reached: as many guest sessions are live as allowed"
)
RETRY_AFTER = {
    "Retry-After": {
        "description": "Whole seconds until the request may succeed",
        "schema": {"type": "integer", "minimum": 1},
    }
}

# A WebSocket route takes nothing but a handshake: anything else is 400 before it looks at
# anything (aiohttp reads ``Upgrade`` and ``Connection`` without regard to case).
HANDSHAKE_HEADERS = [
    {
        "name": name,
        "in": "header",
        "required": True,
        "schema": {"type": "string", **schema},
        "description": "The WebSocket handshake (RFC 6455)",
    }
    for name, schema in (
        ("Upgrade", {"pattern": "^[Ww][Ee][Bb][Ss][Oo][Cc][Kk][Ee][Tt]$"}),
        ("Connection", {"pattern": "[Uu][Pp][Gg][Rr][Aa][Dd][Ee]"}),
        ("Sec-WebSocket-Key", {"pattern": "^[A-Za-z0-9+/]{22}==$"}),
        ("Sec-WebSocket-Version", {"enum": ["13"]}),
    )
]

PATH_PARAMETERS = {
    "id": "The container, by (in this order) its database ID (UUID), its full Docker ID, its "
    "exact name (the caller's own first), or a unique Docker ID prefix of 12+ characters; "
    "agent:<uuid> names an agent. The database ID and the name survive rebuilds; the Docker ID "
    "does not.",
    "token_id": "The API token's ID (from GET /api/tokens)",
    "name": "The kept volume's name (from GET /api/volumes)",
}


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The document for ``backend.routes.ROUTES`` (built once: it never changes at run time)."""
    return build_document(ROUTES)


def build_document(routes: Iterable[web.RouteDef]) -> dict[str, Any]:
    declared = [(route, _declaration(route)) for route in routes]
    shapes: set[type[Any]] = {Error, *(shape for _, spec in declared for shape in _shapes(spec))}
    refs, schemas = _components(shapes)
    paths: dict[str, dict[str, Any]] = {}
    for route, spec in declared:
        operation = _operation(route, spec, refs)
        paths.setdefault(route.path, {})[route.method.lower()] = operation
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
            "schemas": schemas,
        },
    }


def _declaration(route: web.RouteDef) -> Endpoint:
    spec = endpoint_of(route.handler)
    if spec is None:
        raise RuntimeError(f"{route.method} {route.path}: its handler has no @endpoint")
    return spec


def _shapes(spec: Endpoint) -> Iterable[type[Any]]:
    if spec.body is not None:
        yield spec.body
    for answer in spec.answers.values():
        if answer.shape is not None:
            yield answer.shape
        if answer.messages is not None:
            yield answer.messages


def _components(shapes: set[type[Any]]) -> tuple[dict[type[Any], dict[str, Any]], dict[str, Any]]:
    """Every shape's ``$ref`` and the schemas they point to (nested shapes included), named by
    their declarations."""
    mode: JsonSchemaMode = "validation"
    named = {f"{shape.__module__}.{shape.__qualname__}": shape for shape in shapes}
    inputs = [(name, mode, adapter(shape)) for name, shape in sorted(named.items())]
    keys, definitions = TypeAdapter.json_schemas(inputs, ref_template=REF)
    refs = {shape: keys[(name, mode)] for name, shape in named.items()}
    return refs, dict(sorted(definitions.get("$defs", {}).items()))


def _operation(
    route: web.RouteDef, spec: Endpoint, refs: dict[type[Any], dict[str, Any]]
) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": spec.summary, "tags": [spec.tag]}
    parameters = _path_parameters(route.path) + _query_parameters(spec.query)
    if 101 in spec.answers:
        parameters += HANDSHAKE_HEADERS
    if parameters:
        operation["parameters"] = parameters
    if spec.body is not None:
        operation["requestBody"] = {
            # A body whose every field may be omitted may itself be omitted (read as {}).
            "required": bool(adapter(spec.body).json_schema().get("required")),
            "content": {"application/json": {"schema": refs[spec.body]}},
        }
    if spec.upload is not None:
        operation["requestBody"] = _upload_body(spec.upload)
    responses: dict[str, Any] = {}
    for status, answer in sorted(spec.answers.items()):
        response: dict[str, Any] = {"description": answer.description}
        if answer.shape is not None:
            response["content"] = {answer.media_type: {"schema": refs[answer.shape]}}
        elif answer.media_type != "application/json":
            response["content"] = {answer.media_type: {"schema": {"type": "string"}}}
        if answer.messages is not None:
            response["x-websocket-messages"] = refs[answer.messages]
        responses[str(status)] = response
    for status in spec.errors:
        text = spec.notes.get(status, ERRORS[status])
        responses[str(status)] = {
            "description": text,
            "content": {"application/json": {"schema": refs[Error]}},
        }
    public = access_of(route.handler).public
    limit = ip_limit_of(route.handler)
    if limit is not None or (route.method in WRITE_METHODS and not public):
        responses["429"] = {
            "description": GUEST_LIMITED if limit == "guest" else RATE_LIMITED,
            "headers": RETRY_AFTER,
            "content": {"application/json": {"schema": refs[Error]}},
        }
    operation["responses"] = responses
    if public:
        operation["security"] = []
    return operation


def _path_parameters(path: str) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string"},
            "description": PATH_PARAMETERS[name],
        }
        for name in re.findall(r"\{(\w+)\}", path)
    ]


def _query_parameters(shape: type[Any] | None) -> list[dict[str, Any]]:
    if shape is None:
        return []
    schema = adapter(shape).json_schema(ref_template=REF)
    required = set(schema.get("required", ()))
    parameters = []
    for name, prop in schema.get("properties", {}).items():
        prop = {k: v for k, v in prop.items() if k not in ("title", "description")}
        parameter = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if "description" in schema["properties"][name]:
            parameter["description"] = schema["properties"][name]["description"]
        parameters.append(parameter)
    return parameters


def _upload_body(part: str) -> dict[str, Any]:
    """A multipart/form-data body whose part ``part`` is one file, streamed (any size the
    sandbox's disk can take)."""
    return {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [part],
                    "properties": {part: {"type": "string", "format": "binary"}},
                },
                "encoding": {part: {"contentType": "application/octet-stream"}},
            }
        },
    }
