"""Rate limits shared by every replica: one row per bucket (``backend.ratelimit.SharedBuckets``).

Before, each replica counted in its own memory, so a client spread over N replicas got N times
the configured rate. A single process (SQLite) still counts in memory; the table stays empty.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rate_buckets",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("due", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", "key"),
    )


def downgrade() -> None:
    op.drop_table("rate_buckets")
