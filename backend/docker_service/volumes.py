"""Docker volumes: create, inspect, remove, list by label."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import docker

from backend.docker_service.client import EngineClient
from backend.errors import DockerNotFound, VolumeGone


class VolumeCalls(EngineClient):
    async def create_volume(
        self, name: str, labels: dict[str, str], driver_opts: dict[str, str] | None = None
    ) -> None:
        await self.run(
            lambda: self._api().create_volume(
                name=name, driver="local", driver_opts=driver_opts or None, labels=labels
            )
        )

    async def volume_exists(self, name: str) -> bool:
        try:
            await self.run(lambda: self._api().inspect_volume(name))
        except DockerNotFound:
            return False
        return True

    async def volume_labels(self, name: str) -> dict[str, str] | None:
        """A volume's labels; None when there is no such volume."""
        try:
            raw: dict[str, Any] = await self.run(lambda: self._api().inspect_volume(name))
        except DockerNotFound:
            return None
        return dict(raw.get("Labels") or {})

    async def remove_volume(self, name: str) -> bool:
        """Remove a volume; False when it did not exist."""
        try:
            await self.run(lambda: self._api().remove_volume(name, force=True))
        except DockerNotFound:
            return False
        return True

    @staticmethod
    def require_volume(api: docker.APIClient, name: str, labels: Mapping[str, str]) -> None:
        """Refuse (``VolumeGone``) unless volume ``name`` exists and carries ``labels``: a
        container that names a missing volume would get an empty, unlabelled one from the
        engine. Blocking: called in the pool, just before the create."""
        try:
            raw: dict[str, Any] = api.inspect_volume(name)
        except docker.errors.NotFound:
            raise VolumeGone(f"the volume {name} does not exist") from None
        found = raw.get("Labels") or {}
        if any(found.get(key) != value for key, value in labels.items()):
            raise VolumeGone(f"the volume {name} was not made by this Corral (its labels differ)")

    async def list_volumes(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        result = await self.run(lambda: self._api().volumes(filters=filters))
        return list(result.get("Volumes") or [])
