"""Schemathesis against the served OpenAPI document, on a real backend: the real engine (runsc),
a real SQLite file and a real server on a port (``EmbeddedBackend``, on its own thread and loop,
as the console runs it). Every check is on, in the examples, coverage and fuzzing phases; the run
must find nothing. So the document is exactly as strict as the server: what it allows is taken
(or refused for a reason a schema cannot carry: 401, 403, 404, 409), what it refuses is refused.

The run signs in once as a registered user; guest sign-in and sign-out are left out (one would
make a guest per example, the other revokes the run's own token), and so are the WebSocket
routes (schemathesis speaks HTTP; ``tests/hostile`` covers them). Its tiers are small and alike
(so the document's ranges, the union over tiers, are the caller's own) and it offers busybox
alone, so the few creates that pass are quick and leave at most ``CONTAINERS`` sandboxes, all
removed afterwards with their volumes and loop mounts. Its rate limits are off: the run sends
hundreds of writes a minute, and holds the document to the server, not the limits
(``tests/test_rate_limits.py``).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import docker
import pytest

from backend.auth.tokens import JwtSigner, load_or_create_secret
from backend.db.engine import make_engine, make_sessionmaker
from backend.ratelimit import Rate
from backend.server import EmbeddedBackend
from backend.settings import ImageSpec, Settings, load_settings
from backend.tiers import Range, TierLimits
from devkit.backend_process import free_port
from devkit.engine import clean_up
from devkit.users import add_user
from tests.conftest import BUSYBOX

CONTAINERS = 2
MAX_EXAMPLES = 25
SEED = 20261201
# Routes schemathesis cannot or must not call (see the module's docstring).
EXCLUDED_PATHS = ("/api/auth/guest", "/api/auth/logout")
EXCLUDED_PATH_REGEX = r"^/ws/|^/api/containers/(events|stats)$"
# Where the contract refuses a well-formed request with 400 for the container's state, which no
# schema can carry: "container is not running" (stats, reinstall), "not supported for agents"
# (start, settings, reinstall of an agent:<uuid>), a disk below what the volume holds, and the
# file routes' paths.
STATE_REFUSALS = (
    "GET /api/containers/{id}/stats",
    "POST /api/containers/{id}/role/reinstall",
    "POST /api/containers/{id}/start",
    "PATCH /api/containers/{id}/settings",
    # Files: where the path leads in the sandbox (a file, a directory, nothing) and whether it
    # runs (delete) decide, which no schema can carry.
    "GET /api/containers/{id}/files/list",
    "GET /api/containers/{id}/files",
    "POST /api/containers/{id}/files",
    "DELETE /api/containers/{id}/files",
    "POST /api/containers/{id}/files/mkdir",
)
# A followed log of a running sandbox streams until the client leaves (by design): schemathesis
# reaches real containers by the IDs it has seen, and would wait out its request timeout on
# each such case, so the run asks for the logs without follow (the refusals of bad values of
# follow are still generated).
CONFIG = """
[[operations]]
include-name-regex = "^({names})$"
checks.positive_data_acceptance.expected-statuses = [
    "2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"
]

[[operations]]
include-name = "GET /api/containers/{id}/logs"
parameters = { "query.follow" = "false" }
"""


def _tier(name: str) -> TierLimits:
    return TierLimits(
        name=name,
        containers=CONTAINERS,
        memory_mb=Range(64, 256),
        cpu_shares=Range(100, 1000),
        disk_mb=Range(16, 64),
        default_memory_mb=128,
        default_cpu_shares=500,
        default_disk_mb=32,
    )


@dataclass
class Served:
    url: str
    token: str
    settings: Settings


async def _sign_in(settings: Settings) -> str:
    engine = make_engine(settings.resolved_database_url)
    try:
        signer = JwtSigner(load_or_create_secret(settings.secret_path))
        _, token = await add_user(
            make_sessionmaker(engine), signer, "schemathesis", lifetime=timedelta(hours=1)
        )
        return token
    finally:
        await engine.dispose()


@pytest.fixture
def served(tmp_path: Path, instance: str, docker_client: docker.DockerClient) -> Iterator[Served]:
    settings = load_settings(
        data_dir=tmp_path / "data",
        instance_label=instance,
        port=free_port(),
        stop_timeout_s=2,
        tiers={name: _tier(name) for name in ("guest", "free", "pro", "enterprise")},
        images=(ImageSpec(BUSYBOX, "busybox"),),
        guest_signin_rate=Rate(0, 60.0),
        login_rate=Rate(0, 60.0),
        write_rate=Rate(0, 60.0),
    )
    backend = EmbeddedBackend(settings)
    url = backend.start()
    try:
        yield Served(url, asyncio.run(_sign_in(settings)), settings)
    finally:
        backend.stop()
        clean_up(instance, settings.data_dir, docker_client)


def _schemathesis(served: Served, config: Path) -> subprocess.CompletedProcess[str]:
    names = "|".join(re.escape(name) for name in STATE_REFUSALS)
    config.write_text(CONFIG.replace("{names}", names.replace("\\", "\\\\")))
    command = [
        str(Path(sys.executable).parent / "st"),
        "--config-file",
        str(config),
        "run",
        f"{served.url}/api/openapi.json",
        "--url",
        served.url,
        "--header",
        f"Authorization: Bearer {served.token}",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--request-timeout",
        "60",
        "--exclude-path-regex",
        EXCLUDED_PATH_REGEX,
        "--no-color",
    ]
    for path in EXCLUDED_PATHS:
        command += ["--exclude-path", path]
    # Run where its caches (.schemathesis, .hypothesis) go with the test's temporary folder.
    return subprocess.run(
        command, capture_output=True, text=True, timeout=280, check=False, cwd=config.parent
    )


@pytest.mark.timeout(300)
def test_schemathesis_finds_nothing(
    served: Served, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    started = time.monotonic()
    run = _schemathesis(served, tmp_path / "schemathesis.toml")
    elapsed = time.monotonic() - started
    summary = run.stdout[-6000:]
    assert run.returncode == 0, summary
    generated = re.search(r"(\d+) generated", run.stdout)
    assert generated is not None and int(generated.group(1)) >= 300, summary
    print(f"schemathesis: {generated.group(1)} cases in {elapsed:.0f} s")
    label = f"corral.instance={served.settings.instance_label}"
    assert len(docker_client.containers.list(all=True, filters={"label": label})) <= CONTAINERS
