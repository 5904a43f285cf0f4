"""What role work needs of the containers, and the row states it moves through.

Role work (``backend.containers.roles``, ``backend.containers.role_install``) runs in the
background and never holds a container service: it reads and writes rows through
``RoleRows``, a small protocol that ``ContainerRepository`` implements.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from backend.db.models import Container
from backend.docker_service import ContainerState
from corral.shapes import ACTIVE_ROLE_STATES, EventType, RoleState, Stage

OOM_REASON = (
    "the sandbox ran out of memory while installing the role's packages; give it more memory "
    "(settings), then reinstall the role"
)


class RoleRows(Protocol):
    """Read a row, lock it, write it with its event, and report progress on it."""

    async def get(self, db_id: str) -> Container | None: ...

    def lock(self, db_id: str) -> AbstractAsyncContextManager[None]: ...

    async def save(
        self,
        row: Container,
        event: EventType | None = None,
        *,
        message: str | None = None,
        **values: Any,
    ) -> Container: ...

    async def progress(
        self, row: Container, stage: Stage, message: str, progress: int, **extra: Any
    ) -> None: ...


async def current_row(rows: RoleRows, db_id: str, docker_id: str) -> Container | None:
    """The row, if it still expects role work in this sandbox."""
    row = await rows.get(db_id)
    if row is None or row.docker_id != docker_id or row.role_state not in ACTIVE_ROLE_STATES:
        return None
    return row


def stopped_values(row: Container, state: ContainerState | None) -> dict[str, Any]:
    """The row values for its sandbox having stopped under role work: the work is due again at
    the next start, unless the sandbox ran out of memory doing it (then it would only fail the
    same way: it is marked failed)."""
    if row.role_state not in ACTIVE_ROLE_STATES:
        return {}
    if state is not None and state.oom_killed:
        return {"role_state": RoleState.FAILED, "role_error": OOM_REASON}
    return {"role_state": RoleState.PENDING}
