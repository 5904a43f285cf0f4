"""Host-side administration used by the command line: users and tokens, straight on the database.

These run on the backend's own host (``corral user add``, ``corral token issue``), so they open the
database directly rather than needing a running server and an admin token to bootstrap one.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.auth.tokens import JwtSigner
from backend.auth.users import UserService
from backend.cluster.shared import signing_key
from backend.db.engine import make_engine, make_sessionmaker
from backend.db.models import ApiToken, User
from backend.db.schema import upgrade_schema
from backend.errors import UsernameTaken
from backend.settings import Settings

LOCAL_ADMIN = "local"


class AdminError(Exception):
    """A refusal to show the operator as it is (no traceback)."""


class Admin:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._engine = make_engine(settings.resolved_database_url)
        self.sessions: async_sessionmaker[AsyncSession] = make_sessionmaker(self._engine)
        self.users = UserService(self.sessions)

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
        try:
            return await self.users.add_user(username, password, tier, admin=admin)
        except UsernameTaken as exc:
            raise AdminError(f"user {username!r} already exists") from exc

    async def list_users(self) -> list[User]:
        return await self.users.registered_users()

    async def issue_token(
        self, username: str, scopes: list[str], name: str, days: int | None
    ) -> tuple[str, ApiToken]:
        user = await self.users.registered(username)
        if user is None:
            raise AdminError(f"no user {username!r}; add one with 'corral user add'")
        return await self.users.add_token(user.id, name, scopes, days)

    async def local_admin_jwt(self, lifetime: timedelta = timedelta(days=1)) -> str:
        """A session for the embedded console: the local admin user, made on first use."""
        user = await self.users.registered_or_added(LOCAL_ADMIN, "enterprise", admin=True)
        signer = JwtSigner(await signing_key(self.settings, self.sessions))
        return signer.issue(user, lifetime).token
