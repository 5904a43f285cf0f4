"""Users and their API tokens, on the database: what sign-in, the token routes and the host's
administration commands (``backend.admin``) read and write. Handlers and commands call this;
none of them runs SQL itself.

Registered usernames are unique; guests may share a name (they are told apart by ID), but never
a registered user's. Passwords are checked at the same cost whether or not the user exists, so
a failed sign-in says nothing about which part was wrong.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.auth.live import LiveStreams
from backend.auth.passwords import DUMMY_HASH, hash_password, verify_password
from backend.auth.tokens import new_api_token_row
from backend.db.models import ApiToken, RevokedJwt, User, utcnow
from backend.errors import GuestLimitReached, NotFound, Unauthorized, UsernameTaken
from corral.shapes import Scope


def _nobody_remembers(_: str) -> None:
    """Where no token checks are remembered (the admin commands' own process)."""


class UserService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        revoked: Callable[[str], None] = _nobody_remembers,
        live: LiveStreams | None = None,
    ) -> None:
        self._sessions = sessions
        # Told a token's ID when it is revoked or its session ends, after the commit: the
        # backend's remembered token checks (backend.auth.principal.Authenticator) drop it.
        self._revoked = revoked
        # The streams open with each token (the backend's; None in the admin commands, which
        # run beside it and revoke nothing), ended as soon as a revocation commits.
        self._live = live
        self._guest_lock = asyncio.Lock()

    # -- users --------------------------------------------------------------------------------

    async def registered(self, username: str) -> User | None:
        """The registered (not guest) user of that name."""
        async with self._sessions() as session:
            return await _registered(session, username)

    async def registered_users(self) -> list[User]:
        async with self._sessions() as session:
            rows = await session.execute(
                select(User).where(User.is_guest.is_(False)).order_by(User.created_at, User.id)
            )
            return list(rows.scalars().all())

    async def add_user(
        self, username: str, password: str | None, tier: str, *, admin: bool = False
    ) -> User:
        """A new registered user (without a password: a token-only user); UsernameTaken when
        the name is a registered user's already."""
        async with self._sessions() as session:
            if await _registered(session, username) is not None:
                raise UsernameTaken()
            user = User(
                username=username,
                password_hash=hash_password(password) if password else None,
                tier=tier,
                is_admin=admin,
            )
            session.add(user)
            await session.commit()
            return user

    async def registered_or_added(self, username: str, tier: str, *, admin: bool) -> User:
        """The registered user of that name, made (without a password) on first use."""
        async with self._sessions() as session:
            user = await _registered(session, username)
            if user is None:
                user = User(username=username, tier=tier, is_admin=admin)
                session.add(user)
                await session.commit()
            return user

    async def add_guest(self, username: str, session_end: datetime, max_live: int) -> User:
        """A guest whose session ends at ``session_end``; UsernameTaken when a registered user
        has the name, GuestLimitReached when ``max_live`` guest sessions are live already
        (counted and added under one lock, so concurrent sign-ins cannot pass it together)."""
        async with self._guest_lock, self._sessions() as session:
            taken = await session.scalar(
                select(User.id).where(User.username == username, User.is_guest.is_(False))
            )
            if taken is not None:
                raise UsernameTaken()
            await _check_guest_room(session, max_live)
            user = User(
                username=username, tier="guest", is_guest=True, session_expires_at=session_end
            )
            session.add(user)
            await session.commit()
            return user

    async def check_password(self, username: str, password: str) -> User:
        """The registered user that password signs in; Unauthorized otherwise (an unknown
        user, a token-only user, a wrong password: the same answer, at the same cost)."""
        user = await self.registered(username)
        stored = user.password_hash if user is not None and user.password_hash else DUMMY_HASH
        ok = await asyncio.to_thread(verify_password, password, stored)
        if user is None or not user.password_hash or not ok:
            raise Unauthorized("Wrong username or password.")
        return user

    async def end_session(self, user: User, jti: str, expires_at: datetime) -> None:
        """Refuse a session token from now on (kept until it would have expired anyway). A
        guest signing out ends their guest session too (a guest cannot sign in again as the
        same guest), so it no longer counts as live."""
        async with self._sessions() as session:
            if await session.get(RevokedJwt, jti) is None:
                session.add(RevokedJwt(jti=jti, expires_at=expires_at))
            if user.is_guest:
                now = utcnow()
                await session.execute(
                    update(User)
                    .where(User.id == user.id, User.session_expires_at > now)
                    .values(session_expires_at=now)
                )
            await session.commit()
        self._revoked(jti)
        if self._live is not None:
            self._live.end("jwt", jti, "This session was signed out.")

    async def is_revoked(self, kind: str, token_id: str) -> bool:
        """Whether the token (a session's ``jti``, or an API token's ID) has been revoked."""
        async with self._sessions() as session:
            if kind == "jwt":
                return await session.get(RevokedJwt, token_id) is not None
            revoked_at = await session.scalar(
                select(ApiToken.revoked_at).where(ApiToken.id == token_id)
            )
            return revoked_at is not None

    # -- API tokens ---------------------------------------------------------------------------

    async def add_token(
        self, user_id: str, name: str, scopes: Iterable[str], days: int | None
    ) -> tuple[str, ApiToken]:
        """A new API token of the user (shown once) and its stored row (only its hash)."""
        token, row = new_api_token_row(user_id, name, scopes, days)
        async with self._sessions() as session:
            session.add(row)
            await session.commit()
        return token, row

    async def tokens(self, user_id: str) -> list[ApiToken]:
        """The user's API tokens not revoked, oldest first; agent tokens are listed as their
        agents instead."""
        async with self._sessions() as session:
            rows = await session.execute(
                select(ApiToken)
                .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
                .order_by(ApiToken.created_at, ApiToken.id)
            )
            return [row for row in rows.scalars().all() if Scope.AGENT not in row.scopes]

    async def revoke_token(self, user_id: str, token_id: str) -> None:
        """Revoke one of the user's tokens; NotFound when it is not theirs or already revoked."""
        async with self._sessions() as session:
            result = await session.execute(
                update(ApiToken)
                .where(
                    ApiToken.id == token_id,
                    ApiToken.user_id == user_id,
                    ApiToken.revoked_at.is_(None),
                )
                .values(revoked_at=utcnow())
            )
            await session.commit()
        if not getattr(result, "rowcount", 0):
            raise NotFound("No such token among yours.")
        self._revoked(token_id)
        if self._live is not None:
            self._live.end("api", token_id, "This API token was revoked.")


async def _check_guest_room(session: AsyncSession, max_live: int) -> None:
    """GuestLimitReached when ``max_live`` guest sessions are live; ``Retry-After`` is when the
    first of them ends."""
    now = utcnow()
    live, first_end = (
        await session.execute(
            select(func.count(), func.min(User.session_expires_at)).where(
                User.is_guest.is_(True), User.session_expires_at > now
            )
        )
    ).one()
    if live < max_live:
        return
    wait = (first_end - now).total_seconds() if first_end is not None else 60.0
    raise GuestLimitReached(
        f"Corral is at its limit of {max_live} guest sessions at once; try again later, or sign "
        "in with an account.",
        retry_after=max(1, math.ceil(wait)),
        limit=max_live,
    )


async def _registered(session: AsyncSession, username: str) -> User | None:
    result = await session.execute(
        select(User).where(User.username == username, User.is_guest.is_(False))
    )
    return result.scalar_one_or_none()
