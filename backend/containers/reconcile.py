"""Docker-side truth: each row brought in step with what the engine says.

The watcher (``backend.containers.watcher``) calls ``sync_from_docker`` for a row an engine
event touched, and ``reconcile_all`` on each (re)connect, since events may have been missed.
Each takes the container's lock, so a change the API is making is never reported twice. A row
is never deleted because Docker lost its container: it becomes ``missing``.
"""

from __future__ import annotations

from typing import Protocol

from backend.containers.recreate import Rebuilder
from backend.containers.repository import ContainerRepository
from backend.containers.roles import RoleInstaller
from backend.containers.sandbox import LABEL_DB_ID, instance_labels
from backend.containers.starter import SandboxStarter
from backend.db.models import Container, utcnow
from backend.docker_service import ContainerState, DockerService
from backend.errors import ContainerNotFound
from corral.shapes import (
    ACTIVE_ROLE_STATES,
    RUNNING_STATUSES,
    STARTABLE_STATUSES,
    EventType,
    Status,
)

# Rows without a container in the listing reconciled (and written) at once.
ABSENT_BATCH = 100


class Provisioning(Protocol):
    def is_provisioning(self, db_id: str) -> bool: ...


class Reconciler:
    def __init__(
        self,
        rows: ContainerRepository,
        *,
        docker: DockerService,
        instance: str,
        engine: str,
        rebuilder: Rebuilder,
        roles: RoleInstaller,
        starter: SandboxStarter,
        provisioning: Provisioning,
    ) -> None:
        self._rows = rows
        self._docker = docker
        self._instance = instance
        self._engine = engine  # only its rows are reconciled against its listing
        self._rebuilder = rebuilder
        self._roles = roles
        self._starter = starter
        self._provisioning = provisioning

    async def sync_from_docker(self, db_id: str) -> None:
        """Bring one row's status in step with Docker, announcing any change.

        Takes the container's lock, so a change the API is making is never reported twice."""
        async with self._rows.lock(db_id):
            try:
                row = await self._rows.reload(db_id)
            except ContainerNotFound:
                return
            state = await self._starter.state(row)
            if row.docker_id is not None or state is not None:
                await self._sync_locked(row, state)

    async def reconcile(self, db_id: str, states: list[ContainerState]) -> None:
        """Reconcile one row against a full listing of its containers (at start, or after the
        engine came back): finish or roll back an interrupted rebuild, then sync the status.

        A container absent from the listing is confirmed with an inspect before the row is
        called missing, so a failed or partial listing never marks anything missing."""
        async with self._rows.lock(db_id):
            try:
                row = await self._rows.reload(db_id)
            except ContainerNotFound:
                return
            state = await self._rebuilder.recover(row, states)
            if row.docker_id is None and state is None:
                unfinished = (Status.CREATING, Status.CONFIGURING)
                if row.status in unfinished and not self._provisioning.is_provisioning(db_id):
                    await self._rows.save(
                        row,
                        EventType.CONTAINER_UPDATED,
                        status=Status.ERROR,
                        error="creation was interrupted by a restart; start it to finish",
                    )
                return
            if state is None:
                state = await self._starter.state(row)
            await self._sync_locked(row, state)

    async def _sync_locked(self, row: Container, state: ContainerState | None) -> None:
        rows, starter = self._rows, self._starter
        if state is None:
            if row.docker_id is not None and row.status != Status.MISSING:
                await rows.save(row, EventType.CONTAINER_UPDATED, status=Status.MISSING)
            return
        if state.id != row.docker_id:
            row = await rows.save(row, docker_id=state.id)
        if state.running:
            if row.status in (*STARTABLE_STATUSES, Status.CREATING):
                await starter.mark_started(row, None, stamp=False, started_at=utcnow())
            elif row.role_state in ACTIVE_ROLE_STATES and not self._roles.active(row.id, state.id):
                # An install that nothing runs any more (the backend restarted during it):
                # resume it. apt waits for a still-running one in the sandbox (dpkg's lock).
                await starter.mark_started(
                    row, None, event=EventType.CONTAINER_UPDATED, stamp=False
                )
            return
        if row.status in (*RUNNING_STATUSES, Status.MISSING, Status.CREATING):
            await rows.save(
                row,
                EventType.CONTAINER_STOPPED,
                status=Status.STOPPED,
                error=_exit_reason(state),
                **self._roles.stop_values(row, state),
            )

    async def reconcile_all(self) -> int:
        """Reconcile every row with one Docker listing; how many rows were checked. A listing
        that fails changes nothing.

        Rows the listing has containers for are reconciled one by one; the others (the engine
        lost their containers, or they never had one) in batches (``_reconcile_absent``)."""
        states = await self._docker.list_containers(instance_labels(self._instance))
        by_row: dict[str, list[ContainerState]] = {}
        for state in states:
            by_row.setdefault(state.labels.get(LABEL_DB_ID, ""), []).append(state)
        ids = await self._rows.ids(self._engine)
        absent = [db_id for db_id in ids if db_id not in by_row]
        for db_id in ids:
            if db_id in by_row:
                await self.reconcile(db_id, by_row[db_id])
        for start in range(0, len(absent), ABSENT_BATCH):
            await self._reconcile_absent(absent[start : start + ABSENT_BATCH])
        return len(ids)

    async def _reconcile_absent(self, ids: list[str]) -> None:
        """Rows with no container in the listing, under their locks: those that name a Docker
        container are confirmed gone by one search of the engine, and those confirmed are
        marked ``missing`` in one write. 1,000 such rows took 9-13 s one by one (mostly their
        writes), 5-8.5 s in batches confirmed by two inspects a row, and about 3 s now (24 s
        on PostgreSQL while each row lock opened a connection). Anything else (a container
        found after all, a create interrupted before it had one) goes the one-row way."""
        async with self._rows.locks(ids):
            rows = await self._rows.get_many(ids)
            named = [r for r in rows if r.docker_id is not None and r.status != Status.MISSING]
            found = await self._engine_has(named)
            gone = [row for row, has in zip(named, found, strict=True) if not has]
            await self._rows.mark_missing(gone)
        left = {row.id for row in rows if row.docker_id is None} | {
            row.id for row, has in zip(named, found, strict=True) if has
        }
        for db_id in ids:
            if db_id in left:
                await self.reconcile(db_id, [])

    async def _engine_has(self, rows: list[Container]) -> list[bool]:
        """Whether Docker has each row's container, by its ID or its name (the confirmation a
        listing's silence needs before a row is called missing), asked in one search."""
        if not rows:
            return []
        on_engine = await self._docker.find_containers(
            [row.docker_id for row in rows if row.docker_id is not None],
            [row.docker_name for row in rows],
        )
        ids = {state.id for state in on_engine}
        names = {state.name for state in on_engine}
        return [row.docker_id in ids or row.docker_name in names for row in rows]


def _exit_reason(state: ContainerState) -> str | None:
    if state.oom_killed:
        return "the sandbox ran out of memory and was killed"
    if state.exit_code == 137:
        return "the sandbox was killed (exit code 137; out of memory or SIGKILL)"
    if state.exit_code not in (None, 0):
        return f"the sandbox exited with code {state.exit_code}"
    return None
