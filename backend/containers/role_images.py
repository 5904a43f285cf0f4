"""Role images: each role's packages installed once per host, on top of its base image.

Why images: a role installed inside a sandbox runs dpkg under gVisor's ptrace platform, 10-100x
slower than on the host (the python role took two minutes), and every new sandbox (a settings
change, an automatic recreation) paid it again. Instead the host builds, once per (base image,
role), an image with the packages installed, and every sandbox of the role starts from it: the
role is there the moment the sandbox runs, and rebuilds reinstall nothing.

How an image is built, and why this way rather than in a chroot: a container's commit is one
layer on top of the base image, so the base's layers are shared, not copied, and the engine tags
it in one step.
1. The role's packages are downloaded into the host's package cache
   (``backend.containers.packages``), unless they are there already.
2. A short-lived build container from the base image runs under ``role_build_runtime`` (runc:
   native speed, not gVisor's ptrace) with no network and the cache mounted read-only, and
   installs them offline with apt (``backend.containers.apt_install``); apt's status lines
   become progress.
3. The exited container is committed as ``corral/role-<role>:<base>-<base id>-<packages>``,
   labelled with the base image's ID and the fingerprint of the package list, then removed.

Identity: a rebuilt base image (new ID) or a changed package list asks for a new tag, so a stale
image is never used; once the new one exists, the older images of the same role and base are
removed (an image a sandbox still runs from stays until that sandbox is rebuilt).

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
import contextlib
import fcntl
import functools
import hashlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from backend.containers.apt_install import INSTALL_SCRIPT, PACKAGES_MOUNT, InstallProgress
from backend.containers.catalog import Role
from backend.containers.packages import PackageCache, PrepareFailed
from backend.docker_service import DockerService, read_exec_output
from backend.errors import DockerConflict, DockerError, DockerUnavailable, sanitize
from backend.settings import ImageSpec, Settings
from corral.shapes import Stage

log = logging.getLogger(__name__)

# Bump when a build would put something else into an image: every role image is then rebuilt.
BUILDER_VERSION = "1"
REPOSITORY_PREFIX = "corral/role-"
BUILD_PREFIX = "corral-role-build-"
LABEL_ROLE_IMAGE = "corral.role-image"
LABEL_ROLE = "corral.role"
LABEL_BASE_ID = "corral.role.base-id"
LABEL_BASE_IMAGE = "corral.role.base-image"
LABEL_PACKAGES = "corral.role.packages"
LABEL_BUILDER = "corral.role.builder"
PROGRESS_INTERVAL_S = 0.5
# An engine without the build runtime is asked again after this long (its configuration may
# change), not on every create.
RUNTIME_RECHECK_S = 60.0


class Progress(Protocol):
    """Where a build reports what it does: ``container_progress`` events, or a terminal."""

    async def __call__(self, stage: Stage, message: str, percent: int, **extra: Any) -> None: ...


class RoleImageFailed(Exception):
    """A role image could not be built; the message says why (naming the package when apt
    could not find one) and is safe to show a user."""


def packages_fingerprint(role: Role) -> str:
    """SHA-256 of the role's package list, sorted: what the image holds."""
    return hashlib.sha256("\n".join(sorted(set(role.packages))).encode()).hexdigest()


@dataclass(frozen=True)
class RoleImage:
    """A ready role image."""

    role: str
    base: str  # the base image's reference
    reference: str
    id: str
    size_bytes: int
    base_size_bytes: int
    built: bool = False  # this call built it (False: it was there)
    seconds: float = 0.0

    @property
    def extra_bytes(self) -> int:
        """Disk the role adds beyond the base image (its layers are shared)."""
        return max(0, self.size_bytes - self.base_size_bytes)


@dataclass(frozen=True)
class _Target:
    """The role image a (base image, role) pair asks for now."""

    base: ImageSpec
    base_id: str
    base_size: int
    base_cmd: list[str] | None
    base_labels: dict[str, str]
    role: Role

    @property
    def fingerprint(self) -> str:
        return packages_fingerprint(self.role)

    @property
    def repository(self) -> str:
        return f"{REPOSITORY_PREFIX}{self.role.id}"

    @property
    def tag(self) -> str:
        name = self.base.name.lower().rsplit("/", 1)[-1]  # debian:bookworm
        slug = re.sub(r"[^a-z0-9]+", "-", name).strip("-")[:60]
        short_id = self.base_id.removeprefix("sha256:")[:12]
        return f"{slug}-{short_id}-{self.fingerprint[:12]}"

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tag}"

    @property
    def build_name(self) -> str:
        return f"{BUILD_PREFIX}{self.role.id}-{self.tag}"

    @property
    def labels(self) -> dict[str, str]:
        return {
            LABEL_ROLE_IMAGE: "true",
            LABEL_ROLE: self.role.id,
            LABEL_BASE_IMAGE: self.base.reference,
            LABEL_BASE_ID: self.base_id,
            LABEL_PACKAGES: self.fingerprint,
            LABEL_BUILDER: BUILDER_VERSION,
        }

    def made_by_us(self, labels: dict[str, str]) -> bool:
        return all(labels.get(key) == value for key, value in self.labels.items())

    def image(
        self, details: dict[str, Any], built: bool = False, seconds: float = 0.0
    ) -> RoleImage:
        return RoleImage(
            role=self.role.id,
            base=self.base.reference,
            reference=self.reference,
            id=str(details["Id"]),
            size_bytes=int(details.get("Size") or 0),
            base_size_bytes=self.base_size,
            built=built,
            seconds=seconds,
        )


@dataclass
class _Build:
    """One build in progress, shared by everyone who asked for its image."""

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


def _labels_of(details: dict[str, Any] | None) -> dict[str, str]:
    return dict(((details or {}).get("Config") or {}).get("Labels") or {})


class RoleImages:
    def __init__(self, settings: Settings, docker: DockerService, cache: PackageCache) -> None:
        self._settings = settings
        self._docker = docker
        self._cache = cache
        self._builds: dict[str, _Build] = {}
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

    async def _target(self, base: ImageSpec, role: Role) -> _Target:
        details = await self._docker.image_details(base.reference)
        if details is None:
            raise RoleImageFailed(
                f"the base image {base.name} is not built on this host; an operator can build "
                "it with 'just images'"
            )
        return _Target(
            base=base,
            base_id=str(details["Id"]),
            base_size=int(details.get("Size") or 0),
            base_cmd=((details.get("Config") or {}).get("Cmd")) or None,
            base_labels=_labels_of(details),
            role=role,
        )

    async def _existing(self, target: _Target) -> RoleImage | None:
        details = await self._docker.image_details(target.reference)
        if details is None or not target.made_by_us(_labels_of(details)):
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
            build = _Build()
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

    async def _build(self, target: _Target, build: _Build, force: bool) -> RoleImage:
        started = time.monotonic()
        role = target.role
        if self._slots.locked():
            await build.emit(Stage.ROLE_QUEUED, "waiting for another role image build to finish", 0)
        async with self._slots, self._host_lock(target.build_name, build):
            if not force:
                found = await self._existing(target)
                if found is not None:  # another process built it while we waited
                    return found
            await self._prepare_packages(target, build)
            image_id = await self._run_build(target, build)
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
    async def _host_lock(self, name: str, build: _Build) -> AsyncIterator[None]:
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

    async def _prepare_packages(self, target: _Target, build: _Build) -> None:
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

    async def _run_build(self, target: _Target, build: _Build) -> str:
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

    async def _install(self, container: str, target: _Target, build: _Build) -> InstallProgress:
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
