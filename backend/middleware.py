"""The middlewares: one writes every error body, one authenticates every request, one applies
the rate limits (``backend.ratelimit``) once the caller is known.

Handlers never build error responses: they raise a ``CorralError`` and ``error_middleware`` writes
``{"error", "message", ...}`` with ``Content-Type: application/json``. aiohttp's own HTTP errors
(no such route, wrong method, body too large) are mapped into the same shape.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from backend.auth.policy import access_of
from backend.auth.principal import Principal
from backend.endpoint import is_websocket
from backend.errors import (
    CorralError,
    InvalidParameters,
    MethodNotAllowed,
    NotAuthorized,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
)
from backend.json_answer import json_answer
from backend.ratelimit import WRITE_METHODS, ip_limit_of
from backend.state import AUTHENTICATOR, RATE_LIMITER
from corral.shapes import Scope

log = logging.getLogger(__name__)

PRINCIPAL = web.RequestKey("principal", Principal)
WS_SUBPROTOCOL = "corral.v1"
WS_TOKEN_PREFIX = "corral.token."


def error_response(error: CorralError) -> web.Response:
    return json_answer(error.body(), status=error.status, headers=error.headers())


def _from_http_exception(exc: web.HTTPException) -> CorralError:
    if isinstance(exc, web.HTTPNotFound):
        return NotFound()
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return MethodNotAllowed(exc.method, exc.allowed_methods)
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return PayloadTooLarge("The request body is larger than the server accepts.")
    if exc.status == 400:
        return InvalidParameters(exc.text or "The request is not valid.")
    error = CorralError(exc.reason)
    error.status = exc.status
    error.error = exc.reason.lower()
    return error


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except CorralError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(_from_http_exception(exc))
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(CorralError())


def is_handshake(request: web.Request) -> bool:
    """Whether the request is a complete WebSocket handshake (aiohttp's own test: GET,
    ``Upgrade: websocket``, ``Connection: Upgrade``, a version and a valid key), not merely a
    request that carries an ``Upgrade`` header."""
    # With the subprotocol the routes speak, so that aiohttp does not warn that a client's
    # corral.v1 matched nothing.
    return web.WebSocketResponse(protocols=(WS_SUBPROTOCOL,)).can_prepare(request).ok


def bearer_token(request: web.Request, handshake: bool) -> str | None:
    """The token from the Authorization header, or on a WebSocket ``handshake`` from ``?token=``
    or the ``corral.token.<token>`` subprotocol (where a browser cannot set headers; anywhere
    else a token in the URL would only end up in logs)."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else ""
    if handshake:
        if request.query.get("token"):
            return request.query["token"]
        for proto in request.headers.get("Sec-WebSocket-Protocol", "").split(","):
            proto = proto.strip()
            if proto.startswith(WS_TOKEN_PREFIX):
                return proto[len(WS_TOKEN_PREFIX) :]
    return None


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    match_info = request.match_info
    if match_info.http_exception is not None:
        raise match_info.http_exception
    policy = access_of(match_info.handler)
    if policy.public:
        return await handler(request)
    websocket = is_websocket(match_info.handler)
    handshake = websocket and is_handshake(request)
    token = bearer_token(request, handshake)
    if not token:
        raise Unauthorized()
    principal = await request.app[AUTHENTICATOR].authenticate(token)
    _authorize(principal, policy.admin, policy.scope, request.method)
    if websocket and not handshake:
        # Refused here, before the route looks anything up (or opens a shell to upgrade into).
        raise InvalidParameters(
            "This route is a WebSocket: open it with a WebSocket handshake (GET with Upgrade: "
            "websocket, Connection: Upgrade, Sec-WebSocket-Key and Sec-WebSocket-Version: 13)."
        )
    request[PRINCIPAL] = principal
    return await handler(request)


def _authorize(principal: Principal, admin: bool, scope: Scope | None, method: str) -> None:
    if admin and not principal.is_admin:
        raise NotAuthorized("This route is for administrators.")
    needed = scope or (Scope.READ if method in ("GET", "HEAD", "OPTIONS") else Scope.WRITE)
    if needed not in principal.scopes:
        raise NotAuthorized(f"Your token lacks the {needed!r} scope needed here.")


@web.middleware
async def rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Sign-in per client IP, writes per signed-in user; 429 before the handler runs. Runs
    after ``auth_middleware``, so a write's caller is known (a refused token is 401 first)."""
    limiter = request.app[RATE_LIMITER]
    name = ip_limit_of(request.match_info.handler)
    if name is not None:
        await limiter.check_ip(name, request)
    elif request.method in WRITE_METHODS:
        principal: Principal | None = request.get(PRINCIPAL)
        if principal is not None:
            await limiter.check_write(principal.user_id)
    return await handler(request)


def principal_of(request: web.Request) -> Principal:
    value: Principal | None = request.get(PRINCIPAL)
    if value is None:
        raise Unauthorized()
    return value
