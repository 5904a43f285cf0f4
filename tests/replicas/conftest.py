"""Two ``corral serve`` replicas on one fresh PostgreSQL database (``devkit.postgres``), each
with its own data directory, sharing the volume images' folder and the instance label.

Everything is made per test and removed afterwards: the processes (SIGKILL: a replica must
never need a clean stop), the test's Docker containers and volumes, the mounts in the shared
folder, and the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from backend.admin import Admin
from backend.settings import Settings, load_settings
from devkit.backend_process import BackendProcess
from devkit.engine import clean_up
from devkit.postgres import Postgres, database_of

# The limits of a test tier (small disks), for any tier a config names.
TIER = """containers = 10
memory_mb = [64, 2048]
cpu_shares = [100, 2000]
disk_mb = [16, 1024]
default_memory_mb = 128
default_cpu_shares = 500
default_disk_mb = 64
"""
CONFIG = f"stop_timeout_s = 2\n[tiers.test]\n{TIER}"
PASSWORD = "replica-password"


@dataclass
class Replicas:
    a: BackendProcess
    b: BackendProcess
    postgres: Postgres
    database_url: str
    shared: Path  # the shared folder: volumes/ holds every replica's volume images

    @property
    def both(self) -> tuple[BackendProcess, BackendProcess]:
        return self.a, self.b

    def settings(self) -> Settings:
        """Settings for host-side tools (``Admin``) on the replicas' database."""
        return load_settings(
            data_dir=self.a.data_dir,
            database_url=self.database_url,
            volume_images_dir=self.shared / "volumes",
        )

    async def user(self, username: str, *, tier: str = "test", admin: bool = False) -> str:
        """A registered user with ``PASSWORD``; an API token of theirs with every scope."""
        async with Admin(self.settings()) as tools:
            await tools.add_user(username, PASSWORD, tier, admin)
            token, _ = await tools.issue_token(username, ["read", "write"], "replicas", None)
        return token

    def sql(self, statement: str) -> str:
        return self.postgres.sql(statement, database_of(self.database_url))

    def leader_pid(self, work: str = "docker-watcher") -> int | None:
        """The process that leads ``work`` now: the holder of its advisory lock
        (``backend.cluster.leader`` names its connection ``corral-leader <pid> <work>``)."""
        out = self.sql(
            "select a.application_name from pg_locks l join pg_stat_activity a on a.pid = l.pid "
            f"where l.locktype = 'advisory' and l.granted "
            f"and a.application_name like 'corral-leader % {work}%'"
        )
        names = [line for line in out.splitlines() if line]
        return int(names[0].split()[1]) if names else None


@pytest.fixture
def postgres() -> Postgres:
    return Postgres.ensure()


@asynccontextmanager
async def two_replicas(
    tmp_path: Path,
    instance: str,
    postgres: Postgres,
    docker_client: docker.DockerClient,
    config: str = CONFIG,
) -> AsyncIterator[Replicas]:
    """Two replicas on a fresh database with ``config`` as each one's config.toml; everything
    removed afterwards (the processes SIGKILLed, the test's containers and volumes, the mounts
    in the shared folder, the database)."""
    url = postgres.create_database()
    shared = tmp_path / "shared"
    # CORRAL_DATABASE_URL, not DATABASE_URL: it wins over the test's own database, which the
    # suite's PostgreSQL pass puts in the environment as CORRAL_DATABASE_URL.
    env = {"CORRAL_DATABASE_URL": url, "CORRAL_VOLUME_IMAGES_DIR": str(shared / "volumes")}
    pair = []
    for name in ("a", "b"):
        data_dir = tmp_path / name
        data_dir.mkdir(parents=True)
        (data_dir / "config.toml").write_text(config)
        pair.append(BackendProcess(data_dir, instance, env))
    found = Replicas(pair[0], pair[1], postgres, url, shared)
    try:
        await asyncio.to_thread(found.a.start)  # the first migrates; then the second joins
        await asyncio.to_thread(found.b.start)
        yield found
    finally:
        for proc in found.both:
            proc.kill()
        try:
            clean_up(instance, shared, docker_client)
        finally:
            postgres.drop_database(database_of(url))


@pytest.fixture
def replicas_config() -> str:
    """Each replica's config.toml; a test module overrides this fixture for settings of its
    own (top-level keys go before ``CONFIG``'s tables)."""
    return CONFIG


@pytest.fixture
async def replicas(
    tmp_path: Path,
    instance: str,
    postgres: Postgres,
    docker_client: docker.DockerClient,
    replicas_config: str,
) -> AsyncIterator[Replicas]:
    async with two_replicas(tmp_path, instance, postgres, docker_client, replicas_config) as found:
        yield found
