"""The event log's IDs are 64-bit on PostgreSQL.

Every event takes one ID from one sequence shared by all users, and PostgreSQL's ``serial`` is
32-bit: about 2.1 billion events, which a busy cluster that keeps its log for replay would
reach. SQLite's ``INTEGER PRIMARY KEY`` is already 64-bit (the row ID), so nothing changes
there.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _widen(kind: str, old: sa.types.TypeEngine[int], new: sa.types.TypeEngine[int]) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.alter_column("events", "id", type_=new, existing_type=old, existing_nullable=False)
    op.execute(f"ALTER SEQUENCE events_id_seq AS {kind}")


def upgrade() -> None:
    _widen("bigint", sa.Integer(), sa.BigInteger())


def downgrade() -> None:
    _widen("integer", sa.BigInteger(), sa.Integer())
