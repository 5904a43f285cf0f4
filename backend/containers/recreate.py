"""Rebuilding a sandbox with new limits without ever losing the old one first.

gVisor cannot change a live container's resources (runsc has no ``update``), so a change of
memory, CPU or disk builds a new container on the same volume. The order makes every failure
recoverable:

1. rename the old container aside (``corral-<db_id>-old-<time>``) and stop it;
2. resize the volume if the disk changed (offline: nothing runs on it now);
3. create the new container under the real name, and start it if the old one ran;
4. the caller commits the new Docker ID to the database: this is the point of no return;
5. remove the old container.

If 2 or 3 fails, the new container is removed, the volume is sized back, the old container gets
its name back and is started again if it ran. If the backend dies on the way, ``recover`` (run by
the reconciler at the next start) finishes or rolls back by what the database says: a row still
pointing at the aside container was never committed, so it is rolled back; otherwise the aside
container is a leftover to remove. Either way exactly one container remains, on the same data.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from backend.containers.apt_install import PACKAGES_MOUNT
from backend.containers.sandbox import sandbox_spec
from backend.containers.volumes import VolumeManager
from backend.db.models import Container
from backend.docker_service import ContainerState, DockerService
from backend.errors import DockerError, DockerNotFound
from backend.settings import Settings
from corral.shapes import Status

if TYPE_CHECKING:
    from backend.containers.roles import SandboxImage

log = logging.getLogger(__name__)

ASIDE_MARK = "-old-"


def aside_name(row: Container) -> str:
    return f"{row.docker_name}{ASIDE_MARK}{int(time.time() * 1000)}"


def is_aside(row: Container, name: str) -> bool:
    return name.startswith(f"{row.docker_name}{ASIDE_MARK}")


@dataclass(frozen=True)
class Swap:
    """A rebuilt container, not yet committed: ``finish`` removes the old one afterwards."""

    new_id: str
    old: ContainerState | None


class Rebuilder:
    def __init__(
        self,
        settings: Settings,
        docker: DockerService,
        volumes: VolumeManager,
        instance: str,
    ) -> None:
        self._settings = settings
        self._docker = docker
        self._volumes = volumes
        self._instance = instance

    async def create(self, row: Container, image: SandboxImage) -> str:
        """A new Docker container for ``row`` from ``image`` (not started).

        Where the role is installed in the sandbox (the fallback when no role image can be
        made), the host's package cache for the image's distribution is mounted read-only: the
        folder exists before its packages are downloaded, since a bind mount is fixed when the
        container is created."""
        binds: dict[str, dict[str, str]] = {}
        if image.packages_dir is not None:
            binds[str(image.packages_dir)] = {"bind": PACKAGES_MOUNT, "mode": "ro"}
        spec = sandbox_spec(row, self._settings, self._instance, image.reference, extra_binds=binds)
        return await self._docker.create_container(spec)

    async def swap(
        self,
        current: Container,
        target: Container,
        old: ContainerState | None,
        start: bool,
        image: SandboxImage,
    ) -> Swap:
        """Build ``target`` (the row with its new values) in place of ``old``; see the module doc.

        Raises the failing step's error after putting everything back as it was."""
        was_running = old is not None and old.running
        if old is not None:
            await self._docker.rename(old.id, aside_name(current))
            if old.running:
                await self._docker.stop(old.id, self._settings.stop_timeout_s)
        new_id: str | None = None
        resized = False
        try:
            if target.disk_mb != current.disk_mb:
                resized = True
                await self._volumes.resize(target, target.disk_mb)
            await self._volumes.ensure(target)
            new_id = await self.create(target, image)
            if start:
                await self._docker.start(new_id)
        except BaseException:
            await self._roll_back(current, old, new_id, resized, was_running)
            raise
        return Swap(new_id=new_id, old=old)

    async def _roll_back(
        self,
        current: Container,
        old: ContainerState | None,
        new_id: str | None,
        resized: bool,
        was_running: bool,
    ) -> None:
        try:
            if new_id is not None:
                await self._docker.remove(new_id)
            await self._docker.remove(current.docker_name)
            if resized:
                await self._volumes.resize(current, current.disk_mb)
            if old is not None:
                await self._docker.rename(old.id, current.docker_name)
                if was_running:
                    await self._docker.start(old.id)
        except Exception:
            log.exception(
                "rolling back the rebuild of %s failed; the reconciler will retry", current.id
            )

    async def finish(self, swap: Swap) -> None:
        """After the commit: remove the old container (a failure leaves it for the reconciler)."""
        if swap.old is not None:
            try:
                await self._docker.remove(swap.old.id)
            except DockerError:
                log.warning(
                    "could not remove the old container %s; it will be retried", swap.old.id[:12]
                )

    async def recover(self, row: Container, states: list[ContainerState]) -> ContainerState | None:
        """Finish or roll back a rebuild the backend died in; the container that remains."""
        asides = [s for s in states if is_aside(row, s.name)]
        primary = next((s for s in states if s.name == row.docker_name), None)
        if not asides:
            return primary
        committed = (
            row.docker_id is not None
            and any(s.id == row.docker_id for s in states)
            and all(s.id != row.docker_id for s in asides)
        )
        if committed:
            for state in asides:
                await self._docker.remove(state.id)
            return primary
        # Never committed: the database still names the old container. Put it back.
        old = next((s for s in asides if s.id == row.docker_id), asides[-1])
        if primary is not None:
            await self._docker.remove(primary.id)
        for state in asides:
            if state.id != old.id:
                await self._docker.remove(state.id)
        size = await self._volumes.size_mb(row)
        if size is not None and size != row.disk_mb:
            await self._volumes.resize(row, row.disk_mb)
        await self._docker.rename(old.id, row.docker_name)
        if row.status == Status.RUNNING:
            try:
                await self._docker.start(old.id)
            except DockerNotFound:
                return None
        return await self._docker.inspect(old.id)
