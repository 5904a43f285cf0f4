"""A container's role: which image its sandbox starts from, and the background work that puts
a running sandbox on its role.

Normally a sandbox starts from its role image (``backend.containers.role_images``: the role's
packages installed once per host, at native speed), so the role is ``installed`` the moment the
sandbox runs, and every rebuild starts from the same image. ``image_for`` makes that choice for
every new sandbox (create, rebuilds, automatic recreation), building a missing image first.

Background work (``schedule``) is needed only when a running sandbox is not on its role:
- a reinstall (``POST .../role/reinstall``), or a reinstall cut off by a stop or a restart of
  the backend: the sandbox is recreated on the same volume from a freshly checked role image
  (the "switch", ``ContainerService.switch_sandbox``);
- the fallback, where no role image can be made because the engine has no
  ``role_build_runtime`` (runc): the packages are installed inside the sandbox, slowly, as
  before role images existed. The host downloads them into its package cache, and in the
  sandbox a script (``backend.containers.apt_install``) installs them offline with apt, whose
  status lines become ``container_progress`` events. It runs as root with HOME=/root in /,
  never in /home/user, and logs to /var/log/corral-role.log inside the sandbox.

Concurrency: background work never holds the container's lock while it waits (a build, an
install); it takes the lock only to write its outcome, and each write first checks that the row
still names the same Docker container and still expects this work ("pending"/"installing"). A
stop or a delete cancels the task; a rebuild replaces it. A stop leaves ``role_state``
"pending", and the next start resumes the work.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backend.containers.apt_install import INSTALL_SCRIPT, InstallProgress
from backend.containers.catalog import Role
from backend.containers.packages import PackageCache, PrepareFailed
from backend.containers.role_images import Progress, RoleImageFailed, RoleImages
from backend.db.models import Container
from backend.docker_service import ContainerState, read_exec_output
from backend.errors import DockerError, DockerUnavailable, UnsupportedImage, sanitize
from corral.shapes import ACTIVE_ROLE_STATES, EventType, RoleState, Stage, Status

if TYPE_CHECKING:
    from backend.containers.service import ContainerService

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


@dataclass
class _Install:
    docker_id: str
    reason: str
    task: asyncio.Task[None]


class RoleInstaller:
    """Every container's role work: the image choice for new sandboxes, and at most one
    background task per container (at most ``settings.role_installs`` fallback installs at
    once: each is CPU-heavy under gVisor)."""

    def __init__(self, service: ContainerService, cache: PackageCache, images: RoleImages) -> None:
        self._service = service
        self._cache = cache
        self.images = images
        self._settings = service.settings
        self._tasks: dict[str, _Install] = {}
        self._slots = asyncio.Semaphore(max(1, self._settings.role_installs))
        self.progress_interval_s = 1.0

    # -- what the container service asks ------------------------------------------------------

    def wants_install(self, row: Container) -> bool:
        """Whether the row's role has packages. A role that is no longer in the catalog counts:
        its sandbox then says the role failed, rather than the tools vanishing without a word."""
        role = self._service.catalog.find_role(row.role)
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
        catalog = self._service.catalog
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
            await self._service._progress(row, stage, message, percent, role=row.role, **extra)

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
        return _stopped_values(row, state)

    def schedule(self, row: Container, reason: str) -> None:
        """Put the row's running sandbox on its role in the background, replacing any work in
        progress."""
        assert row.docker_id is not None
        self.cancel(row.id)
        task = asyncio.ensure_future(self._run(row.id, row.docker_id, reason))
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
        tasks = [install.task for install in self._tasks.values()]
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- the task -------------------------------------------------------------------------------

    async def _run(self, db_id: str, docker_id: str, reason: str) -> None:
        try:
            row = await self._current(db_id, docker_id)
            if row is None:
                return
            choice = await self.image_for(row, self.progress_for(row))
            if choice.role_state == RoleState.FAILED:
                await self._finish(db_id, docker_id, reason, choice.role_error)
                return
            if not choice.installs_in_sandbox:
                await self._service.switch_sandbox(db_id, docker_id, choice, reason)
                return
            if self._slots.locked():
                await self._service._progress(
                    row,
                    Stage.ROLE_QUEUED,
                    "waiting for another role install to finish",
                    0,
                    role=row.role,
                )
            async with self._slots:
                await self._install(db_id, docker_id, reason)
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

    async def _current(self, db_id: str, docker_id: str) -> Container | None:
        """The row, if it still expects this install in this sandbox."""
        async with self._service.sessions() as session:
            row = await session.get(Container, db_id)
        if row is None or row.docker_id != docker_id or row.role_state not in ACTIVE_ROLE_STATES:
            return None
        return row

    async def _install(self, db_id: str, docker_id: str, reason: str) -> None:
        service = self._service
        row = await self._current(db_id, docker_id)
        if row is None:
            return
        role = service.catalog.find_role(row.role)
        if role is None:
            await self._finish(
                db_id, docker_id, reason, f"role {row.role!r} is no longer offered on this host"
            )
            return
        try:
            image = service.catalog.image(row.image)
        except UnsupportedImage:
            await self._finish(
                db_id, docker_id, reason, f"image {row.image!r} is no longer offered on this host"
            )
            return
        if not image.distribution:
            await self._finish(
                db_id, docker_id, reason, f"image {image.name!r} has no known distribution"
            )
            return
        try:
            details = await service.docker.image_details(image.reference)
            labels = ((details or {}).get("Config") or {}).get("Labels") or {}
            self._cache.check_image(image.distribution, labels)
        except PrepareFailed as exc:
            await self._finish(db_id, docker_id, reason, str(exc))
            return
        if not self._cache.is_ready(image.distribution, role):
            await service._progress(
                row,
                Stage.ROLE_DOWNLOAD,
                f"downloading the packages of role {role.id} on the host",
                0,
                role=role.id,
            )
            try:
                await self._cache.prepare(image.distribution, role)
            except PrepareFailed as exc:
                if not self._sandbox_has_network(row):
                    await self._finish(db_id, docker_id, reason, str(exc))
                    return
                log.warning("%s; the sandbox will try its distribution's mirrors", exc)

        async with service.locks.hold(db_id):
            row = await self._current(db_id, docker_id)
            if row is None:
                return
            state = await service.docker.inspect(docker_id)
            row = await service.save(
                row, EventType.CONTAINER_UPDATED, role_state=RoleState.INSTALLING
            )

        error = await self._exec(row, role, docker_id)
        await self._finish(db_id, docker_id, reason, error, state.started_at if state else None)

    def _sandbox_has_network(self, row: Container) -> bool:
        return row.runtime != "runsc" or self._settings.sandbox_network != "none"

    async def _exec(self, row: Container, role: Role, docker_id: str) -> str | None:
        """Run the install script in the sandbox, reporting progress; None on success, else
        the reason it failed."""
        docker = self._service.docker
        environment = {"DEBIAN_FRONTEND": "noninteractive", "HOME": "/root"}
        command = ["/bin/sh", "-c", INSTALL_SCRIPT, "corral-role", role.id, *role.packages]
        progress = InstallProgress()
        await self._service._progress(
            row, Stage.ROLE_INSTALL, f"installing role {role.id}", 0, role=role.id
        )
        try:
            exec_id, sock = await docker.exec_stream(docker_id, command, environment, "/", "root")
        except (DockerError, DockerUnavailable) as exc:
            return f"the install could not be started in the sandbox: {exc}"

        async def still_running() -> bool:
            try:
                running, _ = await docker.exec_state(exec_id)
                state = await docker.inspect(docker_id)
            except (DockerError, DockerUnavailable):
                return False
            return running and state is not None and state.running

        last_sent = 0.0
        last_key: tuple[str | None, int] = (None, -1)
        pending = b""
        try:
            async with asyncio.timeout(self._settings.role_install_timeout_s):
                async for chunk in read_exec_output(sock, 10.0, still_running):
                    pending += chunk
                    *lines, rest = pending.split(b"\n")
                    pending = rest
                    moved = False
                    for raw in lines:
                        moved |= progress.feed(raw.decode(errors="replace").rstrip("\r"))
                    key = (progress.package, int(progress.percent))
                    now = time.monotonic()
                    if moved and key != last_key and now - last_sent >= self.progress_interval_s:
                        last_sent, last_key = now, key
                        await self._report(row, role, progress)
        except TimeoutError:
            return (
                f"the install took longer than {self._settings.role_install_timeout_s:.0f} s "
                "and was abandoned"
            )
        finally:
            sock.close()
        if pending:
            progress.feed(pending.decode(errors="replace").rstrip("\r"))
        code = await self._exit_code(exec_id)
        if code == 0:
            return None
        detail = "; ".join(dict.fromkeys(progress.errors or [])) or (
            f"apt-get exited with code {code}" if code is not None else "the install was cut off"
        )
        return sanitize(f"installing the packages of role {role.id} failed: {detail}")

    async def _report(self, row: Container, role: Role, progress: InstallProgress) -> None:
        what = f"installing {progress.package}" if progress.package else progress.action
        await self._service._progress(
            row,
            Stage.ROLE_INSTALL,
            f"{what} ({int(progress.percent)}%)" if what else f"installing role {role.id}",
            int(progress.percent),
            role=role.id,
            package=progress.package,
        )

    async def _exit_code(self, exec_id: str) -> int | None:
        """The exec's exit code once Docker has recorded it (it may lag the stream's end)."""
        for _ in range(50):
            try:
                running, code = await self._service.docker.exec_state(exec_id)
            except (DockerError, DockerUnavailable):
                return None
            if not running:
                return code
            await asyncio.sleep(0.1)  # Docker records the exit just after the stream closes
        return None

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
        service = self._service
        async with service.locks.hold(db_id):
            row = await self._current(db_id, docker_id)
            if row is None:
                return
            if error is None:
                message = (
                    "role packages restored" if reason == "recreate" else "role packages installed"
                )
                status = Status.RUNNING if row.status == Status.CONFIGURING else row.status
                row = await service.save(
                    row,
                    EventType.CONTAINER_UPDATED,
                    message=message,
                    status=status,
                    role_state=RoleState.INSTALLED,
                    role_error=None,
                )
                await service._progress(
                    row, Stage.ROLE_DONE, message, 100, complete=True, role=row.role
                )
                return
            state = await service.docker.inspect(docker_id)
            if state is None or not state.running:
                # The sandbox stopped under the install: the watcher reports the stop; the
                # install is due again at the next start (or failed, if memory ran out).
                values = _stopped_values(row, state)
                if values:
                    await service.save(row, EventType.CONTAINER_UPDATED, **values)
                return
            if started_at is not None and state.started_at != started_at:
                row = await service.save(
                    row, EventType.CONTAINER_UPDATED, role_state=RoleState.PENDING
                )
                self.schedule(row, reason)
                return
            log.warning("role install of %s failed: %s", db_id, error)
            status = Status.RUNNING if row.status == Status.CONFIGURING else row.status
            row = await service.save(
                row,
                EventType.CONTAINER_UPDATED,
                message="role packages failed to install",
                status=status,
                role_state=RoleState.FAILED,
                role_error=error[:1024],
            )
            await service._progress(
                row,
                Stage.ROLE_FAILED,
                f"installing role {row.role} failed: {error}",
                100,
                complete=True,
                role=row.role,
                error=error,
            )


def _stopped_values(row: Container, state: ContainerState | None) -> dict[str, Any]:
    if row.role_state not in ACTIVE_ROLE_STATES:
        return {}
    if state is not None and state.oom_killed:
        return {"role_state": RoleState.FAILED, "role_error": OOM_REASON}
    return {"role_state": RoleState.PENDING}


OOM_REASON = (
    "the sandbox ran out of memory while installing the role's packages; give it more memory "
    "(settings), then reinstall the role"
)
