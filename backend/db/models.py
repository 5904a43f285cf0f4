"""SQLAlchemy 2 models: users, API tokens, containers and the event log.

The database is the source of truth for what a user owns and how it is configured; Docker is the
source of truth for whether it runs. The container row is never deleted because Docker lost the
container (it becomes ``missing``), so a user's configuration and volume survive a host rebuild.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, cast, overload

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    type_coerce,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from corral import shapes
from corral.shapes import AGENT_SESSION, RoleState, Status

# The engine of rows older than several engines (backend.settings.LOCAL_ENGINE: the models do
# not import the settings).
LOCAL_ENGINE = "local"


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class Timestamp(TypeDecorator[datetime]):
    """Aware UTC datetimes, stored as fixed-width RFC 3339 text (``2026-01-02T03:04:05.678Z``).

    The stored text is exactly the API's timestamp format and sorts chronologically, so the list
    route can select it as text and send it on without parsing a datetime per row per column.
    """

    impl = String(24)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> str | None:
        return iso(value)

    def process_result_value(self, value: str | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return datetime.fromisoformat(value)


class Clipped(TypeDecorator[str]):
    """Text from outside Corral's control (an engine's error, an installer's output), cut to the
    column's length when written. SQLite stores any length in a VARCHAR(n); PostgreSQL refuses
    the whole write (SQLSTATE 22001), which would lose the row's change with the message."""

    impl = String
    cache_ok = True

    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.length = length

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return value if value is None else value[: self.length]


class Base(DeclarativeBase):
    type_annotation_map = {datetime: Timestamp(), dict[str, Any]: JSON(), list[str]: JSON()}


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str | None] = mapped_column(String(256), default=None)
    tier: Mapped[str] = mapped_column(String(32), default="free")
    is_admin: Mapped[bool] = mapped_column(default=False)
    is_guest: Mapped[bool] = mapped_column(default=False)
    session_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        # Registered names are unique; guests may share a name (they are told apart by ID).
        Index(
            "ix_users_username_registered",
            "username",
            unique=True,
            sqlite_where=(is_guest == False),  # noqa: E712
            postgresql_where=(is_guest == False),  # noqa: E712
        ),
    )

    def as_json(self) -> shapes.User:
        return {
            "id": self.id,
            "username": self.username,
            "tier": self.tier,
            "admin": self.is_admin,
            "guest": self.is_guest,
            "created_at": iso(self.created_at),
        }


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_prefix: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[list[str]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)

    def as_json(self) -> shapes.TokenInfo:
        return {
            "id": self.id,
            "name": self.name,
            "token_prefix": self.token_prefix,
            "scopes": [shapes.Scope(scope) for scope in self.scopes],
            "expires_at": iso(self.expires_at),
            "created_at": iso(self.created_at),
            "last_used_at": iso(self.last_used_at),
        }


class RevokedJwt(Base):
    """JWT IDs signed out before their expiry; rows past ``expires_at`` can be pruned."""

    __tablename__ = "revoked_jwts"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column()


class Container(Base):
    __tablename__ = "containers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    image: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(64), default="barebone")
    status: Mapped[str] = mapped_column(String(16), default=Status.CREATING)
    docker_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    memory_mb: Mapped[int] = mapped_column()
    cpu_shares: Mapped[int] = mapped_column()
    disk_mb: Mapped[int] = mapped_column()
    runtime: Mapped[str] = mapped_column(String(16))
    environment: Mapped[dict[str, Any]] = mapped_column(default=dict)
    labels: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Clipped(1024), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    # Set when resources changed while stopped: the next start rebuilds the container with them.
    needs_recreate: Mapped[bool] = mapped_column(default=False)
    # Where the role stands in the current sandbox (``corral.shapes.RoleState``; ``role_error``
    # says why it failed; POST .../role/reinstall retries).
    role_state: Mapped[str] = mapped_column(
        String(16), default=RoleState.NONE, server_default=RoleState.NONE.value
    )
    role_error: Mapped[str | None] = mapped_column(Clipped(1024), default=None)
    # The Docker volume holding /home/user: made for this row (named from its ID), or a kept
    # volume of an earlier container attached at create. Rows older than the column have it
    # filled in with the derived name (the first migration).
    volume: Mapped[str | None] = mapped_column(String(128), default=None)
    # The engine the sandbox was placed on (``engines`` in the settings): every operation on it
    # goes there. Rows older than several engines belong to "local" (migration 0002).
    engine: Mapped[str] = mapped_column(
        String(32), default=LOCAL_ENGINE, server_default=LOCAL_ENGINE, index=True
    )

    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_containers_user_name"),)

    @property
    def public_id(self) -> str:
        return self.docker_id or self.id

    @property
    def volume_name(self) -> str:
        return self.volume or volume_name(self.id)

    @property
    def docker_name(self) -> str:
        return f"corral-{self.id}"

    def as_json(self) -> shapes.Container:
        return container_json({name: getattr(self, name) for name in LIST_NAMES})


def container_json(c: Mapping[str, Any]) -> shapes.Container:
    """The contract's container object from a mapping of ``LIST_NAMES``. The list route builds
    these mappings from plain Core rows: hydrating hundreds of ORM objects (or reading SQLAlchemy
    ``Row`` attributes one by one) costs more than the query itself."""
    body: shapes.Container = {
        "id": c["docker_id"] or c["id"],
        "db_id": c["id"],
        "name": c["name"],
        "image": c["image"],
        "role": c["role"],
        "role_state": c["role_state"],
        "role_error": c["role_error"],
        "status": c["status"],
        "created_at": _stamp(c["created_at"]) or "",
        "last_used_at": _stamp(c["last_used_at"]),
        "started_at": _stamp(c["started_at"]) if c["status"] == Status.RUNNING else None,
        "resources": {
            "memory_mb": c["memory_mb"],
            "cpu_shares": c["cpu_shares"],
            "disk_mb": c["disk_mb"],
        },
        "runtime": c["runtime"],
        "labels": dict(c["labels"]),
        "volume": c["volume"] or volume_name(c["id"]),
        "owner_id": c["user_id"],
        "engine": c["engine"],
    }
    if c["error"]:
        body["error"] = c["error"]
    return body


def _stamp(value: datetime | str | None) -> str | None:
    return value if value is None or isinstance(value, str) else iso(value)


_TEXT_STAMPS = ("created_at", "last_used_at", "started_at")
LIST_NAMES = (
    "id", "user_id", "name", "image", "role", "status", "docker_id", "memory_mb",
    "cpu_shares", "disk_mb", "runtime", "labels", "error", "role_state", "role_error",
    "volume", "engine", *_TEXT_STAMPS,
)  # fmt: skip
LIST_COLUMNS = tuple(
    type_coerce(Container.__table__.c[name], String).label(name)
    if name in _TEXT_STAMPS
    else Container.__table__.c[name]
    for name in LIST_NAMES
)


class Agent(Base):
    """A user's own machine, attached by ``corral agent``. Its identity is its agent token: one
    agent per token, so revoking the token (on delete) keeps it from ever coming back."""

    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_id: Mapped[str] = mapped_column(String(36), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=Status.OFFLINE)
    facts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    load: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    connected_at: Mapped[datetime | None] = mapped_column(default=None)
    last_seen_at: Mapped[datetime | None] = mapped_column(default=None)

    @property
    def public_id(self) -> str:
        return f"agent:{self.id}"

    def as_json(self) -> shapes.Container:
        facts = dict(self.facts)
        cpus = facts.get("cpus")
        details = cast(
            shapes.AgentDetails,
            {**facts, "load": dict(self.load), "last_seen_at": iso(self.last_seen_at)},
        )
        return {
            "id": self.public_id,
            "db_id": self.id,
            "name": self.name,
            "image": None,
            "role": None,
            "role_state": None,
            "role_error": None,
            "status": Status(self.status),
            "session_type": AGENT_SESSION,
            "created_at": iso(self.created_at),
            "last_used_at": iso(self.last_seen_at),
            "started_at": iso(self.connected_at) if self.status == Status.RUNNING else None,
            "resources": {
                "memory_mb": facts.get("memory_mb"),
                "cpu_shares": cpus * 1000 if isinstance(cpus, int) else None,
                "disk_mb": None,
            },
            "runtime": "agent",
            "labels": {},
            "owner_id": self.user_id,
            "agent": details,
        }


class KeptVolume(Base):
    """A volume kept by a delete with ``keep_volume``: its data, waiting to be attached to a new
    container (create with ``"volume": name``, which removes this record) or deleted."""

    __tablename__ = "kept_volumes"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    size_mb: Mapped[int] = mapped_column()
    container_name: Mapped[str] = mapped_column(String(64))
    container_db_id: Mapped[str] = mapped_column(String(36))
    kept_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A volume stays on its engine's host: a container made on it is placed there.
    engine: Mapped[str] = mapped_column(
        String(32), default=LOCAL_ENGINE, server_default=LOCAL_ENGINE
    )

    def as_json(self, used_mb: int | None) -> shapes.KeptVolume:
        return {
            "name": self.name,
            "owner_id": self.user_id,
            "size_mb": self.size_mb,
            "used_mb": used_mb,
            "container_name": self.container_name,
            "container_db_id": self.container_db_id,
            "kept_at": iso(self.kept_at),
        }


class EngineRecord(Base):
    """What the database knows of a configured engine: whether it is drained (no new sandboxes
    placed there), so every backend process sharing the database sees the same drain. An engine
    without a row is not drained."""

    __tablename__ = "engines"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    draining: Mapped[bool] = mapped_column(default=False)
    drained_at: Mapped[datetime | None] = mapped_column(default=None)


class EventRecord(Base):
    """The event log: every change, per user, numbered by ``seq`` for replay after a reconnect."""

    __tablename__ = "events"

    # 64-bit: one sequence numbers every user's events (SQLite's row ID already is; a BIGINT
    # there would not be the row ID, and would not number itself).
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    user_id: Mapped[str] = mapped_column(String(36))
    seq: Mapped[int] = mapped_column()
    type: Mapped[str] = mapped_column(String(32))
    container_id: Mapped[str | None] = mapped_column(String(64), default=None)
    payload: Mapped[dict[str, Any]] = mapped_column()
    timestamp: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("user_id", "seq", name="uq_events_user_seq"),)


VOLUME_PREFIX = "corral-vol-"


def volume_name(db_id: str) -> str:
    """The Docker volume made for a container row: named from the database ID, never the user's
    name."""
    return f"{VOLUME_PREFIX}{db_id}"


@overload
def iso(value: datetime) -> str: ...
@overload
def iso(value: None) -> None: ...
@overload
def iso(value: datetime | None) -> str | None: ...
def iso(value: datetime | None) -> str | None:
    """RFC 3339 in UTC with a ``Z``, the one timestamp format of the API."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SharedValue(Base):
    """A value every replica on one database must agree on and that is made once: the session
    signing key and the instance ID (``backend.cluster.shared``)."""

    __tablename__ = "shared_values"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class RateBucket(Base):
    """A rate limit's bucket shared by every replica (``backend.ratelimit.SharedBuckets``): the
    time its next request is due (GCRA's theoretical arrival time, seconds since the epoch on
    the database's clock). A row whose time has passed is a full bucket, the same as none."""

    __tablename__ = "rate_buckets"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    due: Mapped[float] = mapped_column(Float)
