"""Turning a bearer token into the caller (a ``Principal``), or refusing it.

Every refusal, whatever its cause (malformed, expired, wrongly signed, ``alg: none``, revoked, a
deleted user), is the same 401 ``unauthorized``: the caller learns nothing about which it was.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.auth.tokens import API_TOKEN_RE, JwtSigner, hash_api_token
from backend.db.models import ApiToken, RevokedJwt, User, utcnow
from backend.errors import RetryLater, Unauthorized
from corral.shapes import FULL_SCOPES, Scope

LAST_USED_GRANULARITY = timedelta(minutes=1)
KNOWN_TOKENS = 10_000  # tokens remembered before the memory starts over


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request."""

    user: User
    scopes: frozenset[Scope]
    kind: str  # "jwt", "api" or "agent"
    token_id: str  # the JWT's jti or the API token's row ID
    expires_at: datetime | None

    @property
    def user_id(self) -> str:
        return self.user.id

    @property
    def is_admin(self) -> bool:
        return self.user.is_admin

    def guest_session_over(self) -> bool:
        end = self.user.session_expires_at
        return self.user.is_guest and end is not None and end <= utcnow()


class Authenticator:
    """Checks tokens against the database, and remembers the answer for a few seconds.

    Why remember: the check is a database round trip on every request, the largest part of a
    cheap request's cost. What keeps the memory correct: a revocation, a sign-out or a deleted
    agent made through this process forgets the token at once (``forget``); a change made
    elsewhere (the ``corral admin`` commands, another process) is seen within ``ttl_s``, after
    which the token is checked against the database again (and an API token's last use is
    recorded then, well within its one-minute granularity).
    """

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], signer: JwtSigner, ttl_s: float = 5.0
    ) -> None:
        self._sessions = sessions
        self._signer = signer
        self._ttl_s = ttl_s
        self._known: dict[str, tuple[Principal, float]] = {}

    async def authenticate(self, token: str) -> Principal:
        token = token.strip()
        known = self._known.get(token)
        now = time.monotonic()
        if known is not None and known[1] > now:
            return known[0]
        if API_TOKEN_RE.fullmatch(token):
            principal = await self._api_token(token)
        else:
            principal = await self._jwt(token)
        until = now + self._ttl_s
        if principal.expires_at is not None:
            until = min(until, now + (principal.expires_at - utcnow()).total_seconds())
        if self._ttl_s > 0:
            if len(self._known) >= KNOWN_TOKENS:
                self._known.clear()
            self._known[token] = (principal, until)
        return principal

    def forget_token(self, token_id: str) -> None:
        """A token (by its JWT ``jti`` or its API token row ID) was revoked: check it against
        the database next time."""
        for token, (principal, _) in list(self._known.items()):
            if principal.token_id == token_id:
                del self._known[token]

    def forget_all(self) -> None:
        """Check every token against the database again (revocations may have been missed)."""
        self._known.clear()

    async def _jwt(self, token: str) -> Principal:
        claims = self._signer.decode(token)
        if claims is None:
            raise Unauthorized()
        jti = str(claims.get("jti") or "")
        revoked = select(RevokedJwt.jti).where(RevokedJwt.jti == jti).exists()
        async with self._sessions() as session:
            found = (
                await session.execute(select(User, revoked).where(User.id == claims["sub"]))
            ).one_or_none()
        if found is None or found[1]:
            raise Unauthorized()
        user = found[0]
        expires = datetime.fromtimestamp(int(claims["exp"]), tz=utcnow().tzinfo)
        return Principal(
            user=user, scopes=FULL_SCOPES, kind="jwt", token_id=jti, expires_at=expires
        )

    async def _stamp_use(self, token_id: str, now: datetime) -> None:
        """Record when an API token was last used. Bookkeeping only: while the database cannot
        take a write (locked by another process, disk full), the request goes on without it."""
        try:
            async with self._sessions() as session:
                await session.execute(
                    update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now)
                )
                await session.commit()
        except RetryLater:
            pass

    async def _api_token(self, token: str) -> Principal:
        digest = hash_api_token(token)
        now = utcnow()
        async with self._sessions() as session:
            row = (
                await session.execute(select(ApiToken).where(ApiToken.token_hash == digest))
            ).scalar_one_or_none()
            if row is None or row.revoked_at is not None:
                raise Unauthorized()
            if row.expires_at is not None and row.expires_at <= now:
                raise Unauthorized()
            user = await session.get(User, row.user_id)
            if user is None:
                raise Unauthorized()
        if row.last_used_at is None or now - row.last_used_at > LAST_USED_GRANULARITY:
            await self._stamp_use(row.id, now)
        scopes = frozenset(Scope(scope) for scope in row.scopes)
        kind = "agent" if Scope.AGENT in scopes else "api"
        return Principal(
            user=user, scopes=scopes, kind=kind, token_id=row.id, expires_at=row.expires_at
        )
