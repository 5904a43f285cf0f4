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
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.auth.principal import Principal
from backend.containers.catalog import Catalog
from backend.containers.locks import KeyedLocks
from backend.containers.sandbox import RESERVED_LABEL_PREFIX, sandbox_spec
from backend.containers.volumes import VolumeManager
from backend.db.models import Container, utcnow
from backend.docker_service import DockerService
from backend.errors import (
    AgentNotFound,
    ContainerLimitReached,
    ContainerNotFound,
    DockerError,
    DockerUnavailable,
    GuestSessionExpired,
    InvalidParameters,
    NameTaken,
    OperationFailed,
)
from backend.events.log import EventLog
from backend.settings import RESOURCES, Settings, TierLimits
from backend.validation import (
    CONTAINER_CREATE,
    ENV_KEY_RE,
    check_name,
    check_string_map,
)

log = logging.getLogger(__name__)

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
DOCKER_ID_RE = re.compile(r"^[0-9a-f]{64}$")
DOCKER_PREFIX_RE = re.compile(r"^[0-9a-f]{12,63}$")


@dataclass
class CreateResult:
    container: Container
    task: asyncio.Task[None]


def check_resources(
    fields: dict[str, Any], tier: TierLimits, *, fill_defaults: bool
) -> dict[str, int]:
    """Each resource given (or its tier default), refused with the field named when out of range."""
    result: dict[str, int] = {}
    for resource in RESOURCES:
        if resource not in fields:
            if fill_defaults:
                result[resource] = tier.default_for(resource)
            continue
        value = fields[resource]
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

    # -- reading ------------------------------------------------------------------------------

    async def list(self, principal: Principal, all_users: bool) -> list[Container]:
        query = select(Container).order_by(Container.created_at)
        if not all_users:
            query = query.where(Container.user_id == principal.user_id)
        async with self.sessions() as session:
            return list((await session.execute(query)).scalars().all())

    async def count_for(self, user_id: str) -> int:
        async with self.sessions() as session:
            value = await session.scalar(
                select(func.count()).select_from(Container).where(Container.user_id == user_id)
            )
        return int(value or 0)

    async def resolve(self, principal: Principal, ident: str) -> Container:
        """Find a container by database ID, Docker ID or a unique Docker ID prefix (12+)."""
        if ident.startswith("agent:"):
            raise AgentNotFound()
        ident = ident.strip().lower()
        if UUID_RE.match(ident):
            condition = Container.id == ident
        elif DOCKER_ID_RE.match(ident):
            condition = Container.docker_id == ident
        elif DOCKER_PREFIX_RE.match(ident):
            condition = Container.docker_id.startswith(ident, autoescape=True)
        else:
            raise ContainerNotFound()
        query = select(Container).where(condition).limit(2)
        if not principal.is_admin:
            query = query.where(Container.user_id == principal.user_id)
        async with self.sessions() as session:
            rows = (await session.execute(query)).scalars().all()
        if len(rows) != 1:
            raise ContainerNotFound()
        return rows[0]

    async def reload(self, db_id: str) -> Container:
        async with self.sessions() as session:
            row = await session.get(Container, db_id)
        if row is None:
            raise ContainerNotFound()
        return row

    async def save(self, db_id: str, **values: Any) -> Container:
        async with self.sessions() as session:
            row = await session.get(Container, db_id)
            if row is None:
                raise ContainerNotFound()
            for key, value in values.items():
                setattr(row, key, value)
            await session.commit()
            return row

    # -- create -------------------------------------------------------------------------------

    async def create(self, principal: Principal, body: Any) -> CreateResult:
        if principal.guest_session_over():
            raise GuestSessionExpired()
        fields = CONTAINER_CREATE.parse(body)
        tier = self.settings.tier(principal.user.tier)
        image = self.catalog.image(fields["image"])
        name = check_name(fields["name"]) if "name" in fields else self._generated_name(image.name)
        role = self.catalog.role(fields.get("role", "barebone"), image)
        resources = check_resources(fields, tier, fill_defaults=True)
        environment = fields.get("environment", {})
        check_string_map("environment", environment, ENV_KEY_RE)
        labels = fields.get("labels", {})
        check_string_map("labels", labels, None)
        for key in labels:
            if key.startswith(RESERVED_LABEL_PREFIX):
                raise InvalidParameters(
                    f"label {key!r} uses the reserved prefix {RESERVED_LABEL_PREFIX!r}",
                    field="labels",
                )
        await self.catalog.require_available(image)

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
            row = Container(
                user_id=principal.user_id,
                name=name,
                image=image.name,
                role=role.id,
                status="creating",
                runtime=self.settings.runtime,
                environment=environment,
                labels=labels,
                **resources,
            )
            async with self.sessions() as session:
                session.add(row)
                try:
                    await session.commit()
                except IntegrityError as exc:
                    raise NameTaken() from exc

        await self.events.publish(row.user_id, "container_created", row.as_json())
        task = self._spawn(self._provision(row.id))
        return CreateResult(container=row, task=task)

    def _generated_name(self, image: str) -> str:
        base = re.sub(r"[^A-Za-z0-9]+", "-", image.rsplit("/", 1)[-1].split(":")[0]).strip("-")
        return f"{base or 'sandbox'}-{secrets.token_hex(3)}"

    def _spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _progress(
        self, row: Container, stage: str, message: str, progress: int, **extra: Any
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
        await self.events.publish(row.user_id, "container_progress", payload)

    async def _provision(self, db_id: str) -> None:
        """Build and start a new row's sandbox in the background, reporting progress."""
        async with self.locks.hold(db_id):
            try:
                row = await self.reload(db_id)
            except ContainerNotFound:
                return
            try:
                await self._progress(row, "volume", "preparing the volume", 10)
                await self.volumes.ensure(row)
                await self._progress(row, "container", "creating the sandbox", 40)
                docker_id = await self._create_on_docker(row)
                row = await self.save(db_id, docker_id=docker_id)
                await self._progress(row, "starting", "starting the sandbox", 70)
                await self.docker.start(docker_id)
                now = utcnow()
                row = await self.save(
                    db_id, status="running", started_at=now, last_used_at=now, error=None
                )
                await self._progress(row, "running", "container is running", 100, complete=True)
                await self.events.publish(row.user_id, "container_started", row.as_json())
            except (DockerError, DockerUnavailable) as exc:
                message = _failure_text(exc)
                log.warning("creating container %s failed: %s", db_id, message)
                row = await self.save(db_id, status="error", error=message)
                await self._progress(
                    row, "failed", f"creation failed: {message}", 100, complete=True, error=message
                )
                await self.events.publish(row.user_id, "container_updated", row.as_json())

    async def _create_on_docker(self, row: Container, name: str | None = None) -> str:
        image = self.catalog.image(row.image)
        spec = sandbox_spec(row, self.settings, self.instance, image.reference, name=name)
        return await self.docker.create_container(spec)

    # -- start / stop / delete ----------------------------------------------------------------

    async def start(self, principal: Principal, ident: str) -> dict[str, Any]:
        row = await self.resolve(principal, ident)
        async with self.locks.hold(row.id):
            row = await self.reload(row.id)
            state = await self._docker_state(row)
            if state is not None and state.running:
                if row.status != "running":
                    row = await self.save(row.id, status="running", error=None)
                    await self.events.publish(row.user_id, "container_started", row.as_json())
                return _lifecycle_body("container already running", row)
            if principal.guest_session_over():
                raise GuestSessionExpired()
            try:
                if state is None:
                    return await self._recreate_and_start(row)
                await self.docker.start(row.docker_id or row.docker_name)
            except DockerError as exc:
                await self.save(row.id, error=_failure_text(exc))
                raise OperationFailed("failed to start container", _failure_text(exc)) from exc
            now = utcnow()
            row = await self.save(
                row.id, status="running", started_at=now, last_used_at=now, error=None
            )
            await self.events.publish(row.user_id, "container_started", row.as_json())
            return _lifecycle_body("container started", row)

    async def _recreate_and_start(self, row: Container) -> dict[str, Any]:
        """Rebuild a container Docker lost, from its row, on the same volume."""
        old_id = row.docker_id
        volume_kept = await self.volumes.ensure(row)
        docker_id = await self._create_on_docker(row)
        try:
            await self.docker.start(docker_id)
        except DockerError:
            await self.save(row.id, docker_id=docker_id, status="stopped")
            raise
        now = utcnow()
        row = await self.save(
            row.id,
            docker_id=docker_id,
            status="running",
            started_at=now,
            last_used_at=now,
            error=None,
        )
        await self.events.publish(row.user_id, "container_started", row.as_json())
        if old_id is None:
            return _lifecycle_body("container started", row)
        body = _lifecycle_body("container recreated and started", row)
        body.update(old_id=old_id, recreated=True, volume_kept=volume_kept)
        return body

    async def stop(self, principal: Principal, ident: str) -> dict[str, Any]:
        row = await self.resolve(principal, ident)
        async with self.locks.hold(row.id):
            row = await self.reload(row.id)
            state = await self._docker_state(row)
            if state is None:
                if row.status != "missing" and row.docker_id is not None:
                    row = await self.save(row.id, status="missing")
                    await self.events.publish(row.user_id, "container_updated", row.as_json())
                return _lifecycle_body("container already stopped", row)
            if not state.running:
                if row.status == "running":
                    row = await self.save(row.id, status="stopped")
                    await self.events.publish(row.user_id, "container_stopped", row.as_json())
                return _lifecycle_body("container already stopped", row)
            try:
                await self.docker.stop(state.id, self.settings.stop_timeout_s)
            except DockerError as exc:
                raise OperationFailed("failed to stop container", _failure_text(exc)) from exc
            row = await self.save(row.id, status="stopped", last_used_at=utcnow())
            await self.events.publish(row.user_id, "container_stopped", row.as_json())
            return _lifecycle_body("container stopped", row)

    async def delete(self, principal: Principal, ident: str, keep_volume: bool) -> dict[str, Any]:
        row = await self.resolve(principal, ident)
        async with self.locks.hold(row.id):
            row = await self.reload(row.id)
            try:
                if row.docker_id:
                    await self.docker.remove(row.docker_id)
                await self.docker.remove(row.docker_name)
                if not keep_volume:
                    await self.volumes.remove(row)
            except DockerError as exc:
                raise OperationFailed("failed to delete container", _failure_text(exc)) from exc
            async with self.sessions() as session:
                current = await session.get(Container, row.id)
                if current is not None:
                    await session.delete(current)
                    await session.commit()
            payload = row.as_json()
            payload["status"] = "deleted"
            payload["volume_kept"] = keep_volume
            await self.events.publish(row.user_id, "container_deleted", payload)
        return {
            "message": "container deleted",
            "id": row.public_id,
            "db_id": row.id,
            "name": row.name,
            "volume_kept": keep_volume,
        }

    async def _docker_state(self, row: Container) -> Any:
        """Docker's view of the row's container, found by its ID or, failing that, its name."""
        state = await self.docker.inspect(row.docker_id) if row.docker_id else None
        if state is None:
            state = await self.docker.inspect(row.docker_name)
            if state is not None and state.id != row.docker_id:
                await self.save(row.id, docker_id=state.id)
                row.docker_id = state.id
        return state

    # -- shutdown -----------------------------------------------------------------------------

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Let background work finish (bounded), then cancel what is left."""
        if not self._tasks:
            return
        _done, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


def _failure_text(exc: BaseException) -> str:
    if isinstance(exc, DockerUnavailable):
        return "the Docker engine could not be reached"
    return str(exc) or exc.__class__.__name__


def _lifecycle_body(message: str, row: Container) -> dict[str, Any]:
    status = "stopped" if row.status in ("stopped", "error") else row.status
    return {"message": message, "id": row.public_id, "name": row.name, "status": status}


LifecycleCall = Callable[[Principal, str], Awaitable[dict[str, Any]]]
