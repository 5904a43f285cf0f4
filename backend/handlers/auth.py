"""Sign-in, the caller's own profile, and API tokens."""

from __future__ import annotations

from datetime import timedelta
from typing import cast

from aiohttp import web

from backend.auth.policy import access
from backend.db.models import iso, utcnow
from backend.endpoint import Answer, endpoint
from backend.errors import InvalidParameters, NotAuthorized
from backend.json_answer import json_answer
from backend.middleware import principal_of
from backend.ratelimit import limited_by_ip
from backend.state import CONTAINERS, SETTINGS, SIGNER, USERS
from corral.shapes import (
    FULL_SCOPES,
    GuestLogin,
    Login,
    Me,
    Message,
    NewToken,
    Scope,
    Session,
    TierLimits,
    TokenCreate,
    TokenList,
    TokenRevoked,
    Usage,
)


@endpoint(
    "Start a 50-hour guest session",
    tag="auth",
    answers={200: Answer("Signed in", Session)},
    errors=(400, 413, 503, 507),
    notes={409: "username taken: the name of a registered user"},
)
@access(public=True)
@limited_by_ip("guest")
async def guest_login(request: web.Request, body: GuestLogin) -> web.Response:
    username = body["username"]
    settings = request.app[SETTINGS]
    session_end = utcnow().replace(microsecond=0) + timedelta(hours=settings.guest_session_hours)
    user = await request.app[USERS].add_guest(username, session_end, settings.max_guest_sessions)
    # The token outlives the session by a grace period, so an expired guest can still see, stop
    # and delete what they made; starting and creating are refused once the session is over.
    lifetime = timedelta(hours=settings.guest_session_hours + settings.guest_grace_hours)
    issued = request.app[SIGNER].issue(user, lifetime)
    answer: Session = {
        "token": issued.token,
        "user": user.as_json(),
        "guest": True,
        "expires_in": settings.guest_session_hours * 3600,
        "expires_at": iso(session_end),
    }
    return json_answer(answer)


@endpoint(
    "Sign in with a password",
    tag="auth",
    answers={200: Answer("Signed in", Session)},
    errors=(400, 401, 413),
)
@access(public=True)
@limited_by_ip("login")
async def login(request: web.Request, body: Login) -> web.Response:
    user = await request.app[USERS].check_password(body["username"], body["password"])
    settings = request.app[SETTINGS]
    issued = request.app[SIGNER].issue(user, timedelta(hours=settings.jwt_lifetime_hours))
    answer: Session = {
        "token": issued.token,
        "user": user.as_json(),
        "expires_in": settings.jwt_lifetime_hours * 3600,
        "expires_at": iso(issued.expires_at),
    }
    return json_answer(answer)


@endpoint(
    "Revoke the session token used for this call",
    tag="auth",
    answers={200: Answer("Signed out", Message)},
    errors=(401, 503, 507),
    notes={400: "invalid parameters: an API token cannot sign out (revoke it instead)"},
)
@access(scope=Scope.READ)
async def logout(request: web.Request) -> web.Response:
    principal = principal_of(request)
    if principal.kind != "jwt" or principal.expires_at is None:
        raise InvalidParameters("Only a session token can sign out; revoke API tokens instead.")
    await request.app[USERS].end_session(principal.user, principal.token_id, principal.expires_at)
    answer: Message = {"message": "signed out"}
    return json_answer(answer)


@endpoint(
    "The caller, their tier's limits and usage",
    tag="auth",
    answers={200: Answer("The caller", Me)},
    errors=(401, 403),
)
async def me(request: web.Request) -> web.Response:
    principal = principal_of(request)
    tier = request.app[SETTINGS].tier(principal.user.tier)
    usage = await request.app[CONTAINERS].repository.usage_of(principal.user_id)
    answer: Me = {
        "user": principal.user.as_json(),
        "tier": tier.name,
        "limits": cast(TierLimits, tier.as_json()),
        "usage": cast(Usage, usage.as_json()),
        "scopes": sorted(Scope(scope) for scope in principal.scopes),
        "session_expires_at": iso(principal.user.session_expires_at),
    }
    return json_answer(answer)


@endpoint(
    "Create an API token (shown once)",
    tag="auth",
    answers={201: Answer("Created", NewToken)},
    errors=(400, 401, 403, 413, 503, 507),
)
async def create_token(request: web.Request, body: TokenCreate) -> web.Response:
    principal = principal_of(request)
    if principal.user.is_guest:
        raise NotAuthorized("Guests cannot create API tokens; sign in as a registered user.")
    scopes = sorted(set(body.get("scopes", FULL_SCOPES)))
    if Scope.AGENT in scopes:
        if scopes != [Scope.AGENT]:
            raise InvalidParameters("an agent token has the agent scope alone", field="scopes")
    elif not set(scopes) <= principal.scopes:
        raise NotAuthorized("A token cannot grant scopes its creator does not have.")
    token, row = await request.app[USERS].add_token(
        principal.user_id, body["name"], scopes, body.get("expires_in_days")
    )
    info = row.as_json()
    answer: NewToken = {
        "token": token,
        "id": info["id"],
        "name": info["name"],
        "token_prefix": info["token_prefix"],
        "scopes": info["scopes"],
        "expires_at": info["expires_at"],
        "created_at": info["created_at"],
    }
    return json_answer(answer, status=201)


@endpoint(
    "The caller's active API tokens",
    tag="auth",
    answers={200: Answer("Tokens", TokenList)},
    errors=(401, 403),
)
async def list_tokens(request: web.Request) -> web.Response:
    principal = principal_of(request)
    tokens = [row.as_json() for row in await request.app[USERS].tokens(principal.user_id)]
    answer: TokenList = {"tokens": tokens, "count": len(tokens)}
    return json_answer(answer)


@endpoint(
    "Revoke an API token",
    tag="auth",
    answers={200: Answer("Revoked", TokenRevoked)},
    errors=(401, 403, 503, 507),
    notes={404: "not found: no such token among yours"},
)
async def revoke_token(request: web.Request) -> web.Response:
    principal = principal_of(request)
    token_id = request.match_info["token_id"]
    await request.app[USERS].revoke_token(principal.user_id, token_id)
    answer: TokenRevoked = {"message": "token revoked", "id": token_id}
    return json_answer(answer)
