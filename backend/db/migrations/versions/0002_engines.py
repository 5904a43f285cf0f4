"""Several Docker engines: each container (and each kept volume) records the engine it lives on,
and an ``engines`` table holds what every backend process must agree on (a drain).

Rows made before this belong to the engine named ``local``: the one engine a configuration
without ``engines`` has (``backend.settings.Settings.engine_specs``).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LOCAL = "local"
STAMP = sa.String(length=24)


def upgrade() -> None:
    with op.batch_alter_table("containers") as batch:
        batch.add_column(
            sa.Column("engine", sa.String(length=32), nullable=False, server_default=LOCAL)
        )
        batch.create_index("ix_containers_engine", ["engine"], unique=False)
    with op.batch_alter_table("kept_volumes") as batch:
        batch.add_column(
            sa.Column("engine", sa.String(length=32), nullable=False, server_default=LOCAL)
        )
    op.create_table(
        "engines",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("draining", sa.Boolean(), nullable=False),
        sa.Column("drained_at", STAMP, nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("engines")
    with op.batch_alter_table("kept_volumes") as batch:
        batch.drop_column("engine")
    with op.batch_alter_table("containers") as batch:
        batch.drop_index("ix_containers_engine")
        batch.drop_column("engine")
