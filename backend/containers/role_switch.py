"""The switch: a running sandbox recreated from its role image on the same volume.

The background end of a reinstall (``POST .../role/reinstall``), or of one cut off by a stop or
a restart of the backend. ``RoleInstaller`` asks for it (through its ``SandboxSwitch``
protocol) once the role image is ready; the rebuild itself is ``Rebuilder.swap``'s, in its
recoverable order (``backend.containers.recreate``).
"""

from __future__ import annotations

import logging

from backend.containers.catalog import Catalog
from backend.containers.recreate import Rebuilder
from backend.containers.repository import ContainerRepository
from backend.containers.role_images import RoleImages
from backend.containers.role_state import stopped_values
from backend.containers.roles import SandboxImage
from backend.db.models import Container, utcnow
from backend.docker_service import DockerService
from backend.errors import ContainerNotFound
from corral.shapes import ACTIVE_ROLE_STATES, EventType, Stage

log = logging.getLogger(__name__)


class RoleSwitch:
    def __init__(
        self,
        rows: ContainerRepository,
        docker: DockerService,
        rebuilder: Rebuilder,
        catalog: Catalog,
        images: RoleImages,
    ) -> None:
        self._rows = rows
        self._docker = docker
        self._rebuilder = rebuilder
        self._catalog = catalog
        self._images = images

    async def switch_sandbox(
        self, db_id: str, docker_id: str, image: SandboxImage, reason: str
    ) -> None:
        """Recreate a running sandbox from ``image`` (its role image) on the same volume. Does
        nothing when the row moved on meanwhile (another sandbox, or no role work expected).

        Called only from the row's own role task, so a sandbox found stopped needs no task
        cancelled: the task ends with this call."""
        async with self._rows.lock(db_id):
            try:
                row = await self._rows.reload(db_id)
            except ContainerNotFound:
                return
            if row.docker_id != docker_id or row.role_state not in ACTIVE_ROLE_STATES:
                return
            state = await self._docker.inspect(docker_id)
            if state is None or not state.running:
                values = stopped_values(row, state)
                if values:
                    await self._rows.save(row, EventType.CONTAINER_UPDATED, **values)
                return
            swap = await self._rebuilder.swap(row, row, state, start=True, image=image)
            now = utcnow()
            row = await self._rows.save(
                row,
                EventType.CONTAINER_UPDATED,
                message="role packages restored"
                if reason in ("recreate", "resume")
                else "role packages installed",
                docker_id=swap.new_id,
                started_at=now,
                **image.values(),
            )
            self._rows.remember(row)
            await self._rebuilder.finish(swap)
            await self._rows.progress(
                row, Stage.ROLE_DONE, "role packages installed", 100, complete=True, role=row.role
            )
        await self._prune_role_images(row)

    async def _prune_role_images(self, row: Container) -> None:
        """Remove the role's stale images now that this sandbox left one (best effort)."""
        role = self._catalog.find_role(row.role)
        try:
            image = self._catalog.image(row.image)
            if role is not None and role.installs:
                await self._images.remove_stale(image, role)
        except Exception:
            log.warning("removing stale images of role %s failed", row.role, exc_info=True)
