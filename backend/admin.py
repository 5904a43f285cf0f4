"""Host-side administration used by the command line: users and tokens, straight on the database.

These run on the backend's own host (``corral user add``, ``corral token issue``), so they open the
database directly rather than needing a running server and an admin token to bootstrap one.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.auth.passwords import hash_password
from backend.auth.tokens import JwtSigner, load_or_create_secret, new_api_token_row
from backend.db.engine import make_engine, make_sessionmaker
from backend.db.models import ApiToken, User
from backend.db.schema import upgrade_schema
from backend.settings import Settings

LOCAL_ADMIN = "local"


class AdminError(Exception):
    """A refusal to show the operator as it is (no traceback)."""


class Admin:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._engine = make_engine(settings.resolved_database_url)
        self.sessions: async_sessionmaker[AsyncSession] = make_sessionmaker(self._engine)

    async def __aenter__(self) -> Admin:
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        await upgrade_schema(self._engine)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._engine.dispose()

    async def add_user(self, username: str, password: str | None, tier: str, admin: bool) -> User:
        if tier not in self.settings.tiers:
            raise AdminError(
                f"unknown tier {tier!r}; choose one of {', '.join(self.settings.tiers)}"
            )
        async with self.sessions() as session:
            existing = await self._find(session, username)
            if existing is not None:
                raise AdminError(f"user {username!r} already exists")
            user = User(
                username=username,
                password_hash=hash_password(password) if password else None,
                tier=tier,
                is_admin=admin,
            )
            session.add(user)
            await session.commit()
            return user

    async def list_users(self) -> list[User]:
        async with self.sessions() as session:
            rows = await session.execute(
                select(User).where(User.is_guest.is_(False)).order_by(User.created_at)
            )
            return list(rows.scalars().all())

    async def issue_token(
        self, username: str, scopes: list[str], name: str, days: int | None
    ) -> tuple[str, ApiToken]:
        async with self.sessions() as session:
            user = await self._find(session, username)
            if user is None:
                raise AdminError(f"no user {username!r}; add one with 'corral user add'")
            token, row = new_api_token_row(user.id, name, scopes, days)
            session.add(row)
            await session.commit()
            return token, row

    async def local_admin_jwt(self, lifetime: timedelta = timedelta(days=1)) -> str:
        """A session for the embedded console: the local admin user, made on first use."""
        async with self.sessions() as session:
            user = await self._find(session, LOCAL_ADMIN)
            if user is None:
                user = User(username=LOCAL_ADMIN, tier="enterprise", is_admin=True)
                session.add(user)
                await session.commit()
        signer = JwtSigner(load_or_create_secret(self.settings.secret_path))
        return signer.issue(user, lifetime).token

    @staticmethod
    async def _find(session: AsyncSession, username: str) -> User | None:
        result = await session.execute(
            select(User).where(User.username == username, User.is_guest.is_(False))
        )
        return result.scalar_one_or_none()
