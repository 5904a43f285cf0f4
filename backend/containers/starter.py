"""The steps every path that brings a sandbox up shares (a start, a rebuild with new settings,
a reconcile that finds a sandbox running): find the row's container on Docker, choose the image
a new sandbox starts from, and record that the sandbox runs.

Used by the lifecycle, the settings changes and the reconciler, always under the container's
lock.
"""

from __future__ import annotations

from typing import Any

from backend.containers.repository import ContainerRepository
from backend.containers.roles import RoleInstaller, SandboxImage
from backend.db.models import Container, utcnow
from backend.docker_service import ContainerState, DockerService
from backend.errors import DockerUnavailable
from corral.shapes import EventType, RoleState, Stage, Status

# The message a sandbox's start event carries about its role, by role_state.
ROLE_MESSAGES = {
    RoleState.INSTALLED: "role packages installed",
    RoleState.FAILED: "role packages failed to install",
}


def failure_text(exc: BaseException) -> str:
    """An engine failure as the ``detail`` of an ``operation failed`` answer."""
    if isinstance(exc, DockerUnavailable):
        return "the Docker engine could not be reached"
    return str(exc) or exc.__class__.__name__


class SandboxStarter:
    def __init__(
        self, rows: ContainerRepository, docker: DockerService, roles: RoleInstaller
    ) -> None:
        self._rows = rows
        self._docker = docker
        self._roles = roles

    async def state(self, row: Container) -> ContainerState | None:
        """Docker's view of the row's container, found by its ID or, failing that, its name
        (a container found by name is the row's from now on)."""
        state = await self._docker.inspect(row.docker_id) if row.docker_id else None
        if state is None:
            state = await self._docker.inspect(row.docker_name)
            if state is not None and state.id != row.docker_id:
                await self._rows.save(row, docker_id=state.id)
        return state

    async def image_for(self, row: Container) -> SandboxImage:
        """The image a rebuild of ``row`` starts from (a missing role image is built now, with
        progress events)."""
        return await self._roles.image_for(row, self._roles.progress_for(row))

    async def mark_started(
        self,
        row: Container,
        image: SandboxImage | None,
        event: EventType = EventType.CONTAINER_STARTED,
        stamp: bool = True,
        **values: Any,
    ) -> Container:
        """Record a sandbox that now runs. ``image``: what a new sandbox was made from (None:
        the existing sandbox was started again). Runs under the container's lock.

        A new sandbox from its role image announces the rebuild as the contract has it, at
        once: the event says "role packages reinstalling", a ``container_updated`` follows
        with "role packages restored". The fallback installs in the background instead; a
        restarted sandbox resumes role work that a stop interrupted."""
        rows, roles = self._rows, self._roles
        if stamp:
            now = utcnow()
            values.update(started_at=now, last_used_at=now)
        if image is None:
            row = await rows.save(row, event, error=None, **values, **roles.restart_values(row))
            if row.status == Status.CONFIGURING:
                roles.schedule(row, "resume")
            return row
        if image.role_state == RoleState.INSTALLED:
            row = await rows.save(
                row,
                event,
                message="role packages reinstalling",
                error=None,
                status=Status.CONFIGURING,
                role_state=RoleState.INSTALLING,
                role_error=None,
                **values,
            )
            return await rows.save(
                row,
                EventType.CONTAINER_UPDATED,
                message="role packages restored",
                status=Status.RUNNING,
                role_state=RoleState.INSTALLED,
            )
        message = "role packages reinstalling" if image.installs_in_sandbox else None
        if image.role_state == RoleState.FAILED:
            message = ROLE_MESSAGES[RoleState.FAILED]
        row = await rows.save(row, event, message=message, error=None, **values, **image.values())
        if image.installs_in_sandbox:
            roles.schedule(row, "recreate")
        elif image.role_state == RoleState.FAILED:
            await self.role_failed_progress(row, image.role_error or "")
        return row

    async def role_failed_progress(self, row: Container, error: str) -> None:
        await self._rows.progress(
            row,
            Stage.ROLE_FAILED,
            f"the sandbox runs without role {row.role}: {error}",
            100,
            complete=True,
            role=row.role,
            error=error,
        )
