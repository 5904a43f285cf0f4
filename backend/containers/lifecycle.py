"""Start, stop and delete, each under the container's lock.

An unreachable engine (``DockerUnavailable``) aborts before the database changes. A container
Docker lost is rebuilt by start, from its row, on the same volume; limits changed while it was
stopped are applied by rebuilding it before it starts (``backend.containers.recreate``).
"""

from __future__ import annotations

import logging

from backend.auth.principal import Principal
from backend.containers.recreate import Rebuilder
from backend.containers.repository import ContainerRepository
from backend.containers.roles import RoleInstaller
from backend.containers.starter import SandboxStarter, failure_text
from backend.containers.volumes import VolumeManager, had_volume, lost_message
from backend.db.models import Container, utcnow
from backend.docker_service import ContainerState, DockerService
from backend.errors import (
    DockerError,
    DockerNotFound,
    GuestSessionExpired,
    OperationFailed,
    VolumeGone,
)
from backend.settings import Settings
from corral.shapes import RUNNING_STATUSES, Deleted, EventType, Status
from corral.shapes import Lifecycle as LifecycleAnswer

log = logging.getLogger(__name__)


class Lifecycle:
    def __init__(
        self,
        rows: ContainerRepository,
        *,
        settings: Settings,
        docker: DockerService,
        volumes: VolumeManager,
        rebuilder: Rebuilder,
        roles: RoleInstaller,
        starter: SandboxStarter,
    ) -> None:
        self._rows = rows
        self._settings = settings
        self._docker = docker
        self._volumes = volumes
        self._rebuilder = rebuilder
        self._roles = roles
        self._starter = starter

    async def docker_state_of(self, row: Container) -> ContainerState | None:
        """Docker's view of a container, for callers outside the lifecycle (terminals)."""
        return await self._docker.inspect(row.docker_id) if row.docker_id else None

    # -- start --------------------------------------------------------------------------------

    async def start(self, principal: Principal, ident: str) -> LifecycleAnswer:
        async with self._rows.held(principal, ident) as row:
            if principal.guest_session_over():
                state = await self._starter.state(row)
                if state is None or not state.running:
                    raise GuestSessionExpired()
            try:
                if row.needs_recreate:
                    return await self._rebuild_and_start(row)
                started = await self._start_existing(row)
                if started is None:
                    return await self._recreate_and_start(row)
            except VolumeGone as exc:
                # The volume can only have gone with its container: the row is missing, and
                # stays so (with the reason) rather than start on an empty volume.
                await self._rows.save(
                    row, EventType.CONTAINER_UPDATED, status=Status.MISSING, error=str(exc)
                )
                raise OperationFailed("failed to start container", str(exc)) from exc
            except DockerError as exc:
                await self._rows.save(row, error=failure_text(exc))
                raise OperationFailed("failed to start container", failure_text(exc)) from exc
            row = started[0]
            if not started[1]:
                if row.status not in RUNNING_STATUSES:
                    row = await self._starter.mark_started(row, None, stamp=False)
                return _lifecycle_body("container already running", row)
            row = await self._starter.mark_started(row, None)
            return _lifecycle_body("container started", row)

    async def _start_existing(self, row: Container) -> tuple[Container, bool] | None:
        """Start the row's Docker container: (row, whether it changed), or None when Docker has
        no such container. The engine's own answer (304) tells "already running" apart, so the
        common path is one engine call."""
        if row.docker_id is not None:
            try:
                return row, await self._docker.start(row.docker_id)
            except DockerNotFound:
                pass
        state = await self._starter.state(row)
        if state is None:
            return None
        return row, await self._docker.start(state.id)

    async def _recreate_and_start(self, row: Container) -> LifecycleAnswer:
        """Rebuild a container Docker lost, from its row, on the same volume. When the volume
        is gone too, the contract's answer says so (``volume_kept: false``), and so do a
        ``warning`` and the log: the data's loss is never passed over in silence."""
        old_id = row.docker_id
        image = await self._starter.image_for(row)
        had = had_volume(row)
        volume_kept = await self._volumes.ensure(row)
        lost = lost_message(row.volume_name) if had and not volume_kept else None
        if lost is not None:
            log.warning("container %s: %s", row.id, lost)
        docker_id = await self._rebuilder.create(row, image)
        try:
            await self._docker.start(docker_id)
        except DockerError:
            await self._rows.save(row, docker_id=docker_id, status=Status.STOPPED)
            raise
        row = await self._starter.mark_started(row, image, docker_id=docker_id)
        body = _lifecycle_body("container started", row)
        if old_id is not None:
            body = _lifecycle_body("container recreated and started", row)
            body["old_id"] = old_id
            body["recreated"] = True
            body["volume_kept"] = volume_kept
        if lost is not None:
            body["warning"] = lost
        return body

    async def _rebuild_and_start(self, row: Container) -> LifecycleAnswer:
        """Apply limits changed while the container was stopped: rebuild it, then start."""
        old = await self._starter.state(row)
        image = await self._starter.image_for(row)
        swap = await self._rebuilder.swap(row, row, old, start=True, image=image)
        row = await self._starter.mark_started(
            row, image, docker_id=swap.new_id, needs_recreate=False
        )
        await self._rebuilder.finish(swap)
        return _lifecycle_body("container started", row)

    # -- stop and delete ----------------------------------------------------------------------

    async def stop(self, principal: Principal, ident: str) -> LifecycleAnswer:
        rows, roles = self._rows, self._roles
        async with rows.held(principal, ident) as row:
            target = row.docker_id or row.docker_name
            try:
                changed = await self._docker.stop(target, self._settings.stop_timeout_s)
            except DockerNotFound:
                if row.docker_id is not None and row.status != Status.MISSING:
                    row = await rows.save(
                        row,
                        EventType.CONTAINER_UPDATED,
                        status=Status.MISSING,
                        **roles.stop_values(row),
                    )
                return _lifecycle_body("container already stopped", row)
            except DockerError as exc:
                raise OperationFailed("failed to stop container", failure_text(exc)) from exc
            if not changed:
                if row.status in RUNNING_STATUSES:
                    row = await rows.save(
                        row,
                        EventType.CONTAINER_STOPPED,
                        status=Status.STOPPED,
                        **roles.stop_values(row),
                    )
                return _lifecycle_body("container already stopped", row)
            row = await rows.save(
                row,
                EventType.CONTAINER_STOPPED,
                status=Status.STOPPED,
                last_used_at=utcnow(),
                **roles.stop_values(row),
            )
            return _lifecycle_body("container stopped", row)

    async def delete(self, principal: Principal, ident: str, keep_volume: bool) -> Deleted:
        async with self._rows.held(principal, ident) as row:
            self._roles.cancel(row.id)
            try:
                if row.docker_id:
                    await self._docker.remove(row.docker_id)
                await self._docker.remove(row.docker_name)
                if not keep_volume:
                    await self._volumes.remove(row)
                kept = keep_volume and await self._volumes.exists(row)
                size_mb = await self._volumes.size_mb(row) if kept else None
            except DockerError as exc:
                raise OperationFailed("failed to delete container", failure_text(exc)) from exc
            payload = {**row.as_json(), "status": Status.DELETED, "volume_kept": keep_volume}
            await self._rows.remove(row, payload, keep=kept, size_mb=size_mb)
        return {
            "message": "container deleted",
            "id": row.public_id,
            "db_id": row.id,
            "name": row.name,
            "volume_kept": keep_volume,
        }


def _lifecycle_body(message: str, row: Container) -> LifecycleAnswer:
    """The contract's answer to start and stop. A sandbox whose role is still installing runs
    (``configuring`` in the container object), so start says ``running`` as the contract has it."""
    status = Status.STOPPED if row.status in (Status.STOPPED, Status.ERROR) else Status(row.status)
    if status == Status.CONFIGURING:
        status = Status.RUNNING
    return {"message": message, "id": row.public_id, "name": row.name, "status": status}
