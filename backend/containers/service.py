"""The container service: every lifecycle operation, serialized per container.

Rules that hold throughout:
- The database answers list and get; Docker is asked only when something changes.
- Operations on one container take its lock, so concurrent requests queue instead of racing.
- An unreachable engine (``DockerUnavailable``) aborts before the database changes.
- The row is never deleted because Docker lost the container: it becomes ``missing``, and start
  rebuilds it on the same volume.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.auth.principal import Principal
from backend.containers.catalog import Catalog
from backend.containers.kept import KeptVolumes, missing_message
from backend.containers.locks import KeyedLocks
from backend.containers.lookup import UUID_RE, find_container, names_row
from backend.containers.packages import PackageCache
from backend.containers.recreate import Rebuilder
from backend.containers.role_images import RoleImages
from backend.containers.roles import RoleInstaller, SandboxImage
from backend.containers.sandbox import LABEL_DB_ID, instance_labels
from backend.containers.volumes import VolumeManager
from backend.db.models import (
    LIST_COLUMNS,
    LIST_NAMES,
    Container,
    KeptVolume,
    container_json,
    new_id,
    utcnow,
    volume_name,
)
from backend.docker_service import ContainerState, DockerService
from backend.errors import (
    ContainerLimitReached,
    ContainerNotFound,
    ContainerNotRunning,
    DockerError,
    DockerNotFound,
    DockerUnavailable,
    GuestSessionExpired,
    InvalidParameters,
    NameTaken,
    OperationFailed,
)
from backend.events.log import EventLog
from backend.settings import RESOURCES, Settings, TierLimits
from corral.shapes import (
    ACTIVE_ROLE_STATES,
    RUNNING_STATUSES,
    STARTABLE_STATUSES,
    ContainerCreate,
    ContainerSettings,
    Deleted,
    EventType,
    Lifecycle,
    RoleState,
    SettingsChanged,
    Stage,
    Status,
)
from corral.shapes import Container as ContainerJson

log = logging.getLogger(__name__)


@dataclass
class CreateResult:
    container: Container
    task: asyncio.Task[None]


def check_resources(
    fields: Mapping[str, Any], tier: TierLimits, *, fill_defaults: bool
) -> dict[str, int]:
    """Each resource given (or its tier default), refused with the field named when out of range
    (the tier's ranges are configuration, so they are checked here rather than in the shapes)."""
    result: dict[str, int] = {}
    for resource in RESOURCES:
        if resource not in fields:
            if fill_defaults:
                result[resource] = tier.default_for(resource)
            continue
        value = int(fields[resource])
        allowed = tier.range_for(resource)
        if not allowed.contains(value):
            if allowed.min == allowed.max:
                message = f"{resource} must be {allowed.min} on the {tier.name} tier"
            else:
                message = (
                    f"{resource} must be between {allowed.min} and {allowed.max} "
                    f"on the {tier.name} tier"
                )
            raise InvalidParameters(message, field=resource)
        result[resource] = value
    return result


class ContainerService:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        docker: DockerService,
        events: EventLog,
        catalog: Catalog,
        volumes: VolumeManager,
        instance: str,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.docker = docker
        self.events = events
        self.catalog = catalog
        self.volumes = volumes
        self.instance = instance
        self.locks = KeyedLocks()
        self._user_locks = KeyedLocks()
        self._tasks: set[asyncio.Task[None]] = set()
        self._docker_ids: dict[str, str] = {}
        self._provisioning: set[str] = set()  # rows whose create runs in the background
        self.packages = PackageCache(settings)
        self.rebuilder = Rebuilder(settings, docker, volumes, instance)
        self.roles = RoleInstaller(self, self.packages, RoleImages(settings, docker, self.packages))
        self.kept = KeptVolumes(sessions, volumes)

    # -- reading ------------------------------------------------------------------------------

    async def list_json(self, principal: Principal, all_users: bool) -> list[ContainerJson]:
        """The caller's containers as contract objects, from the database alone."""
        query = select(*LIST_COLUMNS).order_by(Container.created_at)
        if not all_users:
            query = query.where(Container.user_id == principal.user_id)
        async with self.sessions() as session:
            rows = (await session.execute(query)).all()
        return [container_json(dict(zip(LIST_NAMES, row, strict=True))) for row in rows]

    async def count_for(self, user_id: str) -> int:
        async with self.sessions() as session:
            value = await session.scalar(
                select(func.count()).select_from(Container).where(Container.user_id == user_id)
            )
        return int(value or 0)

    async def resolve(self, principal: Principal, ident: str) -> Container:
        """The container ``ident`` names: a database ID, a Docker ID, a name or a unique Docker
        ID prefix, in that order (``backend.containers.lookup``); 404 when none, or when it is
        not the caller's."""
        async with self.sessions() as session:
            row = await find_container(session, principal, ident)
        if row is None:
            raise ContainerNotFound()
        self._remember(row)
        return row

    async def reload(self, db_id: str) -> Container:
        async with self.sessions() as session:
            row = await session.get(Container, db_id)
        if row is None:
            raise ContainerNotFound()
        return row

    async def save(
        self,
        row: Container,
        event: EventType | None = None,
        *,
        message: str | None = None,
        **values: Any,
    ) -> Container:
        """Write ``values`` to a row read under its lock and, when ``event`` is given, announce
        the change in the same transaction. One UPDATE, no re-read: the caller's copy is fresh.
        ``message`` goes into the event's payload (a note for people: "role packages
        reinstalling"), not into the row."""
        async with self.events.transaction() as tx:
            result = await tx.session.execute(
                update(Container).where(Container.id == row.id).values(**values)
            )
            if not getattr(result, "rowcount", 1):
                raise ContainerNotFound()
            for key, value in values.items():
                setattr(row, key, value)
            if event is not None:
                payload = row.as_json()
                if message is not None:
                    payload["message"] = message
                await tx.add(row.user_id, event, payload)
        return row

    @asynccontextmanager
    async def held(self, principal: Principal, ident: str) -> AsyncIterator[Container]:
        """The container ``ident`` names, locked, and read fresh inside the lock.

        Database IDs and full Docker IDs (remembered: they never move to another row) take the
        lock at once, so the common case costs one query; anything else, or one of those that
        does not name a container of the caller (it may still be a name), is looked up first.
        The row read inside the lock is always checked again, so a rename, a rebuild or a
        delete in between gives the same 404 as an unknown ID."""
        key = ident.strip().lower()
        known = key if UUID_RE.match(key) else self._docker_ids.get(key)
        if known is not None:
            async with self.locks.hold(known):
                row = await self._visible_row(principal, known, ident)
                if row is not None:
                    yield row
                    return
        db_id = (await self.resolve(principal, ident)).id
        async with self.locks.hold(db_id):
            row = await self._visible_row(principal, db_id, ident)
            if row is None:
                raise ContainerNotFound()
            yield row

    async def _visible_row(self, principal: Principal, db_id: str, ident: str) -> Container | None:
        async with self.sessions() as session:
            row = await session.get(Container, db_id)
        if row is None or not (principal.is_admin or row.user_id == principal.user_id):
            return None
        return row if names_row(row, ident) else None

    def _remember(self, row: Container) -> None:
        if row.docker_id:
            if len(self._docker_ids) > 50_000:
                self._docker_ids.clear()
            self._docker_ids[row.docker_id] = row.id

    # -- create -------------------------------------------------------------------------------

    async def create(self, principal: Principal, fields: ContainerCreate) -> CreateResult:
        """Store the new row (announced as ``container_created``) and build its sandbox in the
        background. ``fields`` passed their shape's checks; what depends on configuration (the
        catalog, the tier, the caller's kept volumes) is checked here."""
        if principal.guest_session_over():
            raise GuestSessionExpired()
        tier = self.settings.tier(principal.user.tier)
        row = await self._new_row(principal, fields, tier)
        volume = fields.get("volume")

        async with self._user_locks.hold(principal.user_id):
            current = await self.count_for(principal.user_id)
            if current >= tier.containers:
                raise ContainerLimitReached(
                    f"The {tier.name} tier allows {tier.containers} container(s); delete one "
                    "first.",
                    current=current,
                    limit=tier.containers,
                    tier=tier.name,
                )
            try:
                claim = self.kept.held(volume) if volume else contextlib.nullcontext()
                async with claim, self.events.transaction() as tx:
                    if volume:
                        await KeptVolumes.claim(tx.session, principal.user_id, volume)
                    tx.session.add(row)
                    await tx.session.flush()
                    await tx.add(row.user_id, EventType.CONTAINER_CREATED, row.as_json())
            except IntegrityError as exc:
                raise NameTaken() from exc

        self._provisioning.add(row.id)
        task = self._spawn(self._provision(row.id))
        return CreateResult(container=row, task=task)

    async def _new_row(
        self, principal: Principal, fields: ContainerCreate, tier: TierLimits
    ) -> Container:
        """The row a create makes (not stored yet), every field checked."""
        image = self.catalog.image(fields["image"])
        name = fields.get("name") or self._generated_name(image.name)
        role = self.catalog.role(fields.get("role", "barebone"), image)
        given: dict[str, Any] = dict(fields)
        if "volume" in fields:
            given["disk_mb"] = await self._disk_for_volume(principal, fields, tier)
        resources = check_resources(given, tier, fill_defaults=True)
        await self.catalog.require_available(image)
        db_id = new_id()
        return Container(
            id=db_id,
            user_id=principal.user_id,
            name=name,
            image=image.name,
            role=role.id,
            role_state=RoleState.PENDING if role.installs else RoleState.NONE,
            status=Status.CREATING,
            runtime=self.settings.runtime,
            environment=fields.get("environment", {}),
            labels=fields.get("labels", {}),
            volume=fields.get("volume") or volume_name(db_id),
            **resources,
        )

    async def _disk_for_volume(
        self, principal: Principal, fields: ContainerCreate, tier: TierLimits
    ) -> int:
        """The disk of a container made on a kept volume: at least the volume's size (a larger
        ``disk_mb`` grows the volume when the sandbox is built; omitted, the volume's size)."""
        name = fields["volume"]
        kept = await self.kept.find(principal.user_id, name)
        if kept is None:
            raise InvalidParameters(missing_message(name), field="volume")
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

    def _generated_name(self, image: str) -> str:
        base = re.sub(r"[^A-Za-z0-9]+", "-", image.rsplit("/", 1)[-1].split(":")[0]).strip("-")
        return f"{base or 'sandbox'}-{secrets.token_hex(3)}"

    def _spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _progress(
        self, row: Container, stage: Stage, message: str, progress: int, **extra: Any
    ) -> None:
        payload = {
            "id": row.public_id,
            "db_id": row.id,
            "name": row.name,
            "stage": stage,
            "message": message,
            "progress": progress,
            **extra,
        }
        await self.events.publish(row.user_id, EventType.CONTAINER_PROGRESS, payload)

    async def _provision(self, db_id: str) -> None:
        """Build and start a new row's sandbox in the background, reporting progress. A role
        image that is not built yet is built first, outside the container's lock (a delete
        need not wait for it); meanwhile the row is ``configuring``."""
        try:
            try:
                row = await self.reload(db_id)
            except ContainerNotFound:
                return
            try:
                image = await self.roles.image_for(
                    row, self.roles.progress_for(row), lambda: self._building_role_image(db_id)
                )
            except (DockerError, DockerUnavailable) as exc:
                async with self.locks.hold(db_id):
                    await self._provision_failed(db_id, exc)
                return
            await self._provision_locked(db_id, image)
        finally:
            self._provisioning.discard(db_id)

    async def _building_role_image(self, db_id: str) -> None:
        async with self.locks.hold(db_id):
            try:
                row = await self.reload(db_id)
            except ContainerNotFound:
                return
            if row.status == Status.CREATING:
                await self.save(
                    row,
                    EventType.CONTAINER_UPDATED,
                    status=Status.CONFIGURING,
                    role_state=RoleState.INSTALLING,
                )

    async def _provision_failed(self, db_id: str, exc: DockerError | DockerUnavailable) -> None:
        try:
            row = await self.reload(db_id)
        except ContainerNotFound:
            return
        message = _failure_text(exc)
        log.warning("creating container %s failed: %s", db_id, message)
        row = await self.save(row, EventType.CONTAINER_UPDATED, status=Status.ERROR, error=message)
        await self._progress(
            row, Stage.FAILED, f"creation failed: {message}", 100, complete=True, error=message
        )

    async def _provision_locked(self, db_id: str, image: SandboxImage) -> None:
        async with self.locks.hold(db_id):
            try:
                row = await self.reload(db_id)
            except ContainerNotFound:
                return
            try:
                await self._progress(row, Stage.VOLUME, "preparing the volume", 10)
                await self.volumes.ensure(row)
                await self._progress(row, Stage.CONTAINER, "creating the sandbox", 40)
                docker_id = await self.rebuilder.create(row, image)
                row = await self.save(row, docker_id=docker_id)
                await self._progress(row, Stage.STARTING, "starting the sandbox", 70)
                await self.docker.start(docker_id)
                now = utcnow()
                row = await self.save(
                    row,
                    EventType.CONTAINER_STARTED,
                    message=_ROLE_MESSAGES.get(image.role_state),
                    started_at=now,
                    last_used_at=now,
                    error=None,
                    **image.values(),
                )
            except (DockerError, DockerUnavailable) as exc:
                await self._provision_failed(db_id, exc)
                return
            if image.installs_in_sandbox:
                await self._progress(
                    row,
                    Stage.CONFIGURING,
                    f"the sandbox is running; installing role {row.role} in the background",
                    100,
                    role=row.role,
                )
                self.roles.schedule(row, "create")
            elif image.role_state == RoleState.FAILED:
                await self._role_failed_progress(row, image.role_error or "")
            else:
                await self._progress(row, Stage.RUNNING, "container is running", 100, complete=True)

    async def _role_failed_progress(self, row: Container, error: str) -> None:
        await self._progress(
            row,
            Stage.ROLE_FAILED,
            f"the sandbox runs without role {row.role}: {error}",
            100,
            complete=True,
            role=row.role,
            error=error,
        )

    # -- start / stop / delete ----------------------------------------------------------------

    async def start(self, principal: Principal, ident: str) -> Lifecycle:
        async with self.held(principal, ident) as row:
            if principal.guest_session_over():
                state = await self._docker_state(row)
                if state is None or not state.running:
                    raise GuestSessionExpired()
            try:
                if row.needs_recreate:
                    return await self._rebuild_and_start(row)
                started = await self._start_existing(row)
                if started is None:
                    return await self._recreate_and_start(row)
            except DockerError as exc:
                await self.save(row, error=_failure_text(exc))
                raise OperationFailed("failed to start container", _failure_text(exc)) from exc
            row = started[0]
            if not started[1]:
                if row.status not in RUNNING_STATUSES:
                    row = await self._mark_started(row, None, stamp=False)
                return _lifecycle_body("container already running", row)
            row = await self._mark_started(row, None)
            return _lifecycle_body("container started", row)

    async def _mark_started(
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
        if stamp:
            now = utcnow()
            values.update(started_at=now, last_used_at=now)
        if image is None:
            row = await self.save(
                row, event, error=None, **values, **self.roles.restart_values(row)
            )
            if row.status == Status.CONFIGURING:
                self.roles.schedule(row, "resume")
            return row
        if image.role_state == RoleState.INSTALLED:
            row = await self.save(
                row,
                event,
                message="role packages reinstalling",
                error=None,
                status=Status.CONFIGURING,
                role_state=RoleState.INSTALLING,
                role_error=None,
                **values,
            )
            return await self.save(
                row,
                EventType.CONTAINER_UPDATED,
                message="role packages restored",
                status=Status.RUNNING,
                role_state=RoleState.INSTALLED,
            )
        message = "role packages reinstalling" if image.installs_in_sandbox else None
        if image.role_state == RoleState.FAILED:
            message = _ROLE_MESSAGES[RoleState.FAILED]
        row = await self.save(row, event, message=message, error=None, **values, **image.values())
        if image.installs_in_sandbox:
            self.roles.schedule(row, "recreate")
        elif image.role_state == RoleState.FAILED:
            await self._role_failed_progress(row, image.role_error or "")
        return row

    async def _image_for(self, row: Container) -> SandboxImage:
        """The image a rebuild of ``row`` starts from (a missing role image is built now, with
        progress events)."""
        return await self.roles.image_for(row, self.roles.progress_for(row))

    async def _start_existing(self, row: Container) -> tuple[Container, bool] | None:
        """Start the row's Docker container: (row, whether it changed), or None when Docker has
        no such container. The engine's own answer (304) tells "already running" apart, so the
        common path is one engine call."""
        if row.docker_id is not None:
            try:
                return row, await self.docker.start(row.docker_id)
            except DockerNotFound:
                pass
        state = await self._docker_state(row)
        if state is None:
            return None
        return row, await self.docker.start(state.id)

    async def _recreate_and_start(self, row: Container) -> Lifecycle:
        """Rebuild a container Docker lost, from its row, on the same volume."""
        old_id = row.docker_id
        image = await self._image_for(row)
        volume_kept = await self.volumes.ensure(row)
        docker_id = await self.rebuilder.create(row, image)
        try:
            await self.docker.start(docker_id)
        except DockerError:
            await self.save(row, docker_id=docker_id, status=Status.STOPPED)
            raise
        row = await self._mark_started(row, image, docker_id=docker_id)
        if old_id is None:
            return _lifecycle_body("container started", row)
        body = _lifecycle_body("container recreated and started", row)
        return {**body, "old_id": old_id, "recreated": True, "volume_kept": volume_kept}

    async def _rebuild_and_start(self, row: Container) -> Lifecycle:
        """Apply limits changed while the container was stopped: rebuild it, then start."""
        old = await self._docker_state(row)
        image = await self._image_for(row)
        swap = await self.rebuilder.swap(row, row, old, start=True, image=image)
        row = await self._mark_started(row, image, docker_id=swap.new_id, needs_recreate=False)
        await self.rebuilder.finish(swap)
        return _lifecycle_body("container started", row)

    async def stop(self, principal: Principal, ident: str) -> Lifecycle:
        async with self.held(principal, ident) as row:
            target = row.docker_id or row.docker_name
            try:
                changed = await self.docker.stop(target, self.settings.stop_timeout_s)
            except DockerNotFound:
                if row.docker_id is not None and row.status != Status.MISSING:
                    row = await self.save(
                        row,
                        EventType.CONTAINER_UPDATED,
                        status=Status.MISSING,
                        **self.roles.stop_values(row),
                    )
                return _lifecycle_body("container already stopped", row)
            except DockerError as exc:
                raise OperationFailed("failed to stop container", _failure_text(exc)) from exc
            if not changed:
                if row.status in RUNNING_STATUSES:
                    row = await self.save(
                        row,
                        EventType.CONTAINER_STOPPED,
                        status=Status.STOPPED,
                        **self.roles.stop_values(row),
                    )
                return _lifecycle_body("container already stopped", row)
            row = await self.save(
                row,
                EventType.CONTAINER_STOPPED,
                status=Status.STOPPED,
                last_used_at=utcnow(),
                **self.roles.stop_values(row),
            )
            return _lifecycle_body("container stopped", row)

    async def delete(self, principal: Principal, ident: str, keep_volume: bool) -> Deleted:
        async with self.held(principal, ident) as row:
            self.roles.cancel(row.id)
            try:
                if row.docker_id:
                    await self.docker.remove(row.docker_id)
                await self.docker.remove(row.docker_name)
                if not keep_volume:
                    await self.volumes.remove(row)
                kept = keep_volume and await self.volumes.exists(row)
                size_mb = await self.volumes.size_mb(row) if kept else None
            except DockerError as exc:
                raise OperationFailed("failed to delete container", _failure_text(exc)) from exc
            payload = {**row.as_json(), "status": Status.DELETED, "volume_kept": keep_volume}
            async with self.events.transaction() as tx:
                await tx.session.execute(delete(Container).where(Container.id == row.id))
                if kept:
                    KeptVolumes.record(tx.session, row, size_mb)
                await tx.add(row.user_id, EventType.CONTAINER_DELETED, payload)
        return {
            "message": "container deleted",
            "id": row.public_id,
            "db_id": row.id,
            "name": row.name,
            "volume_kept": keep_volume,
        }

    async def docker_state_of(self, row: Container) -> ContainerState | None:
        """Docker's view of a container, for callers outside the lifecycle (terminals)."""
        return await self.docker.inspect(row.docker_id) if row.docker_id else None

    async def touch(self, row: Container) -> None:
        """Record use (a terminal opened) without announcing it: ``last_used_at`` only."""
        async with self.sessions() as session:
            await session.execute(
                update(Container).where(Container.id == row.id).values(last_used_at=utcnow())
            )
            await session.commit()

    async def _docker_state(self, row: Container) -> ContainerState | None:
        """Docker's view of the row's container, found by its ID or, failing that, its name."""
        state = await self.docker.inspect(row.docker_id) if row.docker_id else None
        if state is None:
            state = await self.docker.inspect(row.docker_name)
            if state is not None and state.id != row.docker_id:
                await self.save(row, docker_id=state.id)
        return state

    # -- settings -----------------------------------------------------------------------------

    async def update_settings(
        self, principal: Principal, ident: str, fields: ContainerSettings
    ) -> SettingsChanged:
        name = fields.get("name")
        tier = self.settings.tier(principal.user.tier)
        resources = check_resources(fields, tier, fill_defaults=False)
        async with self.held(principal, ident) as row:
            changed = {k: v for k, v in resources.items() if getattr(row, k) != v}
            if name is not None and name != row.name:
                await self._check_name_free(row, name)
            if "disk_mb" in changed:
                await self._check_disk_fits(row, changed["disk_mb"])
            if not changed:
                if name is not None and name != row.name:
                    row = await self.save(row, EventType.CONTAINER_UPDATED, name=name)
                return _settings_body(row, restarted=False)
            try:
                return await self._apply_resources(row, changed, name)
            except DockerError as exc:
                raise OperationFailed("failed to update settings", _failure_text(exc)) from exc

    async def _check_name_free(self, row: Container, name: str) -> None:
        async with self.sessions() as session:
            taken = await session.scalar(
                select(Container.id).where(
                    Container.user_id == row.user_id,
                    Container.name == name,
                    Container.id != row.id,
                )
            )
        if taken is not None:
            raise NameTaken()

    async def _check_disk_fits(self, row: Container, disk_mb: int) -> None:
        if disk_mb >= row.disk_mb:
            return
        usage = await self.volumes.usage(row)
        if usage is not None and disk_mb < usage.minimum_mb:
            raise InvalidParameters(
                f"disk_mb {disk_mb} is too small: the volume holds {usage.used_mb} MB of data and "
                f"needs at least {usage.minimum_mb} MB; free space in /home/user first",
                field="disk_mb",
            )

    async def _apply_resources(
        self, row: Container, changed: dict[str, int], name: str | None
    ) -> SettingsChanged:
        values: dict[str, Any] = dict(changed)
        if name is not None:
            values["name"] = name
        target = _with_values(row, values)
        state = await self._docker_state(row)
        if state is None or not state.running:
            # Not running: a disk change is applied now (the volume is free); memory and CPU
            # at the next start, which rebuilds the container.
            if "disk_mb" in changed:
                await self.volumes.resize(target, changed["disk_mb"])
            rebuild = state is not None and bool(set(changed) - {"disk_mb"})
            row = await self.save(
                row,
                EventType.CONTAINER_UPDATED,
                needs_recreate=row.needs_recreate or rebuild,
                **values,
            )
            return _settings_body(row, restarted=False)
        image = await self._image_for(row)
        swap = await self.rebuilder.swap(row, target, state, start=True, image=image)
        row = await self._mark_started(
            row,
            image,
            event=EventType.CONTAINER_UPDATED,
            docker_id=swap.new_id,
            needs_recreate=False,
            **values,
        )
        await self.rebuilder.finish(swap)
        return _settings_body(row, restarted=True)

    # -- roles --------------------------------------------------------------------------------

    async def reinstall_role(self, principal: Principal, ident: str) -> ContainerJson:
        """Install the role again in the running sandbox (after a failure, or to repair it).

        Answers at once with the container (``configuring``); the install runs in the
        background. An install already running for this sandbox is left to finish; a container
        whose role installs nothing answers unchanged."""
        async with self.held(principal, ident) as row:
            if principal.guest_session_over():
                raise GuestSessionExpired()
            state = await self._docker_state(row)
            if state is None or not state.running:
                raise ContainerNotRunning(
                    "The container is not running; start it first (starting also resumes an "
                    "interrupted install)."
                )
            if self.roles.active(row.id, state.id) or not self.roles.wants_install(row):
                return row.as_json()
            row = await self.save(
                row,
                EventType.CONTAINER_UPDATED,
                message="role packages reinstalling",
                status=Status.CONFIGURING,
                role_state=RoleState.PENDING,
                role_error=None,
            )
            self.roles.schedule(row, "retry")
            return row.as_json()

    async def switch_sandbox(
        self, db_id: str, docker_id: str, image: SandboxImage, reason: str
    ) -> None:
        """Recreate a running sandbox from ``image`` (its role image) on the same volume: the
        background end of a reinstall, or of one cut off by a stop or a restart. Does nothing
        when the row moved on meanwhile (another sandbox, or no role work expected)."""
        async with self.locks.hold(db_id):
            try:
                row = await self.reload(db_id)
            except ContainerNotFound:
                return
            if row.docker_id != docker_id or row.role_state not in ACTIVE_ROLE_STATES:
                return
            state = await self.docker.inspect(docker_id)
            if state is None or not state.running:
                values = self.roles.stop_values(row, state)
                if values:
                    await self.save(row, EventType.CONTAINER_UPDATED, **values)
                return
            swap = await self.rebuilder.swap(row, row, state, start=True, image=image)
            now = utcnow()
            row = await self.save(
                row,
                EventType.CONTAINER_UPDATED,
                message="role packages restored"
                if reason in ("recreate", "resume")
                else "role packages installed",
                docker_id=swap.new_id,
                started_at=now,
                **image.values(),
            )
            self._remember(row)
            await self.rebuilder.finish(swap)
            await self._progress(
                row, Stage.ROLE_DONE, "role packages installed", 100, complete=True, role=row.role
            )
        await self._prune_role_images(row)

    async def _prune_role_images(self, row: Container) -> None:
        """Remove the role's stale images now that this sandbox left one (best effort)."""
        role = self.catalog.find_role(row.role)
        try:
            image = self.catalog.image(row.image)
            if role is not None and role.installs:
                await self.roles.images.remove_stale(image, role)
        except Exception:
            log.warning("removing stale images of role %s failed", row.role, exc_info=True)

    # -- Docker-side truth ----------------------------------------------------------------------

    async def sync_from_docker(self, db_id: str) -> None:
        """Bring one row's status in step with Docker, announcing any change.

        Takes the container's lock, so a change the API is making is never reported twice."""
        async with self.locks.hold(db_id):
            try:
                row = await self.reload(db_id)
            except ContainerNotFound:
                return
            if row.docker_id is not None:
                await self._sync_locked(row, await self._docker_state(row))

    async def reconcile(self, db_id: str, states: list[ContainerState]) -> None:
        """Reconcile one row against a full listing of its containers (at start, or after the
        engine came back): finish or roll back an interrupted rebuild, then sync the status.

        A container absent from the listing is confirmed with an inspect before the row is
        called missing, so a failed or partial listing never marks anything missing."""
        async with self.locks.hold(db_id):
            try:
                row = await self.reload(db_id)
            except ContainerNotFound:
                return
            state = await self.rebuilder.recover(row, states)
            if row.docker_id is None and state is None:
                unfinished = (Status.CREATING, Status.CONFIGURING)
                if row.status in unfinished and db_id not in self._provisioning:
                    await self.save(
                        row,
                        EventType.CONTAINER_UPDATED,
                        status=Status.ERROR,
                        error="creation was interrupted by a restart; start it to finish",
                    )
                return
            if state is None:
                state = await self._docker_state(row)
            await self._sync_locked(row, state)

    async def _sync_locked(self, row: Container, state: ContainerState | None) -> None:
        if state is None:
            if row.docker_id is not None and row.status != Status.MISSING:
                await self.save(row, EventType.CONTAINER_UPDATED, status=Status.MISSING)
            return
        if state.id != row.docker_id:
            row = await self.save(row, docker_id=state.id)
        if state.running:
            if row.status in (*STARTABLE_STATUSES, Status.CREATING):
                await self._mark_started(row, None, stamp=False, started_at=utcnow())
            elif row.role_state in ACTIVE_ROLE_STATES and not self.roles.active(row.id, state.id):
                # An install that nothing runs any more (the backend restarted during it):
                # resume it. apt waits for a still-running one in the sandbox (dpkg's lock).
                await self._mark_started(row, None, event=EventType.CONTAINER_UPDATED, stamp=False)
            return
        if row.status in (*RUNNING_STATUSES, Status.MISSING, Status.CREATING):
            await self.save(
                row,
                EventType.CONTAINER_STOPPED,
                status=Status.STOPPED,
                error=_exit_reason(state),
                **self.roles.stop_values(row, state),
            )

    async def reconcile_all(self) -> int:
        """Reconcile every row with one Docker listing; how many rows were checked. A listing
        that fails changes nothing."""
        states = await self.docker.list_containers(instance_labels(self.instance))
        by_row: dict[str, list[ContainerState]] = {}
        for state in states:
            by_row.setdefault(state.labels.get(LABEL_DB_ID, ""), []).append(state)
        async with self.sessions() as session:
            ids = list((await session.execute(select(Container.id))).scalars().all())
        for db_id in ids:
            await self.reconcile(db_id, by_row.get(db_id, []))
        return len(ids)

    async def all_volumes(self) -> list[str]:
        """Every volume's name, the rows' and the kept ones (to mount them again at start)."""
        async with self.sessions() as session:
            rows = (await session.execute(select(Container.id, Container.volume))).all()
            kept = (await session.execute(select(KeptVolume.name))).scalars().all()
        return [volume or volume_name(db_id) for db_id, volume in rows] + list(kept)

    # -- shutdown -----------------------------------------------------------------------------

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Let background work finish (bounded), then cancel what is left. Role installs are
        not waited for (they take minutes); they are resumed at the next start."""
        await self.roles.close()
        if not self._tasks:
            return
        _done, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


# The message a sandbox's start event carries about its role, by role_state.
_ROLE_MESSAGES = {
    RoleState.INSTALLED: "role packages installed",
    RoleState.FAILED: "role packages failed to install",
}


def _failure_text(exc: BaseException) -> str:
    if isinstance(exc, DockerUnavailable):
        return "the Docker engine could not be reached"
    return str(exc) or exc.__class__.__name__


def _settings_body(row: Container, restarted: bool) -> SettingsChanged:
    return {"message": "settings updated", "restarted": restarted, "container": row.as_json()}


def _with_values(row: Container, values: dict[str, Any]) -> Container:
    """A detached copy of ``row`` with ``values`` applied: the target of a rebuild."""
    copy = Container(**{c.key: getattr(row, c.key) for c in Container.__table__.columns})
    for key, value in values.items():
        setattr(copy, key, value)
    return copy


def _exit_reason(state: ContainerState) -> str | None:
    if state.oom_killed:
        return "the sandbox ran out of memory and was killed"
    if state.exit_code == 137:
        return "the sandbox was killed (exit code 137; out of memory or SIGKILL)"
    if state.exit_code not in (None, 0):
        return f"the sandbox exited with code {state.exit_code}"
    return None


def _lifecycle_body(message: str, row: Container) -> Lifecycle:
    """The contract's answer to start and stop. A sandbox whose role is still installing runs
    (``configuring`` in the container object), so start says ``running`` as the contract has it."""
    status = Status.STOPPED if row.status in (Status.STOPPED, Status.ERROR) else Status(row.status)
    if status == Status.CONFIGURING:
        status = Status.RUNNING
    return {"message": message, "id": row.public_id, "name": row.name, "status": status}
