"""Alembic's migrations of the database schema (``versions/``), run at start by
``backend.db.schema.upgrade_schema``. Write a new one with ``alembic revision --autogenerate -m
"what changes"`` from the repository root (the database is the one of the current settings:
set ``CORRAL_DATA_DIR`` to a scratch directory at head), then read it: SQLite changes columns
in batch mode (``op.batch_alter_table``), and the same migration must run on PostgreSQL.
"""
