"""One role image's build: the packages made ready on the host, then a build container that
installs them offline and is committed as the image (steps 1-3 in
``backend.containers.role_images``, which decides when a build runs and who shares it).

The build container runs from the base image under ``role_build_runtime`` (runc: native speed,
not gVisor's ptrace) with no network and the host's package cache mounted read-only; apt's
status lines become progress. It is removed whatever happens; one left by a crash is removed by
the next build of the same image or by the sweep at the backend's start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from backend.containers.apt_install import INSTALL_SCRIPT, PACKAGES_MOUNT, InstallProgress
from backend.containers.packages import PackageCache, PrepareFailed
from backend.containers.role_image_identity import (
    ImageTarget,
    Progress,
    RoleImage,
    RoleImageFailed,
)
from backend.docker_service import DockerService, read_exec_output
from backend.errors import DockerError, DockerUnavailable, sanitize
from backend.settings import Settings
from corral.shapes import Stage

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.5


@dataclass
class SharedBuild:
    """One build in progress, shared by everyone who asked for its image: each listener gets
    every step, and one who joins late gets the last step at once."""

    listeners: list[Progress] = field(default_factory=list)
    last: tuple[Stage, str, int, dict[str, Any]] | None = None
    task: asyncio.Task[RoleImage] | None = None

    async def emit(self, stage: Stage, message: str, percent: int, **extra: Any) -> None:
        self.last = (stage, message, percent, extra)
        for listener in list(self.listeners):
            try:
                await listener(stage, message, percent, **extra)
            except Exception:
                log.exception("reporting role image progress failed")


class ImageBuilder:
    """The steps of one build, for ``RoleImages`` to run under its locks."""

    def __init__(self, settings: Settings, docker: DockerService, cache: PackageCache) -> None:
        self._settings = settings
        self._docker = docker
        self._cache = cache

    async def prepare_packages(self, target: ImageTarget, build: SharedBuild) -> None:
        """Download the role's packages into the host's cache, unless they are there."""
        role = target.role
        distribution = target.base.distribution
        if not role.packages:
            return
        if not distribution:
            raise RoleImageFailed(
                f"image {target.base.name} has no known distribution to download packages for"
            )
        try:
            self._cache.check_image(distribution, target.base_labels)
            if not self._cache.is_ready(distribution, role):
                await build.emit(
                    Stage.ROLE_DOWNLOAD,
                    f"downloading the packages of role {role.id} on the host",
                    0,
                )
                await self._cache.prepare(distribution, role)
        except PrepareFailed as exc:
            raise RoleImageFailed(str(exc)) from exc

    async def run(self, target: ImageTarget, build: SharedBuild) -> str:
        """Install the packages in a build container and commit it; the new image's ID."""
        docker = self._docker
        role = target.role
        name = target.build_name
        await docker.remove(name)  # an earlier build of this image, cut off by a crash
        binds: dict[str, dict[str, str]] = {}
        if target.base.distribution:
            source = self._cache.distribution_dir(target.base.distribution)
            binds[str(source)] = {"bind": PACKAGES_MOUNT, "mode": "ro"}
        command = ["/bin/sh", "-c", INSTALL_SCRIPT, "corral-role", role.id, *role.packages]
        container = await docker.create_build_container(
            name, target.base_id, command, self._settings.role_build_runtime, binds
        )
        try:
            await build.emit(Stage.ROLE_IMAGE, f"building the image of role {role.id}", 0)
            progress = await self._install(container, target, build)
            code = await docker.wait(container, 60)
            if code != 0:
                detail = "; ".join(dict.fromkeys(progress.errors or [])) or (
                    f"apt-get exited with code {code}"
                )
                raise RoleImageFailed(
                    sanitize(f"installing the packages of role {role.id} failed: {detail}")
                )
            await build.emit(Stage.ROLE_IMAGE, f"saving the image of role {role.id}", 99)
            changes = [f"LABEL {key}={json.dumps(value)}" for key, value in target.labels.items()]
            if target.base_cmd:
                changes.append(f"CMD {json.dumps(target.base_cmd)}")
            return await docker.commit(container, target.repository, target.tag, changes)
        finally:
            with contextlib.suppress(DockerError, DockerUnavailable):
                await docker.remove(container)

    async def _install(
        self, container: str, target: ImageTarget, build: SharedBuild
    ) -> InstallProgress:
        """Start the build container and follow apt's progress until it exits."""
        docker = self._docker
        timeout_s = self._settings.role_build_timeout_s

        async def still_running() -> bool:
            state = await docker.inspect(container)
            return state is not None and state.running

        progress = InstallProgress()
        sock = await docker.attach_output(container)
        try:
            await docker.start(container)
            last_sent = 0.0
            last_key: tuple[str | None, int] = (None, -1)
            pending = b""
            async with asyncio.timeout(timeout_s):
                async for chunk in read_exec_output(sock, 10.0, still_running):
                    *lines, pending = (pending + chunk).split(b"\n")
                    moved = False
                    for raw in lines:
                        moved |= progress.feed(raw.decode(errors="replace").rstrip("\r"))
                    key = (progress.package, int(progress.percent))
                    now = time.monotonic()
                    if moved and key != last_key and now - last_sent >= PROGRESS_INTERVAL_S:
                        last_sent, last_key = now, key
                        what = progress.package or progress.action or target.role.id
                        await build.emit(
                            Stage.ROLE_IMAGE,
                            f"installing {what} ({int(progress.percent)}%)",
                            int(progress.percent),
                            package=progress.package,
                        )
            if pending:
                progress.feed(pending.decode(errors="replace").rstrip("\r"))
        except TimeoutError as exc:
            raise RoleImageFailed(
                f"building the image of role {target.role.id} took longer than {timeout_s:.0f} s"
            ) from exc
        finally:
            sock.close()
        return progress
