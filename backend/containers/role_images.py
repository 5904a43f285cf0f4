"""Role images: each role's packages installed once per host, on top of its base image.

Why images: a role installed inside a sandbox runs dpkg under gVisor's ptrace platform, 10-100x
slower than on the host (the python role took two minutes), and every new sandbox (a settings
change, an automatic recreation) paid it again. Instead the host builds, once per (base image,
role), an image with the packages installed, and every sandbox of the role starts from it: the
role is there the moment the sandbox runs, and rebuilds reinstall nothing.

How an image is built (``backend.containers.role_image_build``), and why this way rather than
in a chroot: a container's commit is one layer on top of the base image, so the base's layers
are shared, not copied, and the engine tags it in one step.
1. The role's packages are downloaded into the host's package cache
   (``backend.containers.packages``), unless they are there already.
2. A short-lived build container from the base image runs under ``role_build_runtime`` (runc:
   native speed, not gVisor's ptrace) with no network and the cache mounted read-only, and
   installs them offline with apt (``backend.containers.apt_install``); apt's status lines
   become progress.
3. The exited container is committed as ``corral/role-<role>:<base>-<base id>-<packages>``,
   labelled with the base image's ID and the fingerprint of the package list, then removed.

Identity (``backend.containers.role_image_identity``): a rebuilt base image (new ID) or a
changed package list asks for a new tag, so a stale image is never used; once the new one
exists, the older images of the same role and base are removed (an image a sandbox still runs
from stays until that sandbox is rebuilt).

Concurrency and crashes: callers asking for the same image share one build and all get its
progress; builds of one image are serialized across processes (backends, the CLI) by a host-wide
file lock in ``lock_dir``, and the second builder finds the image made. The engine tags a commit
atomically, so a build killed at any point leaves no half-tagged image, only its build container,
which the next build of that image, or the sweep at the backend's start, removes.

Trust: the build runs the packages' maintainer scripts under runc rather than gVisor. They come
from the distribution's archive only, chosen by the operator's catalog (users choose roles, never
packages), and run with no network, ``no-new-privileges`` and Docker's default capabilities.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from backend.containers.catalog import Role
from backend.containers.packages import PackageCache
from backend.containers.role_image_build import ImageBuilder, SharedBuild
from backend.containers.role_image_identity import (
    BUILD_PREFIX,
    LABEL_BASE_IMAGE,
    LABEL_ROLE,
    LABEL_ROLE_IMAGE,
    ImageTarget,
    Progress,
    RoleImage,
    RoleImageFailed,
    labels_of,
)
from backend.docker_service import DockerService
from backend.errors import DockerConflict
from backend.settings import ImageSpec, Settings
from corral.shapes import Stage

__all__ = ["Progress", "RoleImage", "RoleImageFailed", "RoleImages"]

log = logging.getLogger(__name__)

# An engine without the build runtime is asked again after this long (its configuration may
# change), not on every create.
RUNTIME_RECHECK_S = 60.0


class RoleImages:
    def __init__(self, settings: Settings, docker: DockerService, cache: PackageCache) -> None:
        self._settings = settings
        self._docker = docker
        self._builder = ImageBuilder(settings, docker, cache)
        self._builds: dict[str, SharedBuild] = {}
        self._slots = asyncio.Semaphore(max(1, settings.role_installs))
        self._runtime_ok = False
        self._runtime_checked = -RUNTIME_RECHECK_S
        self._runtime_lock = asyncio.Lock()

    async def usable(self) -> bool:
        """Whether this engine can build role images (it has ``role_build_runtime``). Where it
        cannot, roles are installed in each sandbox instead (the fallback in
        ``backend.containers.roles``). Raises DockerUnavailable when the engine is down."""
        # Under a lock: two creates at once must not take the first's check in progress for
        # "no runtime" (seen: the second sandbox fell back to installing in the sandbox).
        async with self._runtime_lock:
            now = time.monotonic()
            if not self._runtime_ok and now >= self._runtime_checked + RUNTIME_RECHECK_S:
                runtimes = await self._docker.runtimes()
                self._runtime_checked = now
                self._runtime_ok = self._settings.role_build_runtime in runtimes
                if not self._runtime_ok:
                    log.warning(
                        "the engine has no %r runtime to build role images with; roles are "
                        "installed in each sandbox instead (slow under gVisor)",
                        self._settings.role_build_runtime,
                    )
        return self._runtime_ok

    # -- looking up ---------------------------------------------------------------------------

    async def _target(self, base: ImageSpec, role: Role) -> ImageTarget:
        details = await self._docker.image_details(base.reference)
        if details is None:
            raise RoleImageFailed(
                f"the base image {base.name} is not built on this host; an operator can build "
                "it with 'just images'"
            )
        return ImageTarget(
            base=base,
            base_id=str(details["Id"]),
            base_size=int(details.get("Size") or 0),
            base_cmd=((details.get("Config") or {}).get("Cmd")) or None,
            base_labels=labels_of(details),
            role=role,
        )

    async def _existing(self, target: ImageTarget) -> RoleImage | None:
        details = await self._docker.image_details(target.reference)
        if details is None or not target.made_by_us(labels_of(details)):
            return None
        return target.image(details)

    async def find(self, base: ImageSpec, role: Role) -> RoleImage | None:
        """The role's current image on ``base``, if it is built (one or two engine calls)."""
        return await self._existing(await self._target(base, role))

    # -- building -----------------------------------------------------------------------------

    async def ensure(
        self, base: ImageSpec, role: Role, progress: Progress | None = None, force: bool = False
    ) -> RoleImage:
        """The role's current image on ``base``, built first when it is missing or stale (or
        when ``force``). Concurrent callers share one build; each gets its progress. Raises
        RoleImageFailed with the reason, or the engine's errors."""
        target = await self._target(base, role)
        if not force:
            found = await self._existing(target)
            if found is not None:
                return found
        key = target.reference
        build = self._builds.get(key)
        if build is None:
            build = SharedBuild()
            task = asyncio.ensure_future(self._build(target, build, force))
            build.task = task
            self._builds[key] = build
            task.add_done_callback(functools.partial(self._build_done, key))
        assert build.task is not None
        if progress is not None:
            build.listeners.append(progress)
            if build.last is not None:
                stage, message, percent, extra = build.last
                await progress(stage, message, percent, **extra)
        try:
            return await asyncio.shield(build.task)
        finally:
            if progress is not None and progress in build.listeners:
                build.listeners.remove(progress)

    def _build_done(self, key: str, task: asyncio.Task[RoleImage]) -> None:
        current = self._builds.get(key)
        if current is not None and current.task is task:
            del self._builds[key]
        if not task.cancelled():
            task.exception()  # retrieved here: every waiter may have gone

    async def _build(self, target: ImageTarget, build: SharedBuild, force: bool) -> RoleImage:
        started = time.monotonic()
        role = target.role
        if self._slots.locked():
            await build.emit(Stage.ROLE_QUEUED, "waiting for another role image build to finish", 0)
        async with self._slots, self._host_lock(target.build_name, build):
            if not force:
                found = await self._existing(target)
                if found is not None:  # another process built it while we waited
                    return found
            await self._builder.prepare_packages(target, build)
            image_id = await self._builder.run(target, build)
        await self.remove_stale(target.base, role, keep=image_id)
        details = await self._docker.image_details(image_id)
        if details is None:
            raise RoleImageFailed(f"the {role.id} role image vanished right after its build")
        made = target.image(details, built=True, seconds=time.monotonic() - started)
        log.info(
            "built role image %s in %.1f s (%.0f MB beyond the base)",
            made.reference,
            made.seconds,
            made.extra_bytes / 1e6,
        )
        return made

    @asynccontextmanager
    async def _host_lock(self, name: str, build: SharedBuild) -> AsyncIterator[None]:
        """Hold ``<lock_dir>/<name>.lock`` (flock) for one image's build: every process on the
        host that builds it takes it. Polled, so a waiter can be cancelled."""
        self._settings.lock_dir.mkdir(parents=True, exist_ok=True)
        with (self._settings.lock_dir / f"{name}.lock").open("a") as handle:
            announced = False
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not announced:
                        announced = True
                        await build.emit(
                            Stage.ROLE_QUEUED, "another process is building this role image", 0
                        )
                    await asyncio.sleep(0.2)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- housekeeping -------------------------------------------------------------------------

    async def remove_stale(self, base: ImageSpec, role: Role, keep: str | None = None) -> int:
        """Remove the role's other images on ``base`` (older catalogs or base images); how
        many went. One that a container still uses stays, for a later call."""
        if keep is None:
            current = await self.find(base, role)
            if current is None:
                return 0
            keep = current.id
        rows = await self._docker.list_images(
            {LABEL_ROLE_IMAGE: "true", LABEL_ROLE: role.id, LABEL_BASE_IMAGE: base.reference}
        )
        removed = 0
        for row in rows:
            if row.get("Id") == keep:
                continue
            for reference in row.get("RepoTags") or [str(row["Id"])]:
                try:
                    removed += await self._docker.remove_image(reference)
                except DockerConflict:
                    log.info("keeping stale role image %s: a container still uses it", reference)
                    break
        return removed

    async def sweep(self) -> int:
        """Remove build containers left by a process that died mid-build (their lock is free);
        how many. Run at the backend's start."""
        removed = 0
        for state in await self._docker.list_named(BUILD_PREFIX):
            path = self._settings.lock_dir / f"{state.name}.lock"
            try:
                self._settings.lock_dir.mkdir(parents=True, exist_ok=True)
                with path.open("a") as handle:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    try:
                        removed += await self._docker.remove(state.id)
                    finally:
                        fcntl.flock(handle, fcntl.LOCK_UN)
            except BlockingIOError:
                continue  # a build runs now
        if removed:
            log.info(
                "removed %d build container(s) left by an interrupted role image build", removed
            )
        return removed
