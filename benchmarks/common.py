"""Shared pieces: a real backend, either in this process or as its own ``corral serve`` process.

Latency benchmarks run the server as a subprocess so the measuring client does not share its
event loop and GIL with the server, as no real client would.
"""

from __future__ import annotations

import asyncio
import hashlib
import statistics
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import docker
from aiohttp import web

from backend.admin import Admin
from backend.app import create_app
from backend.auth.tokens import JwtSigner, load_or_create_secret
from backend.containers.sandbox import LABEL_DB_ID, instance_labels
from backend.db.models import Container, User
from backend.docker_service import DockerService
from backend.settings import Settings, load_settings
from backend.state import SESSIONS, SIGNER
from devkit.backend_process import BackendProcess
from devkit.engine import clean_up
from devkit.users import add_user

# A benchmark's load comes from one user on purpose: the per-user write limit (a guard against
# abuse, docs/security.md) would refuse it, so the benchmarks' backends run without it.
NO_WRITE_LIMIT = "write_rate = [0, 1.0]\n"


@dataclass
class Backend:
    url: str
    app: web.Application
    settings: Settings
    instance: str

    async def user(self, tier: str = "enterprise", admin: bool = False) -> tuple[User, str]:
        return await add_user(
            self.app[SESSIONS],
            self.app[SIGNER],
            f"bench-{uuid.uuid4().hex[:8]}",
            tier=tier,
            admin=admin,
            lifetime=timedelta(hours=2),
        )


@asynccontextmanager
async def running_backend(**overrides: object) -> AsyncIterator[Backend]:
    """A backend inside this process (for benchmarks that reach into its services)."""
    instance = f"bench-{uuid.uuid4().hex[:10]}"
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
        (Path(tmp) / "config.toml").write_text(NO_WRITE_LIMIT)
        settings = load_settings(data_dir=Path(tmp), instance_label=instance, port=0, **overrides)
        app = create_app(settings)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            yield Backend(f"http://127.0.0.1:{port}", app, settings, instance)
        finally:
            await runner.cleanup()
            clean_up(instance, Path(tmp))


@dataclass
class ServerProcess:
    url: str
    settings: Settings
    instance: str
    pid: int | None = None


@asynccontextmanager
async def server_process(data_dir: Path, instance: str) -> AsyncIterator[ServerProcess]:
    """``corral serve`` on a free loopback port over ``data_dir``, stopped with SIGTERM (without
    the per-user write limit, unless ``data_dir`` has a configuration of its own)."""
    config = data_dir / "config.toml"
    if not config.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        config.write_text(NO_WRITE_LIMIT)
    proc = BackendProcess(data_dir, instance)
    await asyncio.to_thread(proc.start)
    try:
        yield ServerProcess(proc.url, load_settings(data_dir=data_dir), instance, proc.pid)
    finally:
        await asyncio.to_thread(proc.stop)
        clean_up(instance, data_dir)


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * pct / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"p50 {percentile(ms, 50):7.2f} ms  p99 {percentile(ms, 99):7.2f} ms  "
        f"mean {statistics.fmean(ms):7.2f} ms  (n={len(ms)})"
    )


def verdict(ok: bool) -> str:
    return "OK  " if ok else "MISS"


async def seed_users(data_dir: Path, containers_per_user: dict[str, int]) -> dict[str, str]:
    """Users (enterprise tier) with that many stopped containers each, straight in the database
    of ``data_dir``; a token per user. Nothing is made on Docker: list and console benchmarks
    measure the backend's and the console's work, not the engine's."""
    settings = load_settings(data_dir=data_dir)
    users = {name: User(username=name, tier="enterprise") for name in containers_per_user}
    async with Admin(settings) as admin, admin.sessions() as session:
        session.add_all(users.values())
        await session.flush()
        session.add_all(
            Container(
                user_id=users[name].id,
                name=f"c-{i:04d}",
                image="corral/busybox",
                status="stopped",
                docker_id=hashlib.sha256(f"{name}/{i}".encode()).hexdigest(),
                memory_mb=512,
                cpu_shares=500,
                disk_mb=2048,
                runtime="runsc",
                labels={"n": str(i)},
            )
            for name, count in containers_per_user.items()
            for i in range(count)
        )
        await session.commit()
    signer = JwtSigner(load_or_create_secret(settings.secret_path))
    return {name: signer.issue(user, timedelta(hours=2)).token for name, user in users.items()}


async def baseline_twin(
    service: DockerService, made: dict[str, Any], name: str, instance: str
) -> Container:
    """``twin_of(made, name)`` with its volume made as the backend makes one (labelled with the
    run's instance), for a docker-SDK baseline to create its sandbox on. A sandbox naming a
    missing volume is refused (``VolumeGone``), where the engine would make an unlabelled one
    that the instance's clean-up never finds (the ``corral-vol-*`` volumes ``just bench`` used to
    leave behind)."""
    twin = twin_of(made, name)
    labels = {**instance_labels(instance), LABEL_DB_ID: twin.id}
    await service.create_volume(twin.volume_name, labels)
    return twin


def remove_twin(client: docker.APIClient, container_id: str, twin: Container) -> None:
    """Remove a baseline's container and its volume (``baseline_twin``'s), by name, at once
    rather than at the instance's clean-up."""
    client.remove_container(container_id, force=True)
    client.remove_volume(twin.volume_name, force=True)


def twin_of(made: dict[str, Any], name: str) -> Container:
    """A row like the API's container ``made`` (same image, runtime and limits), never stored:
    the docker-SDK baselines build their container from it with the same ``sandbox_spec``."""
    resources = made["resources"]
    return Container(
        id=str(uuid.uuid4()),
        user_id="bench",
        name=name,
        image=made["image"],
        memory_mb=resources["memory_mb"],
        cpu_shares=resources["cpu_shares"],
        disk_mb=resources["disk_mb"],
        runtime=made["runtime"],
        environment={},
    )
