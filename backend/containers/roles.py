"""A container's role: which image its sandbox starts from, and the background work that puts
a running sandbox on its role.

Normally a sandbox starts from its role image (``backend.containers.role_images``: the role's
packages installed once per host, at native speed), so the role is ``installed`` the moment the
sandbox runs, and every rebuild starts from the same image. ``image_for`` makes that choice for
every new sandbox (create, rebuilds, automatic recreation), building a missing image first.

Background work (``schedule``) is needed only when a running sandbox is not on its role:
- a reinstall (``POST .../role/reinstall``), or a reinstall cut off by a stop or a restart of
  the backend: the sandbox is recreated on the same volume from a freshly checked role image
  (the "switch", ``backend.containers.role_switch``);
- the fallback, where no role image can be made because the engine has no
  ``role_build_runtime`` (runc): the packages are installed inside the sandbox, slowly, as
  before role images existed (``backend.containers.role_install``).

Concurrency: background work never holds the container's lock while it waits (a build, an
install); it takes the lock only to write its outcome, and each write first checks that the row
still names the same Docker container and still expects this work ("pending"/"installing"). A
stop or a delete cancels the task; a rebuild replaces it. A stop leaves ``role_state``
"pending", and the next start resumes the work.

The installer reaches the containers only through two small protocols: ``RoleRows`` (read,
lock and write a row, report progress; ``backend.containers.role_state``) and ``SandboxSwitch``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from backend.containers.catalog import Catalog
from backend.containers.packages import PackageCache
from backend.containers.role_images import Progress, RoleImageFailed, RoleImages
from backend.containers.role_install import SandboxInstall
from backend.containers.role_state import RoleRows, current_row, stopped_values
from backend.db.models import Container
from backend.docker_service import ContainerState, DockerService
from backend.errors import sanitize
from backend.settings import Settings
from corral.aio import TaskOwner
from corral.shapes import ACTIVE_ROLE_STATES, EventType, RoleState, Stage, Status

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SandboxImage:
    """What a new sandbox of a row starts from, and the role's state once it runs."""

    reference: str
    role_state: RoleState  # none, installed, failed; pending: the fallback installs in the sandbox
    role_error: str | None = None
    packages_dir: Path | None = None  # the fallback mounts the host's package cache here

    @property
    def installs_in_sandbox(self) -> bool:
        return self.role_state == RoleState.PENDING

    def values(self) -> dict[str, Any]:
        """The row's values once a sandbox from this image runs."""
        return {
            "status": Status.CONFIGURING if self.installs_in_sandbox else Status.RUNNING,
            "role_state": self.role_state,
            "role_error": self.role_error,
        }


class SandboxSwitch(Protocol):
    """Recreate a running sandbox from its role image (``backend.containers.role_switch``)."""

    async def switch_sandbox(
        self, db_id: str, docker_id: str, image: SandboxImage, reason: str
    ) -> None: ...


@dataclass
class _Install:
    docker_id: str
    reason: str
    task: asyncio.Task[None]


class RoleInstaller:
    """Every container's role work: the image choice for new sandboxes, and at most one
    background task per container (at most ``settings.role_installs`` fallback installs at
    once: each is CPU-heavy under gVisor)."""

    def __init__(
        self,
        rows: RoleRows,
        switch: SandboxSwitch,
        catalog: Catalog,
        docker: DockerService,
        settings: Settings,
        cache: PackageCache,
        images: RoleImages,
    ) -> None:
        self._rows = rows
        self._switch = switch
        self._catalog = catalog
        self._docker = docker
        self._cache = cache
        self.images = images
        self.fallback = SandboxInstall(rows, catalog, docker, settings, cache)
        self._tasks: dict[str, _Install] = {}  # the install under way, by row
        self._owner = TaskOwner("role-install")
        self._slots = asyncio.Semaphore(max(1, settings.role_installs))

    # -- what the container services ask -----------------------------------------------------

    def wants_install(self, row: Container) -> bool:
        """Whether the row's role has packages. A role that is no longer in the catalog counts:
        its sandbox then says the role failed, rather than the tools vanishing without a word."""
        role = self._catalog.find_role(row.role)
        return role is None or role.installs

    async def image_for(
        self,
        row: Container,
        progress: Progress | None = None,
        announce: Callable[[], Awaitable[None]] | None = None,
    ) -> SandboxImage:
        """The image a new sandbox of ``row`` starts from: its role image (built first if it
        is missing or stale; ``announce`` is awaited once before such a build), the base image
        with the role failed (the reason in ``role_error``), or the base image with an install
        in the sandbox due (the fallback). Raises UnsupportedImage for an image no longer
        offered, and the engine's errors."""
        catalog = self._catalog
        base = catalog.image(row.image)
        role = catalog.find_role(row.role)
        if role is None:
            return SandboxImage(
                base.reference,
                RoleState.FAILED,
                f"role {row.role!r} is no longer offered on this host",
            )
        if not role.installs:
            return SandboxImage(base.reference, RoleState.NONE)
        if not base.distribution:
            return SandboxImage(
                base.reference,
                RoleState.FAILED,
                f"image {base.name!r} has no known distribution",
            )
        if not await self.images.usable():
            return SandboxImage(
                base.reference,
                RoleState.PENDING,
                packages_dir=self._cache.distribution_dir(base.distribution),
            )
        try:
            if announce is not None and await self.images.find(base, role) is None:
                await announce()
            built = await self.images.ensure(base, role, progress)
        except RoleImageFailed as exc:
            log.warning("the role image of %s (%s) failed: %s", row.id, role.id, exc)
            return SandboxImage(base.reference, RoleState.FAILED, str(exc)[:1024])
        return SandboxImage(built.reference, RoleState.INSTALLED)

    def progress_for(self, row: Container) -> Progress:
        """A build's progress as the row's ``container_progress`` events."""

        async def report(stage: Stage, message: str, percent: int, **extra: Any) -> None:
            await self._rows.progress(row, stage, message, percent, role=row.role, **extra)

        return report

    def restart_values(self, row: Container) -> dict[str, Any]:
        """The row values for its existing sandbox started again: work that a stop interrupted
        is resumed."""
        if row.role_state in ACTIVE_ROLE_STATES:
            return {"status": Status.CONFIGURING, "role_state": RoleState.PENDING}
        return {"status": Status.RUNNING}

    def stop_values(self, row: Container, state: ContainerState | None = None) -> dict[str, Any]:
        """Cancel the row's background work, if any; the row values for its sandbox having
        stopped. Work cut short is due again at the next start, unless the sandbox ran out of
        memory doing it (then it would only fail the same way: it is marked failed)."""
        self.cancel(row.id)
        return stopped_values(row, state)

    def schedule(self, row: Container, reason: str) -> None:
        """Put the row's running sandbox on its role in the background, replacing any work in
        progress."""
        assert row.docker_id is not None
        self.cancel(row.id)
        task = self._owner.spawn(self._run(row.id, row.docker_id, reason), f"role-{row.id}")
        self._tasks[row.id] = _Install(row.docker_id, reason, task)

    def cancel(self, db_id: str) -> None:
        """Cancel the row's task (never the calling task itself: work that schedules its own
        successor just ends)."""
        current = self._tasks.pop(db_id, None)
        if current is not None and current.task is not asyncio.current_task():
            current.task.cancel()

    def active(self, db_id: str, docker_id: str | None = None) -> bool:
        current = self._tasks.get(db_id)
        if current is None or current.task.done():
            return False
        return docker_id is None or current.docker_id == docker_id

    async def close(self) -> None:
        """At shutdown: stop waiting (an apt already running in a sandbox goes on by itself;
        the next start of the backend resumes or finishes the bookkeeping)."""
        self._tasks.clear()
        await self._owner.close()

    # -- the task -------------------------------------------------------------------------------

    async def _run(self, db_id: str, docker_id: str, reason: str) -> None:
        try:
            row = await current_row(self._rows, db_id, docker_id)
            if row is None:
                return
            choice = await self.image_for(row, self.progress_for(row))
            if choice.role_state == RoleState.FAILED:
                await self._finish(db_id, docker_id, reason, choice.role_error)
                return
            if not choice.installs_in_sandbox:
                await self._switch.switch_sandbox(db_id, docker_id, choice, reason)
                return
            if self._slots.locked():
                await self._rows.progress(
                    row,
                    Stage.ROLE_QUEUED,
                    "waiting for another role install to finish",
                    0,
                    role=row.role,
                )
            async with self._slots:
                outcome = await self.fallback.run(db_id, docker_id)
                if outcome is not None:
                    await self._finish(db_id, docker_id, reason, outcome.error, outcome.started_at)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("putting %s on its role failed unexpectedly", db_id)
            try:
                await self._finish(
                    db_id, docker_id, reason, sanitize(f"the install failed unexpectedly: {exc}")
                )
            except Exception:
                log.exception("recording the failed role install of %s failed", db_id)
        finally:
            current = self._tasks.get(db_id)
            if current is not None and current.task is asyncio.current_task():
                del self._tasks[db_id]

    async def _finish(
        self,
        db_id: str,
        docker_id: str,
        reason: str,
        error: str | None,
        started_at: str | None = None,
    ) -> None:
        """Write the outcome, if the row still expects this install. ``started_at``: when the
        sandbox had started as the install began; a sandbox started since (a rebuild that
        failed and restarted the old container) cut the install off, which is no failure of
        the role: it is installed again."""
        rows = self._rows
        async with rows.lock(db_id):
            row = await current_row(rows, db_id, docker_id)
            if row is None:
                return
            if error is None:
                message = (
                    "role packages restored" if reason == "recreate" else "role packages installed"
                )
                status = Status.RUNNING if row.status == Status.CONFIGURING else row.status
                row = await rows.save(
                    row,
                    EventType.CONTAINER_UPDATED,
                    message=message,
                    status=status,
                    role_state=RoleState.INSTALLED,
                    role_error=None,
                )
                await rows.progress(
                    row, Stage.ROLE_DONE, message, 100, complete=True, role=row.role
                )
                return
            state = await self._docker.inspect(docker_id)
            if state is None or not state.running:
                # The sandbox stopped under the install: the watcher reports the stop; the
                # install is due again at the next start (or failed, if memory ran out).
                values = stopped_values(row, state)
                if values:
                    await rows.save(row, EventType.CONTAINER_UPDATED, **values)
                return
            if started_at is not None and state.started_at != started_at:
                row = await rows.save(
                    row, EventType.CONTAINER_UPDATED, role_state=RoleState.PENDING
                )
                self.schedule(row, reason)
                return
            log.warning("role install of %s failed: %s", db_id, error)
            status = Status.RUNNING if row.status == Status.CONFIGURING else row.status
            row = await rows.save(
                row,
                EventType.CONTAINER_UPDATED,
                message="role packages failed to install",
                status=status,
                role_state=RoleState.FAILED,
                role_error=error[:1024],
            )
            await rows.progress(
                row,
                Stage.ROLE_FAILED,
                f"installing role {row.role} failed: {error}",
                100,
                complete=True,
                role=row.role,
                error=error,
            )
