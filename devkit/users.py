"""Users for tests, benchmarks and pictures: stored straight in a backend's database and signed
in with its own signer, so nothing depends on the sign-in routes under test."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.auth.passwords import hash_password
from backend.auth.tokens import JwtSigner
from backend.db.models import User


async def add_user(
    sessions: async_sessionmaker[AsyncSession],
    signer: JwtSigner,
    username: str | None = None,
    *,
    tier: str = "free",
    admin: bool = False,
    password: str | None = None,
    lifetime: timedelta = timedelta(hours=1),
) -> tuple[User, str]:
    """A registered user (a random name unless given) and a JWT for it."""
    user = User(
        username=username or f"u{uuid.uuid4().hex[:8]}",
        tier=tier,
        is_admin=admin,
        password_hash=hash_password(password) if password else None,
    )
    async with sessions() as session:
        session.add(user)
        await session.commit()
    return user, signer.issue(user, lifetime).token
