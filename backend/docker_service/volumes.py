"""Docker volumes: create, inspect, remove, list by label."""

from __future__ import annotations

from typing import Any

from backend.docker_service.client import EngineClient
from backend.errors import DockerNotFound


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

    async def remove_volume(self, name: str) -> bool:
        """Remove a volume; False when it did not exist."""
        try:
            await self.run(lambda: self._api().remove_volume(name, force=True))
        except DockerNotFound:
            return False
        return True

    async def list_volumes(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]}
        result = await self.run(lambda: self._api().volumes(filters=filters))
        return list(result.get("Volumes") or [])
