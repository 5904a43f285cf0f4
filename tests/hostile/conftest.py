"""One backend per module of the catalogue (see ``world.py``), with:

- alice (the ``test`` tier) and her running busybox container ``box``;
- bob, another user of the same tier; an admin; a registered user with a password (carol);
- alice's read-only API token (``read``), and no token at all (``none``).

The rate limits are off (a count of 0): the catalogue sends a hundred refused writes and dozens
of sign-ins in seconds, and what it tests is each refusal, not the limits
(``tests/test_rate_limits.py`` does that).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import docker
import pytest
import pytest_asyncio

from backend.ratelimit import Rate
from backend.settings import DEFAULT_TIERS, load_settings
from devkit.engine import clean_up
from tests.conftest import BUSYBOX, TEST_TIER, serve
from tests.databases import RunDatabases, database_for
from tests.hostile.world import World


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world(
    tmp_path_factory: pytest.TempPathFactory,
    docker_client: docker.DockerClient,
    test_databases: RunDatabases | None,
) -> AsyncIterator[World]:
    instance = f"test-{uuid.uuid4().hex[:12]}"
    data_dir: Path = tmp_path_factory.mktemp("hostile") / "data"
    with database_for(test_databases) as database_url:
        async for world in _world(data_dir, instance, docker_client, database_url):
            yield world


async def _world(
    data_dir: Path, instance: str, docker_client: docker.DockerClient, database_url: str | None
) -> AsyncIterator[World]:
    """The module's backend over ``data_dir`` and its users and container."""
    settings = load_settings(
        data_dir=data_dir,
        database_url=database_url,
        instance_label=instance,
        stop_timeout_s=2,
        tiers={**DEFAULT_TIERS, "test": TEST_TIER},
        guest_signin_rate=Rate(0, 60.0),
        login_rate=Rate(0, 60.0),
        write_rate=Rate(0, 60.0),
    )
    try:
        async with serve(settings) as api:
            _, alice = await api.user("alice", tier="test")
            _, bob = await api.user("bob", tier="test")
            _, admin = await api.user("root", tier="test", admin=True)
            await api.user("carol", password="correct horse")
            box = await api.create(alice, name="box", image=BUSYBOX)
            resp = await api.client.post(
                "/api/tokens", json={"name": "ro", "scopes": ["read"]}, headers=alice
            )
            token = await resp.json()
            world = World(
                api=api,
                docker=docker_client,
                instance=instance,
                headers={
                    "alice": alice,
                    "bob": bob,
                    "admin": admin,
                    "read": {"Authorization": f"Bearer {token['token']}"},
                    "none": {},
                },
                ids={"box": box["id"], "box_db": box["db_id"], "token": token["id"]},
            )
            yield world
    finally:
        clean_up(instance, data_dir, docker_client)
