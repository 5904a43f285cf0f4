"""Shared fixtures: a fresh data directory and backend per test, on the real engine.

Every test gets its own ``corral.instance`` label; everything the backend makes on Docker carries
it, and the fixture removes exactly those containers and volumes afterwards, never anything else.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import docker
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from backend.app import create_app
from backend.auth.tokens import JwtSigner, load_or_create_secret
from backend.db.models import User
from backend.http_server import JsonErrorRunner
from backend.settings import DEFAULT_TIERS, Range, Settings, TierLimits, load_settings
from backend.state import EVENTS, SESSIONS, SIGNER
from corral.client import CorralClient
from devkit.engine import clean_up, remove_instance
from devkit.second_engine import SecondEngine
from devkit.users import add_user
from tests.conformance import Conformance

# --db {sqlite,postgres}: the database every test runs on (tests/databases.py).
pytest_plugins = ["tests.databases"]

BUSYBOX = "corral/busybox"
# The headers of a WebSocket handshake, for a plain HTTP client to open (or be refused) one.
WS_HANDSHAKE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env(version="auto")
        client.ping()
    except Exception as exc:  # pragma: no cover - a broken setup, said plainly
        pytest.fail(f"the Docker engine is not running; start it with 'just engine' ({exc})")
    yield client
    client.close()


@pytest.fixture
def instance() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def second_engine_session() -> Iterator[SecondEngine]:
    """One second dockerd for the whole run (``devkit/second_engine.py``), destroyed at the end."""
    engine = SecondEngine()
    try:
        engine.start()
        engine.load_images()
        yield engine
    finally:
        engine.destroy()


@pytest.fixture
def second_engine(second_engine_session: SecondEngine, instance: str) -> Iterator[SecondEngine]:
    """The second engine, running, for a test that may stop or restart it: afterwards it runs
    again and holds nothing of the test's instance."""
    engine = second_engine_session
    engine.start()
    yield engine
    engine.start()
    client = engine.client()
    try:
        remove_instance(instance, client)
    finally:
        client.close()


# A tier with small disks, so quota tests fill a volume in a moment.
TEST_TIER = TierLimits(
    name="test",
    containers=10,
    memory_mb=Range(64, 2048),
    cpu_shares=Range(100, 2000),
    disk_mb=Range(16, 1024),
    default_memory_mb=128,
    default_cpu_shares=500,
    default_disk_mb=64,
)


@pytest.fixture
def settings(
    tmp_path: Path, instance: str, docker_client: docker.DockerClient
) -> Iterator[Settings]:
    data_dir = tmp_path / "data"
    yield load_settings(
        data_dir=data_dir,
        instance_label=instance,
        stop_timeout_s=2,
        tiers={**DEFAULT_TIERS, "test": TEST_TIER},
    )
    clean_up(instance, data_dir, docker_client)


class Api:
    """A test client with helpers to make users and sign in as them."""

    def __init__(self, client: TestClient[Any, Any], conformance: Conformance) -> None:
        self.client = client
        self.app = client.app
        self.conformance = conformance  # checks every answer against the OpenAPI document

    async def user(
        self,
        username: str | None = None,
        *,
        tier: str = "free",
        admin: bool = False,
        password: str | None = None,
    ) -> tuple[User, dict[str, str]]:
        user, token = await add_user(
            self.app[SESSIONS],
            self.app[SIGNER],
            username,
            tier=tier,
            admin=admin,
            password=password,
        )
        return user, {"Authorization": f"Bearer {token}"}

    async def create(self, headers: dict[str, str], **body: Any) -> dict[str, Any]:
        body.setdefault("image", BUSYBOX)
        resp = await self.client.post("/api/containers?wait=true", json=body, headers=headers)
        data: dict[str, Any] = await resp.json()
        assert resp.status == 201, data
        return data

    async def get(self, headers: dict[str, str], ident: str) -> dict[str, Any]:
        resp = await self.client.get(f"/api/containers/{ident}", headers=headers)
        data: dict[str, Any] = await resp.json()
        assert resp.status == 200, data
        return data

    @property
    def url(self) -> str:
        """The test server's base URL, for clients outside this TestClient (CLI, benchmarks)."""
        return str(self.client.make_url("")).rstrip("/")

    def corral(self, headers: dict[str, str] | None = None) -> CorralClient:
        """The project's client (``corral.client``) signed in with ``headers``' token."""
        token = (headers or {}).get("Authorization", "").removeprefix("Bearer ") or None
        return CorralClient(self.url, token)


class CorralTestServer(TestServer):
    """aiohttp's test server, run as ``corral serve`` runs the app (``JsonErrorRunner``: aiohttp's
    own refusals answered as JSON)."""

    async def _make_runner(self, **kwargs: Any) -> web.BaseRunner:
        return JsonErrorRunner(self.app, **kwargs)


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[Api]:
    """A backend over ``settings`` (for tests that need settings of their own). Every answer it
    sends is checked against its OpenAPI document (``tests.conformance``); the test that got
    one that does not conform fails."""
    app = create_app(settings)
    conformance = Conformance()
    conformance.attach(app)
    async with TestClient(CorralTestServer(app)) as client:
        app[EVENTS].add_listener(conformance.on_event)
        yield Api(client, conformance)
    conformance.assert_conforms()


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[Api]:
    async with serve(settings) as served:
        yield served


def signer_for(settings: Settings) -> JwtSigner:
    return JwtSigner(load_or_create_secret(settings.secret_path))


def sh(client: docker.DockerClient, container_id: str, script: str) -> tuple[int, str]:
    """Run a shell script in a sandbox; its exit code and output."""
    code, out = client.containers.get(container_id).exec_run(["sh", "-c", script])
    return int(code), out.decode(errors="replace")


def containers_of(client: docker.DockerClient, db_id: str) -> list[Any]:
    """Every Docker container (running or not) that belongs to one row. The SDK inspects each
    container it lists, and one removed in between (a rebuild's old sandbox) raises NotFound:
    list again."""
    while True:
        try:
            return list(
                client.containers.list(all=True, filters={"label": f"corral.db_id={db_id}"})
            )
        except docker.errors.NotFound:
            continue


@pytest.fixture
def launch_agent() -> Iterator[Callable[[str, str, str], subprocess.Popen[bytes]]]:
    """Start ``corral agent`` processes (server URL, token, name); each killed afterwards."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(url: str, token: str, name: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "corral.cli",
                "agent",
                "--server",
                url,
                "--token",
                token,
                "--name",
                name,
            ],
            env={**os.environ, "SHELL": "/bin/sh"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,  # a pipe nobody reads would stall a chatty agent
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
