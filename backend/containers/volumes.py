"""Each sandbox's volume: the user's data, which outlives every container built on it."""

from __future__ import annotations

from backend.containers.sandbox import LABEL_DB_ID, instance_labels
from backend.db.models import Container
from backend.docker_service import DockerService


class VolumeManager:
    """Named Docker volumes, one per container row, named from its database ID."""

    quota_enforced = False

    def __init__(self, docker: DockerService, instance: str) -> None:
        self._docker = docker
        self._instance = instance

    async def ensure(self, row: Container) -> bool:
        """Make sure the row's volume exists; True when it already did (its data is kept)."""
        if await self._docker.volume_exists(row.volume_name):
            return True
        labels = {**instance_labels(self._instance), LABEL_DB_ID: row.id}
        await self._docker.create_volume(row.volume_name, labels)
        return False

    async def remove(self, row: Container) -> None:
        await self._docker.remove_volume(row.volume_name)
