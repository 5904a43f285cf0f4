"""The throwaway PostgreSQL of ``scripts/postgres.sh``, for tests, benchmarks and replica trials.

The cluster is shared by everything on the machine (one loopback port); isolation is by database:
each user of it makes a database of its own with a unique name and drops it afterwards
(``drop_database`` ends the connections still open to it first, so a backend killed mid-test
cannot keep it alive). Statements go through ``psql`` so that this works from synchronous code
and from inside a running event loop alike.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "postgres.sh"
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresUnavailable(RuntimeError):
    """scripts/postgres.sh failed (its output is in the text)."""


@dataclass(frozen=True)
class Postgres:
    url: str  # the cluster's own database, postgresql+asyncpg://user@host:port/corral

    @classmethod
    def ensure(cls) -> Postgres:
        """Start the cluster if it is not running (installing PostgreSQL when missing)."""
        done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, check=False)
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            raise PostgresUnavailable(f"scripts/postgres.sh failed:\n{done.stderr}{done.stdout}")
        return cls(lines[-1])

    def url_for(self, database: str) -> str:
        return make_url(self.url).set(database=database).render_as_string(hide_password=False)

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run one statement with psql; its unaligned output."""
        url = make_url(self.url)
        psql = shutil.which("psql") or "psql"
        done = subprocess.run(
            [
                psql,
                "-h",
                str(url.host),
                "-p",
                str(url.port),
                "-U",
                str(url.username),
                "-d",
                database,
                "-Atq",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                statement,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise PostgresUnavailable(f"psql failed on {statement!r}: {done.stderr.strip()}")
        return done.stdout.strip()

    def create_database(self, name: str | None = None, template: str | None = None) -> str:
        """A new, empty database (or a copy of ``template``); its URL."""
        name = name or f"corral_{uuid.uuid4().hex[:16]}"
        _check(name)
        clause = ""
        if template:
            _check(template)
            clause = f" template {template}"
        self.sql(f"create database {name}{clause}")
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        _check(name)
        self.sql(f"drop database if exists {name} with (force)")

    def database_names(self, prefix: str) -> list[str]:
        _check(prefix)
        out = self.sql(f"select datname from pg_database where datname like '{prefix}%'")
        return [line for line in out.splitlines() if line]


def database_of(url: str) -> str:
    return str(make_url(url).database)


def _check(name: str) -> None:
    if not _NAME.match(name):
        raise ValueError(f"not a plain database name: {name!r}")
