"""Sign-in, the caller's own profile, and API tokens."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from backend.auth.policy import access
from backend.db.models import iso, utcnow
from backend.errors import InvalidParameters, NotAuthorized
from backend.middleware import principal_of
from backend.ratelimit import limited_by_ip
from backend.state import CONTAINERS, SETTINGS, SIGNER, USERS
from backend.validation import GUEST_LOGIN, LOGIN, TOKEN_CREATE, USERNAME_RE, read_json


@access(public=True)
@limited_by_ip("guest")
async def guest_login(request: web.Request) -> web.Response:
    fields = GUEST_LOGIN.parse(await read_json(request))
    username = fields["username"]
    if not USERNAME_RE.match(username):
        raise InvalidParameters(
            "username must be 2-30 characters of letters, digits, '_' and '-'", field="username"
        )
    settings = request.app[SETTINGS]
    session_end = utcnow().replace(microsecond=0) + timedelta(hours=settings.guest_session_hours)
    user = await request.app[USERS].add_guest(username, session_end, settings.max_guest_sessions)
    # The token outlives the session by a grace period, so an expired guest can still see, stop
    # and delete what they made; starting and creating are refused once the session is over.
    lifetime = timedelta(hours=settings.guest_session_hours + settings.guest_grace_hours)
    issued = request.app[SIGNER].issue(user, lifetime)
    expires_in = settings.guest_session_hours * 3600
    return web.json_response(
        {
            "token": issued.token,
            "user": user.as_json(),
            "guest": True,
            "expires_in": expires_in,
            "expires_at": iso(session_end),
        }
    )


@access(public=True)
@limited_by_ip("login")
async def login(request: web.Request) -> web.Response:
    fields = LOGIN.parse(await read_json(request))
    user = await request.app[USERS].check_password(fields["username"], fields["password"])
    settings = request.app[SETTINGS]
    issued = request.app[SIGNER].issue(user, timedelta(hours=settings.jwt_lifetime_hours))
    return web.json_response(
        {
            "token": issued.token,
            "user": user.as_json(),
            "expires_in": settings.jwt_lifetime_hours * 3600,
            "expires_at": iso(issued.expires_at),
        }
    )


@access(scope="read")
async def logout(request: web.Request) -> web.Response:
    principal = principal_of(request)
    if principal.kind != "jwt" or principal.expires_at is None:
        raise InvalidParameters("Only a session token can sign out; revoke API tokens instead.")
    await request.app[USERS].end_session(principal.user, principal.token_id, principal.expires_at)
    return web.json_response({"message": "signed out"})


async def me(request: web.Request) -> web.Response:
    principal = principal_of(request)
    tier = request.app[SETTINGS].tier(principal.user.tier)
    usage = await request.app[CONTAINERS].repository.usage_of(principal.user_id)
    return web.json_response(
        {
            "user": principal.user.as_json(),
            "tier": tier.name,
            "limits": tier.as_json(),
            "usage": usage.as_json(),
            "scopes": sorted(principal.scopes),
            "session_expires_at": iso(principal.user.session_expires_at),
        }
    )


async def create_token(request: web.Request) -> web.Response:
    principal = principal_of(request)
    if principal.user.is_guest:
        raise NotAuthorized("Guests cannot create API tokens; sign in as a registered user.")
    fields = TOKEN_CREATE.parse(await read_json(request))
    name = fields["name"].strip()
    if not name:
        raise InvalidParameters("name must not be empty", field="name")
    scopes = sorted(set(fields.get("scopes", ["read", "write"])))
    if not scopes:
        raise InvalidParameters("scopes must name read, write or both", field="scopes")
    if "agent" in scopes:
        if scopes != ["agent"]:
            raise InvalidParameters("an agent token has the agent scope alone", field="scopes")
    elif not set(scopes) <= principal.scopes:
        raise NotAuthorized("A token cannot grant scopes its creator does not have.")
    days = fields.get("expires_in_days")
    if days is not None and not 1 <= days <= 3650:
        raise InvalidParameters(
            "expires_in_days must be between 1 and 3650", field="expires_in_days"
        )
    token, row = await request.app[USERS].add_token(principal.user_id, name, scopes, days)
    body = {"token": token, **row.as_json()}
    body.pop("last_used_at", None)
    return web.json_response(body, status=201)


async def list_tokens(request: web.Request) -> web.Response:
    principal = principal_of(request)
    tokens = [row.as_json() for row in await request.app[USERS].tokens(principal.user_id)]
    return web.json_response({"tokens": tokens, "count": len(tokens)})


async def revoke_token(request: web.Request) -> web.Response:
    principal = principal_of(request)
    token_id = request.match_info["token_id"]
    await request.app[USERS].revoke_token(principal.user_id, token_id)
    return web.json_response({"message": "token revoked", "id": token_id})
