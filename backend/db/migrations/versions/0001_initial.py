"""The schema of the last release without migrations: users, tokens, containers, agents, kept
volumes and the event log.

On an empty database this makes every table. A database made before migrations existed (it has
tables but no ``alembic_version``) is taken over instead: the tables it lacks are made and the
container columns added by releases since its own are added (``volume`` filled in with the name
those rows' volumes were given), which is what every start did before Alembic.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Timestamps are RFC 3339 text (backend.db.models.Timestamp); migrations keep their own types.
STAMP = sa.String(length=24)


def _user_fk() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE")


def _index(table: str, column: str) -> None:
    with op.batch_alter_table(table) as batch:
        batch.create_index(f"ix_{table}_{column}", [column], unique=False)


def _users() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=256), nullable=True),
        sa.Column("tier", sa.String(length=32), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("is_guest", sa.Boolean(), nullable=False),
        sa.Column("session_expires_at", STAMP, nullable=True),
        sa.Column("created_at", STAMP, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("users") as batch:
        batch.create_index(
            "ix_users_username_registered",
            ["username"],
            unique=True,
            sqlite_where=sa.text("is_guest = 0"),
            postgresql_where=sa.text("NOT is_guest"),
        )


def _api_tokens() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("token_prefix", sa.String(length=16), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", STAMP, nullable=False),
        sa.Column("expires_at", STAMP, nullable=True),
        sa.Column("revoked_at", STAMP, nullable=True),
        sa.Column("last_used_at", STAMP, nullable=True),
        _user_fk(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    _index("api_tokens", "user_id")


def _revoked_jwts() -> None:
    op.create_table(
        "revoked_jwts",
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("expires_at", STAMP, nullable=False),
        sa.PrimaryKeyConstraint("jti"),
    )


# Container columns that releases added after the table's first one; a database made by an
# older release gets them below.
def _role_state() -> sa.Column[str]:
    return sa.Column("role_state", sa.String(length=16), server_default="none", nullable=False)


def _role_error() -> sa.Column[str]:
    return sa.Column("role_error", sa.String(length=1024), nullable=True)


def _volume() -> sa.Column[str]:
    return sa.Column("volume", sa.String(length=128), nullable=True)


LATER_CONTAINER_COLUMNS: tuple[Callable[[], sa.Column[str]], ...] = (
    _role_state,
    _role_error,
    _volume,
)


def _containers() -> None:
    op.create_table(
        "containers",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("image", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("docker_id", sa.String(length=64), nullable=True),
        sa.Column("memory_mb", sa.Integer(), nullable=False),
        sa.Column("cpu_shares", sa.Integer(), nullable=False),
        sa.Column("disk_mb", sa.Integer(), nullable=False),
        sa.Column("runtime", sa.String(length=16), nullable=False),
        sa.Column("environment", sa.JSON(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("error", sa.String(length=1024), nullable=True),
        sa.Column("created_at", STAMP, nullable=False),
        sa.Column("last_used_at", STAMP, nullable=True),
        sa.Column("started_at", STAMP, nullable=True),
        sa.Column("needs_recreate", sa.Boolean(), nullable=False),
        *(column() for column in LATER_CONTAINER_COLUMNS),
        _user_fk(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "name", name="uq_containers_user_name"),
    )
    _index("containers", "docker_id")
    _index("containers", "user_id")


def _agents() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("token_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("facts", sa.JSON(), nullable=False),
        sa.Column("load", sa.JSON(), nullable=False),
        sa.Column("created_at", STAMP, nullable=False),
        sa.Column("connected_at", STAMP, nullable=True),
        sa.Column("last_seen_at", STAMP, nullable=True),
        _user_fk(),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_id"),
    )
    _index("agents", "user_id")


def _kept_volumes() -> None:
    op.create_table(
        "kept_volumes",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("size_mb", sa.Integer(), nullable=False),
        sa.Column("container_name", sa.String(length=64), nullable=False),
        sa.Column("container_db_id", sa.String(length=36), nullable=False),
        sa.Column("kept_at", STAMP, nullable=False),
        _user_fk(),
        sa.PrimaryKeyConstraint("name"),
    )
    _index("kept_volumes", "user_id")


def _events() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("container_id", sa.String(length=64), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("timestamp", STAMP, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "seq", name="uq_events_user_seq"),
    )


# In the order they can be made: users before the tables that refer to it.
TABLES: dict[str, Callable[[], None]] = {
    "users": _users,
    "api_tokens": _api_tokens,
    "revoked_jwts": _revoked_jwts,
    "containers": _containers,
    "agents": _agents,
    "kept_volumes": _kept_volumes,
    "events": _events,
}


def _add_later_container_columns() -> None:
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("containers")}
    missing = [column() for column in LATER_CONTAINER_COLUMNS]
    missing = [column for column in missing if column.name not in present]
    if missing:
        with op.batch_alter_table("containers") as batch:
            for column in missing:
                batch.add_column(column)
    if "volume" not in present:
        # Volumes were named from the container's ID before rows recorded the name.
        rows = sa.table("containers", sa.column("id", sa.String), sa.column("volume", sa.String))
        op.execute(rows.update().values(volume=sa.literal("corral-vol-") + rows.c.id))


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    for name, make in TABLES.items():
        if name not in existing:
            make()
    if "containers" in existing:
        _add_later_container_columns()


def downgrade() -> None:
    for name in reversed(TABLES):
        op.drop_table(name)
