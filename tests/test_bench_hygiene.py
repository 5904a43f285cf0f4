"""The benchmarks' docker-SDK baselines leave nothing on the engine: their sandbox's volume is
made labelled with the run's instance, so the clean-up by label removes it (a sandbox naming a
missing volume once got an unlabelled ``corral-vol-*`` volume from the engine, left forever)."""

from __future__ import annotations

import uuid

import docker
import pytest

from backend.containers.sandbox import sandbox_spec
from backend.docker_service import DockerService
from backend.settings import Settings
from benchmarks.common import baseline_twin
from devkit.engine import remove_instance

MADE = {
    "image": "corral/busybox",
    "runtime": "runsc",
    "resources": {"memory_mb": 128, "cpu_shares": 500, "disk_mb": 64},
}


async def test_a_baseline_sandbox_leaves_no_volume_behind(
    settings: Settings, docker_client: docker.DockerClient
) -> None:
    instance = f"bench-{uuid.uuid4().hex[:10]}"
    service = DockerService(None)
    try:
        twin = await baseline_twin(service, MADE, "bench-sdk", instance)
        spec = sandbox_spec(twin, settings, instance, "corral/busybox:latest")
        await service.create_container(spec)
    finally:
        service.close()
        remove_instance(instance)
    with pytest.raises(docker.errors.NotFound):
        docker_client.volumes.get(twin.volume_name)
    assert not docker_client.containers.list(all=True, filters={"name": twin.docker_name})
