"""The whole scale-out shape at once: two ``corral serve`` replicas on one PostgreSQL database and
two Docker engines (the machine's and a second dockerd, ``devkit/second_engine.py``). The second
engine stops while its sandbox was made through one replica and watched by whichever leads: both
replicas show it unknown and refuse it with 503, the first engine's sandbox keeps working through
either, live clients hear of the outage once (from the engine's leader, not from every replica),
and when the engine returns its watcher reconciles and nothing is lost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import docker
import pytest

from corral.client import CorralClient
from corral.client.errors import ApiError
from devkit.postgres import Postgres
from devkit.second_engine import SecondEngine
from devkit.waiting import wait_for
from tests.conftest import BUSYBOX, sh
from tests.replicas.conftest import TIER, two_replicas
from tests.replicas.test_replicas import _next


def _config(second_host: str) -> str:
    return (
        "stop_timeout_s = 2\nengine_probe_interval_s = 0.2\n\n"
        '[[engines]]\nname = "local"\n\n'
        f'[[engines]]\nname = "second"\ndocker_host = "{second_host}"\n\n'
        f'[tiers.near]\n{TIER}engines = ["local"]\n\n'
        f'[tiers.far]\n{TIER}engines = ["second"]\n'
    )


async def test_two_replicas_two_engines_the_second_stopped_and_started(
    tmp_path: Path,
    instance: str,
    docker_client: docker.DockerClient,
    second_engine: SecondEngine,
) -> None:
    postgres = Postgres.ensure()
    config = _config(second_engine.host)
    far_docker = second_engine.client()
    async with two_replicas(tmp_path, instance, postgres, docker_client, config) as replicas:
        near_token = await replicas.user("nearby", tier="near")
        far_token = await replicas.user("faraway", tier="far")
        async with (
            CorralClient(replicas.a.url, near_token) as near_a,
            CorralClient(replicas.b.url, near_token) as near_b,
            CorralClient(replicas.a.url, far_token) as far_a,
            CorralClient(replicas.b.url, far_token) as far_b,
        ):
            near = await near_a.create_container(BUSYBOX, name="near", wait=True)
            far = await far_b.create_container(BUSYBOX, name="far", wait=True)
            assert (near["engine"], far["engine"]) == ("local", "second")
            assert sh(docker_client, near["id"], "echo near-kept > /home/user/note")[0] == 0
            assert sh(far_docker, far["id"], "echo far-kept > /home/user/note")[0] == 0
            stream = await far_a.connect_events()
            assert (await _next(stream))["type"] == "list"

            async def far_status(client: CorralClient) -> str:
                return str((await client.get_container(far["db_id"]))["status"])

            async def both_say(status: str) -> bool:
                return await far_status(far_a) == status and await far_status(far_b) == status

            second_engine.stop()
            await wait_for(lambda: both_say("unknown"), 20, what="far unknown on both replicas")
            for client in (far_a, far_b):
                with pytest.raises(ApiError) as refused:
                    await client.start_container(far["db_id"])
                assert (refused.value.status, refused.value.error) == (503, "docker unavailable")

            # The first engine's sandbox works through either replica meanwhile.
            assert (await near_b.stop_container(near["db_id"]))["status"] == "stopped"
            assert (await near_a.start_container(near["db_id"]))["status"] == "running"

            second_engine.start()
            # The engine stopped its sandbox on the way down; its watcher (on whichever replica
            # leads it) reconciles that, and both replicas agree.
            await wait_for(lambda: both_say("stopped"), 30, what="far reconciled on both")
            started = await far_a.start_container(far["db_id"])
            assert started["status"] == "running"

            heard: list[dict[str, Any]] = []
            while not (heard and heard[-1]["container"].get("status") == "running"):
                message = await _next(stream)
                if message["container"].get("db_id") == far["db_id"]:
                    heard.append(message)
            statuses = [m["container"]["status"] for m in heard]
            # The engine may stop its sandbox (and say so) before it stops answering; then the
            # outage, once (not once per replica), then the stored state again, then the start.
            assert statuses.count("unknown") == 1, statuses
            assert statuses[statuses.index("unknown") :] == ["unknown", "stopped", "running"]
            await stream.close()

            near_now = (await near_b.get_container(near["db_id"]))["id"]
            assert sh(docker_client, near_now, "cat /home/user/note") == (0, "near-kept\n")
            assert sh(far_docker, started["id"], "cat /home/user/note") == (0, "far-kept\n")
    far_docker.close()
