"""The fallback: a role's packages installed inside a running sandbox.

Used only when no role image can be made because the engine has no ``role_build_runtime``
(runc). The host downloads the packages into its package cache, and in the sandbox a script
(``backend.containers.apt_install``) installs them offline with apt, whose status lines become
``container_progress`` events. It runs as root with HOME=/root in /, never in /home/user, and
logs to /var/log/corral-role.log inside the sandbox.

``RoleInstaller`` runs it (at most ``settings.role_installs`` at once) and writes its outcome;
this module never holds the container's lock while it waits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from backend.containers.apt_install import INSTALL_SCRIPT, InstallProgress
from backend.containers.catalog import Catalog, Role
from backend.containers.packages import PackageCache, PrepareFailed
from backend.containers.role_state import RoleRows, current_row
from backend.db.models import Container
from backend.docker_service import DockerService, read_exec_output
from backend.errors import DockerError, DockerUnavailable, UnsupportedImage, sanitize
from backend.settings import Settings
from corral.shapes import EventType, RoleState, Stage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InstallOutcome:
    """How an install ended: ``error`` None on success, else why it failed; ``started_at``:
    when the sandbox had started as the install began (None when it never began)."""

    error: str | None
    started_at: str | None = None


class SandboxInstall:
    def __init__(
        self,
        rows: RoleRows,
        catalog: Catalog,
        docker: DockerService,
        settings: Settings,
        cache: PackageCache,
    ) -> None:
        self._rows = rows
        self._catalog = catalog
        self._docker = docker
        self._settings = settings
        self._cache = cache
        self.progress_interval_s = 1.0

    async def run(self, db_id: str, docker_id: str) -> InstallOutcome | None:
        """Install the row's role in its sandbox; None when the row no longer expects it."""
        row = await current_row(self._rows, db_id, docker_id)
        if row is None:
            return None
        role = self._catalog.find_role(row.role)
        if role is None:
            return InstallOutcome(f"role {row.role!r} is no longer offered on this host")
        try:
            image = self._catalog.image(row.image)
        except UnsupportedImage:
            return InstallOutcome(f"image {row.image!r} is no longer offered on this host")
        if not image.distribution:
            return InstallOutcome(f"image {image.name!r} has no known distribution")
        try:
            details = await self._docker.image_details(image.reference)
            labels = ((details or {}).get("Config") or {}).get("Labels") or {}
            self._cache.check_image(image.distribution, labels)
        except PrepareFailed as exc:
            return InstallOutcome(str(exc))
        if not self._cache.is_ready(image.distribution, role):
            await self._rows.progress(
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
                    return InstallOutcome(str(exc))
                log.warning("%s; the sandbox will try its distribution's mirrors", exc)

        async with self._rows.lock(db_id):
            row = await current_row(self._rows, db_id, docker_id)
            if row is None:
                return None
            state = await self._docker.inspect(docker_id)
            row = await self._rows.save(
                row, EventType.CONTAINER_UPDATED, role_state=RoleState.INSTALLING
            )

        error = await self._exec(row, role, docker_id)
        return InstallOutcome(error, state.started_at if state else None)

    def _sandbox_has_network(self, row: Container) -> bool:
        return row.runtime != "runsc" or self._settings.sandbox_network != "none"

    async def _exec(self, row: Container, role: Role, docker_id: str) -> str | None:
        """Run the install script in the sandbox, reporting progress; None on success, else
        the reason it failed."""
        docker = self._docker
        environment = {"DEBIAN_FRONTEND": "noninteractive", "HOME": "/root"}
        command = ["/bin/sh", "-c", INSTALL_SCRIPT, "corral-role", role.id, *role.packages]
        progress = InstallProgress()
        await self._rows.progress(
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
        await self._rows.progress(
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
                running, code = await self._docker.exec_state(exec_id)
            except (DockerError, DockerUnavailable):
                return None
            if not running:
                return code
            await asyncio.sleep(0.1)  # Docker records the exit just after the stream closes
        return None
