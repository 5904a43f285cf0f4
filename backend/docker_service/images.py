"""Images: inspect, list by label, remove, and commit a container as an image."""

from __future__ import annotations

from typing import Any

from backend.docker_service.client import EngineClient
from backend.errors import DockerNotFound


class ImageCalls(EngineClient):
    async def image_exists(self, reference: str) -> bool:
        return await self.image_details(reference) is not None

    async def image_details(self, reference: str) -> dict[str, Any] | None:
        def inspect() -> dict[str, Any]:
            result: dict[str, Any] = self._api().inspect_image(reference)  # type: ignore[no-untyped-call]
            return result

        try:
            return await self.run(inspect)
        except DockerNotFound:
            return None

    async def list_images(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        """Every image carrying all ``labels`` (a label given as ``""`` only has to exist)."""
        filters = {"label": [f"{k}={v}" if v else k for k, v in labels.items()]}
        rows: list[dict[str, Any]] = await self.run(lambda: self._api().images(filters=filters))
        return rows

    async def remove_image(self, reference: str) -> bool:
        """Remove an image (never forced: one a container still uses stays, DockerConflict);
        False when it did not exist."""
        try:
            await self.run(lambda: self._api().remove_image(reference))
        except DockerNotFound:
            return False
        return True

    async def commit(self, container_id: str, repository: str, tag: str, changes: list[str]) -> str:
        """Commit a stopped container's file system as ``repository:tag``, with Dockerfile
        ``changes`` (LABEL, CMD) applied to the configuration; the new image's ID. The tag
        appears in one engine operation, so no half-made image is ever tagged."""
        result: dict[str, Any] = await self.run(
            lambda: self._api().commit(
                container_id, repository=repository, tag=tag, changes=changes, pause=False
            )
        )
        return str(result["Id"])
