"""Creating a container: the request checked and stored at once (202), the sandbox built and
started in the background, reporting ``container_progress`` events.

A create is serialized per user (the tier's container limit and its disk, containers and kept
volumes together, are counted under that user's lock), and an unreachable engine never leaves a
half-made row behind unannounced: the row says ``error`` with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
from dataclasses import dataclass
from typing import Any

from backend.auth.principal import Principal
from backend.containers.catalog import Catalog
from backend.containers.kept import KeptVolumes, missing_message
from backend.containers.recreate import Rebuilder
from backend.containers.repository import ContainerRepository
from backend.containers.resources import check_disk_budget, check_resources
from backend.containers.roles import RoleInstaller, SandboxImage
from backend.containers.starter import ROLE_MESSAGES, SandboxStarter, failure_text
from backend.containers.volumes import VolumeManager
from backend.db.models import Container, new_id, utcnow, volume_name
from backend.docker_service import DockerService
from backend.errors import (
    ContainerLimitReached,
    ContainerNotFound,
    DockerError,
    DockerUnavailable,
    GuestSessionExpired,
    InvalidParameters,
    RetryLater,
    VolumeNotFound,
)
from backend.settings import Settings, TierLimits
from corral.aio import TaskOwner
from corral.shapes import ContainerCreate, EventType, RoleState, Stage, Status

log = logging.getLogger(__name__)


@dataclass
class CreateResult:
    container: Container
    task: asyncio.Task[None]


class Provisioner:
    def __init__(
        self,
        rows: ContainerRepository,
        *,
        settings: Settings,
        docker: DockerService,
        catalog: Catalog,
        volumes: VolumeManager,
        kept: KeptVolumes,
        rebuilder: Rebuilder,
        roles: RoleInstaller,
        starter: SandboxStarter,
        engine: str,
    ) -> None:
        self._engine = engine  # the engine its rows are placed on (backend.engines chose it)
        self._rows = rows
        self._settings = settings
        self._docker = docker
        self._catalog = catalog
        self._volumes = volumes
        self._kept = kept
        self._rebuilder = rebuilder
        self._roles = roles
        self._starter = starter
        self._tasks = TaskOwner("provision")
        self._provisioning: set[str] = set()  # rows whose create runs in the background

    def is_provisioning(self, db_id: str) -> bool:
        """Whether the row's create still runs here (a reconcile must not call it interrupted)."""
        return db_id in self._provisioning

    # -- the request --------------------------------------------------------------------------

    async def create(self, principal: Principal, fields: ContainerCreate) -> CreateResult:
        """Store the new row (announced as ``container_created``) and build its sandbox in the
        background. ``fields`` passed their shape's checks; what depends on configuration (the
        catalog, the tier, the caller's kept volumes) is checked here."""
        if principal.guest_session_over():
            raise GuestSessionExpired()
        tier = self._settings.tier(principal.user.tier)
        row = await self._new_row(principal, fields, tier)
        volume = fields.get("volume")

        async with self._rows.user_lock(principal.user_id):
            usage = await self._rows.usage_of(principal.user_id)
            if usage.containers >= tier.containers:
                raise ContainerLimitReached(
                    f"The {tier.name} tier allows {tier.containers} container(s); delete one "
                    "first.",
                    current=usage.containers,
                    limit=tier.containers,
                    tier=tier.name,
                )
            async with self._kept.held(volume) if volume else contextlib.nullcontext():
                # An attached kept volume stops counting as kept: the container's disk replaces it.
                freed = (await self._kept.size_of(principal.user_id, volume)) if volume else 0
                check_disk_budget(tier, usage, row.disk_mb - freed, row.disk_mb)
                await self._rows.add(row, volume)

        self._provisioning.add(row.id)
        task = self._tasks.spawn(self._provision(row.id), name=f"provision-{row.id}")
        task.add_done_callback(_retrieve_failure)
        return CreateResult(container=row, task=task)

    async def _new_row(
        self, principal: Principal, fields: ContainerCreate, tier: TierLimits
    ) -> Container:
        """The row a create makes (not stored yet), every field checked."""
        catalog = self._catalog
        image = catalog.image(fields["image"])
        name = fields.get("name") or _generated_name(image.name)
        role = catalog.role(fields.get("role", "barebone"), image)
        given: dict[str, Any] = dict(fields)
        if "volume" in fields:
            given["disk_mb"] = await self._disk_for_volume(principal, fields, tier)
        resources = check_resources(given, tier, fill_defaults=True)
        await catalog.require_available(image)
        db_id = new_id()
        return Container(
            id=db_id,
            user_id=principal.user_id,
            name=name,
            image=image.name,
            role=role.id,
            role_state=RoleState.PENDING if role.installs else RoleState.NONE,
            status=Status.CREATING,
            runtime=self._settings.runtime,
            environment=fields.get("environment", {}),
            labels=fields.get("labels", {}),
            volume=fields.get("volume") or volume_name(db_id),
            engine=self._engine,
            **resources,
        )

    async def _disk_for_volume(
        self, principal: Principal, fields: ContainerCreate, tier: TierLimits
    ) -> int:
        """The disk of a container made on a kept volume: at least the volume's size (a larger
        ``disk_mb`` grows the volume when the sandbox is built; omitted, the volume's size)."""
        name = fields["volume"]
        kept = await self._kept.find(principal.user_id, name)
        if kept is None:
            raise VolumeNotFound(missing_message(name))
        requested = fields.get("disk_mb")
        if requested is None:
            allowed = tier.range_for("disk_mb")
            if kept.size_mb > allowed.max:
                raise InvalidParameters(
                    f"volume {name!r} is {kept.size_mb} MB, more than the {tier.name} tier's "
                    f"{allowed.max} MB of disk",
                    field="volume",
                )
            return max(kept.size_mb, allowed.min)
        if requested < kept.size_mb:
            raise InvalidParameters(
                f"disk_mb must be at least {kept.size_mb}: the size of volume {name!r}",
                field="disk_mb",
            )
        return requested

    # -- the background work ------------------------------------------------------------------

    async def _provision(self, db_id: str) -> None:
        """Build and start a new row's sandbox in the background, reporting progress. A role
        image that is not built yet is built first, outside the container's lock (a delete
        need not wait for it); meanwhile the row is ``configuring``."""
        roles = self._roles
        try:
            try:
                row = await self._rows.reload(db_id)
            except ContainerNotFound:
                return
            try:
                image = await roles.image_for(
                    row, roles.progress_for(row), lambda: self._building_role_image(db_id)
                )
            except (DockerError, DockerUnavailable) as exc:
                async with self._rows.lock(db_id):
                    await self._provision_failed(db_id, exc)
                return
            await self._provision_locked(db_id, image)
        finally:
            self._provisioning.discard(db_id)

    async def _building_role_image(self, db_id: str) -> None:
        async with self._rows.lock(db_id):
            try:
                row = await self._rows.reload(db_id)
            except ContainerNotFound:
                return
            if row.status == Status.CREATING:
                await self._rows.save(
                    row,
                    EventType.CONTAINER_UPDATED,
                    status=Status.CONFIGURING,
                    role_state=RoleState.INSTALLING,
                )

    async def _provision_failed(self, db_id: str, exc: DockerError | DockerUnavailable) -> None:
        try:
            row = await self._rows.reload(db_id)
        except ContainerNotFound:
            return
        message = failure_text(exc)
        log.warning("creating container %s failed: %s", db_id, message)
        row = await self._rows.save(
            row, EventType.CONTAINER_UPDATED, status=Status.ERROR, error=message
        )
        await self._rows.progress(
            row, Stage.FAILED, f"creation failed: {message}", 100, complete=True, error=message
        )

    async def _provision_locked(self, db_id: str, image: SandboxImage) -> None:
        rows = self._rows
        async with rows.lock(db_id):
            try:
                row = await rows.reload(db_id)
            except ContainerNotFound:
                return
            try:
                await rows.progress(row, Stage.VOLUME, "preparing the volume", 10)
                await self._volumes.ensure(row)
                await rows.progress(row, Stage.CONTAINER, "creating the sandbox", 40)
                docker_id = await self._rebuilder.create(row, image)
                row = await rows.save(row, docker_id=docker_id)
                await rows.progress(row, Stage.STARTING, "starting the sandbox", 70)
                await self._docker.start(docker_id)
                now = utcnow()
                row = await rows.save(
                    row,
                    EventType.CONTAINER_STARTED,
                    message=ROLE_MESSAGES.get(image.role_state),
                    started_at=now,
                    last_used_at=now,
                    error=None,
                    **image.values(),
                )
            except (DockerError, DockerUnavailable) as exc:
                await self._provision_failed(db_id, exc)
                return
            if image.installs_in_sandbox:
                await rows.progress(
                    row,
                    Stage.CONFIGURING,
                    f"the sandbox is running; installing role {row.role} in the background",
                    100,
                    role=row.role,
                )
                self._roles.schedule(row, "create")
            elif image.role_state == RoleState.FAILED:
                await self._starter.role_failed_progress(row, image.role_error or "")
            else:
                await rows.progress(row, Stage.RUNNING, "container is running", 100, complete=True)

    async def drain(self, timeout_s: float) -> None:
        """Let creates in progress finish (bounded), then cancel what is left."""
        await self._tasks.drain(timeout_s)


def _retrieve_failure(task: asyncio.Task[None]) -> None:
    """A create's task may end in an error nobody awaits (a create answered 202): log it here
    rather than as "Task exception was never retrieved". A write the database could not take
    half-way (RetryLater) leaves the row ``creating``; a sandbox made meanwhile reaches it
    through the watcher, which finds it by name and retries until the database takes it."""
    if task.cancelled():
        return
    exc = task.exception()
    if isinstance(exc, RetryLater):
        log.warning("a create was cut short: %s", exc.message)
    elif exc is not None:
        log.error("a create failed", exc_info=exc)


def _generated_name(image: str) -> str:
    base = re.sub(r"[^A-Za-z0-9]+", "-", image.rsplit("/", 1)[-1].split(":")[0]).strip("-")
    return f"{base or 'sandbox'}-{secrets.token_hex(3)}"
