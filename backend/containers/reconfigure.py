"""Changing an existing container: its settings (name, memory, CPU, disk) and its role
reinstalled, each under the container's lock.

gVisor cannot change a live sandbox's resources, so new limits on a running sandbox rebuild it
at once on the same volume (``backend.containers.recreate``); on a stopped one, a disk change is
applied now and the rest at the next start. A reinstall answers at once and recreates the
sandbox from its role image in the background (``backend.containers.role_switch``).
"""

from __future__ import annotations

import contextlib
from typing import Any

from backend.auth.principal import Principal
from backend.containers.recreate import Rebuilder
from backend.containers.repository import ContainerRepository
from backend.containers.resources import check_disk_budget, check_resources
from backend.containers.roles import RoleInstaller
from backend.containers.starter import SandboxStarter, failure_text
from backend.containers.volumes import VolumeManager
from backend.db.models import Container
from backend.errors import (
    ContainerNotRunning,
    DockerError,
    GuestSessionExpired,
    InvalidParameters,
    NameTaken,
    OperationFailed,
)
from backend.settings import Settings
from corral.shapes import Container as ContainerJson
from corral.shapes import ContainerSettings, EventType, RoleState, SettingsChanged, Status


class Reconfigurer:
    def __init__(
        self,
        rows: ContainerRepository,
        *,
        settings: Settings,
        volumes: VolumeManager,
        rebuilder: Rebuilder,
        roles: RoleInstaller,
        starter: SandboxStarter,
    ) -> None:
        self._rows = rows
        self._settings = settings
        self._volumes = volumes
        self._rebuilder = rebuilder
        self._roles = roles
        self._starter = starter

    # -- settings -----------------------------------------------------------------------------

    async def update_settings(
        self, principal: Principal, ident: str, fields: ContainerSettings
    ) -> SettingsChanged:
        name = fields.get("name")
        tier = self._settings.tier(principal.user.tier)
        resources = check_resources(fields, tier, fill_defaults=False)
        async with self._rows.held(principal, ident) as row:
            changed = {k: v for k, v in resources.items() if getattr(row, k) != v}
            if name is not None and name != row.name and await self._rows.name_taken(row, name):
                raise NameTaken()
            if "disk_mb" in changed:
                await self._check_disk_fits(row, changed["disk_mb"])
            if not changed:
                if name is not None and name != row.name:
                    row = await self._rows.save(row, EventType.CONTAINER_UPDATED, name=name)
                return _settings_body(row, restarted=False)
            grows = changed.get("disk_mb", row.disk_mb) > row.disk_mb
            # A larger disk counts against the tier's disk: checked and applied under the
            # owner's lock, so a create cannot pass the limit at the same time.
            async with self._rows.user_lock(row.user_id) if grows else contextlib.nullcontext():
                if grows:
                    usage = await self._rows.usage_of(row.user_id)
                    disk_mb = changed["disk_mb"]
                    check_disk_budget(tier, usage, disk_mb - row.disk_mb, disk_mb)
                try:
                    return await self._apply_resources(row, changed, name)
                except DockerError as exc:
                    raise OperationFailed("failed to update settings", failure_text(exc)) from exc

    async def _check_disk_fits(self, row: Container, disk_mb: int) -> None:
        if disk_mb >= row.disk_mb:
            return
        usage = await self._volumes.usage(row)
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
        state = await self._starter.state(row)
        if state is None or not state.running:
            # Not running: a disk change is applied now (the volume is free); memory and CPU
            # at the next start, which rebuilds the container.
            if "disk_mb" in changed:
                await self._volumes.resize(target, changed["disk_mb"])
            rebuild = state is not None and bool(set(changed) - {"disk_mb"})
            row = await self._rows.save(
                row,
                EventType.CONTAINER_UPDATED,
                needs_recreate=row.needs_recreate or rebuild,
                **values,
            )
            return _settings_body(row, restarted=False)
        image = await self._starter.image_for(row)
        swap = await self._rebuilder.swap(row, target, state, start=True, image=image)
        row = await self._starter.mark_started(
            row,
            image,
            event=EventType.CONTAINER_UPDATED,
            docker_id=swap.new_id,
            needs_recreate=False,
            **values,
        )
        await self._rebuilder.finish(swap)
        return _settings_body(row, restarted=True)

    # -- the role -----------------------------------------------------------------------------

    async def reinstall_role(self, principal: Principal, ident: str) -> ContainerJson:
        """Install the role again in the running sandbox (after a failure, or to repair it).

        Answers at once with the container (``configuring``); the install runs in the
        background. An install already running for this sandbox is left to finish; a container
        whose role installs nothing answers unchanged."""
        async with self._rows.held(principal, ident) as row:
            if principal.guest_session_over():
                raise GuestSessionExpired()
            state = await self._starter.state(row)
            if state is None or not state.running:
                raise ContainerNotRunning(
                    "The container is not running; start it first (starting also resumes an "
                    "interrupted install)."
                )
            if self._roles.active(row.id, state.id) or not self._roles.wants_install(row):
                return row.as_json()
            row = await self._rows.save(
                row,
                EventType.CONTAINER_UPDATED,
                message="role packages reinstalling",
                status=Status.CONFIGURING,
                role_state=RoleState.PENDING,
                role_error=None,
            )
            self._roles.schedule(row, "retry")
            return row.as_json()


def _settings_body(row: Container, restarted: bool) -> SettingsChanged:
    return {"message": "settings updated", "restarted": restarted, "container": row.as_json()}


def _with_values(row: Container, values: dict[str, Any]) -> Container:
    """A detached copy of ``row`` with ``values`` applied: the target of a rebuild."""
    copy = Container(**{c.key: getattr(row, c.key) for c in Container.__table__.columns})
    for key, value in values.items():
        setattr(copy, key, value)
    return copy
