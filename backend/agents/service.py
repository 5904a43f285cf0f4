"""The agent registry: rows in the database, live connections in memory.

With replicas, an agent is connected to one of them; a terminal, stop or delete that reaches
another goes to it through the relay (``backend.agents.relay``). An agent whose replica died
leaves its row ``running``: the sweep (run by one replica) marks an agent offline once it has
not been heard from for ``STALE_HEARTBEATS`` heartbeats.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.agents.connection import AgentConnection, AgentShell
from backend.agents.relay import AgentRelay, RelayedShell
from backend.auth.principal import Principal
from backend.cluster.bus import NotificationBus
from backend.db.models import Agent, ApiToken, utcnow
from backend.errors import AgentNotFound, ContainerNotRunning, InvalidParameters, NotAuthorized
from backend.events.log import Event, EventLog
from corral.shapes import Container as ContainerJson
from corral.shapes import Deleted, EventType, Lifecycle, Status

log = logging.getLogger(__name__)

AGENT_ID_RE = re.compile(r"^agent:([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")
FACT_KEYS = ("hostname", "os", "arch", "cpus", "memory_mb", "version")
STALE_HEARTBEATS = 4  # heartbeats missed before an agent is taken for gone


def is_agent_id(ident: str) -> bool:
    return ident.startswith("agent:")


class AgentService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        events: EventLog,
        revoked: Callable[[str], None],
        *,
        heartbeat_s: float,
        bus: NotificationBus | None = None,
    ) -> None:
        self._sessions = sessions
        self._events = events
        self._revoked = revoked  # told the agent token's ID when deleting revokes it
        self.heartbeat_s = heartbeat_s  # how often agents are told to report
        self.connections: dict[str, AgentConnection] = {}
        self._owners: set[str] = set()  # users with at least one agent row (a superset)
        self._relay = AgentRelay(bus, self.connections.get, self._disconnect_local) if bus else None

    async def start(self, *, alone: bool) -> None:
        """Learn who owns agents at all (see ``list_json``), and hear of new owners from every
        replica's events. ``alone`` (no replicas): no agent is connected yet, whatever the rows
        said when the backend stopped, so every agent is marked offline; replicas leave that to
        the sweep (the others' agents are connected)."""
        async with self._sessions() as session:
            if alone:
                await session.execute(update(Agent).values(status=Status.OFFLINE))
                await session.commit()
            owners = (await session.execute(select(Agent.user_id).distinct())).scalars()
            self._owners.update(owners)
        self._events.add_listener(self._heard)

    def _heard(self, event: Event) -> None:
        """An agent registered, through this replica or another: its user owns agents now."""
        if event.type == EventType.AGENT_CONNECTED:
            self._owners.add(event.user_id)

    async def list_json(self, principal: Principal, all_users: bool) -> list[ContainerJson]:
        """The caller's agents. Most users have none, and agents are only made and deleted
        here, so a user known to own none costs no query on every container list."""
        if not all_users and principal.user_id not in self._owners:
            return []
        query = select(Agent).order_by(Agent.created_at, Agent.id)
        if not all_users:
            query = query.where(Agent.user_id == principal.user_id)
        async with self._sessions() as session:
            return [agent.as_json() for agent in (await session.execute(query)).scalars()]

    async def get(self, principal: Principal, ident: str) -> Agent:
        """The agent ``agent:<uuid>`` names: 404 when unknown, 403 when it is someone else's."""
        match = AGENT_ID_RE.fullmatch(ident.lower())
        if match is None:
            raise AgentNotFound()
        async with self._sessions() as session:
            agent = await session.get(Agent, match.group(1))
        if agent is None:
            raise AgentNotFound()
        if agent.user_id != principal.user_id and not principal.is_admin:
            raise NotAuthorized("This agent belongs to another user.")
        return agent

    # -- the connection's side ------------------------------------------------------------------

    async def register(self, principal: Principal, hello: dict[str, Any]) -> Agent:
        raw = hello.get("facts")
        facts: dict[str, Any] = raw if isinstance(raw, dict) else {}
        clean = {k: facts[k] for k in FACT_KEYS if k in facts and isinstance(facts[k], str | int)}
        name = hello.get("name") or clean.get("hostname") or "agent"
        if not isinstance(name, str) or not 1 <= len(name) <= 64:
            raise InvalidParameters("name must be 1-64 characters", field="name")
        now = utcnow()
        async with self._sessions() as session:
            agent = await session.scalar(select(Agent).where(Agent.token_id == principal.token_id))
            if agent is None:
                agent = Agent(user_id=principal.user_id, token_id=principal.token_id, name=name)
                session.add(agent)
                self._owners.add(principal.user_id)
            agent.name, agent.facts, agent.status = name, clean, Status.RUNNING
            agent.connected_at = agent.last_seen_at = now
            await session.commit()
        await self._events.publish(agent.user_id, EventType.AGENT_CONNECTED, agent.as_json())
        return agent

    async def attach(self, connection: AgentConnection) -> None:
        previous = self.connections.get(connection.agent_id)
        self.connections[connection.agent_id] = connection
        if previous is not None and previous is not connection:
            await previous.close()

    async def detach(self, connection: AgentConnection) -> None:
        """The connection ended (or is being ended): the agent is offline, unless a newer
        connection of the same agent took over already. Idempotent."""
        connection.end_all()
        if self.connections.get(connection.agent_id) is not connection:
            return
        del self.connections[connection.agent_id]
        async with self._sessions() as session:
            agent = await session.get(Agent, connection.agent_id)
            if agent is None:
                return  # deleted
            agent.status = Status.OFFLINE
            await session.commit()
        await self._events.publish(agent.user_id, EventType.AGENT_DISCONNECTED, agent.as_json())

    async def _disconnect_local(self, agent_id: str) -> None:
        """Drop this replica's connection of ``agent_id``: offline now, whatever the close
        handshake does."""
        connection = self.connections.get(agent_id)
        if connection is not None:
            await self.detach(connection)
            await connection.close()

    async def sweep_stale(self) -> int:
        """Mark offline every agent marked running that has not been heard from for
        ``STALE_HEARTBEATS`` heartbeats (its replica died, or its connection hangs); returns
        how many. One held here is disconnected too: a live agent dials in again."""
        cutoff = utcnow() - timedelta(seconds=self.heartbeat_s * STALE_HEARTBEATS)
        async with self._sessions() as session:
            marked = await session.execute(
                update(Agent)
                .where(Agent.status == Status.RUNNING, Agent.last_seen_at < cutoff)
                .values(status=Status.OFFLINE)
                .returning(Agent)
            )
            swept = list(marked.scalars())
            await session.commit()
        for agent in swept:
            log.info("agent %s was not heard from: offline", agent.public_id)
            await self._events.publish(agent.user_id, EventType.AGENT_DISCONNECTED, agent.as_json())
            # Unregistered first, so its end does not announce it offline a second time.
            connection = self.connections.pop(agent.id, None)
            if connection is not None:
                await connection.close()
        return len(swept)

    async def heartbeat(self, agent_id: str, message: dict[str, Any]) -> None:
        load = message.get("load")
        values: dict[str, Any] = {"last_seen_at": utcnow()}
        if isinstance(load, dict):
            values["load"] = {k: v for k, v in load.items() if isinstance(v, int | float)}
        async with self._sessions() as session:
            await session.execute(update(Agent).where(Agent.id == agent_id).values(**values))
            await session.commit()

    # -- the API's side -------------------------------------------------------------------------

    async def stop(self, principal: Principal, ident: str) -> Lifecycle:
        agent = await self.get(principal, ident)
        connection = self.connections.get(agent.id)
        answer: Lifecycle = {
            "message": "agent was already offline",
            "id": agent.public_id,
            "name": agent.name,
            "status": Status.OFFLINE,
        }
        if connection is not None:
            await self._disconnect_local(agent.id)
        elif self._relay is not None and agent.status == Status.RUNNING:
            await self._relay.disconnect(agent.id)  # another replica holds it
        else:
            return answer
        return {**answer, "message": "agent disconnected"}

    async def delete(self, principal: Principal, ident: str) -> Deleted:
        agent = await self.get(principal, ident)
        async with self._sessions() as session:
            await session.execute(
                update(ApiToken).where(ApiToken.id == agent.token_id).values(revoked_at=utcnow())
            )
            await session.execute(delete(Agent).where(Agent.id == agent.id))
            await session.commit()
        self._revoked(agent.token_id)
        connection = self.connections.pop(agent.id, None)
        if connection is not None:
            await connection.close()
        elif self._relay is not None and agent.status == Status.RUNNING:
            with contextlib.suppress(ConnectionError):  # revoked: it cannot come back anyway
                await self._relay.disconnect(agent.id)
        payload = {**agent.as_json(), "status": Status.DELETED}
        await self._events.publish(agent.user_id, EventType.CONTAINER_DELETED, payload)
        return {"message": "agent deleted", "id": agent.public_id, "name": agent.name}

    async def open_shell(
        self, principal: Principal, ident: str, cols: int, rows: int
    ) -> AgentShell | RelayedShell:
        agent = await self.get(principal, ident)
        connection = self.connections.get(agent.id)
        try:
            if connection is not None:
                return await connection.open_shell(cols, rows)
            if self._relay is not None and agent.status == Status.RUNNING:
                return await self._relay.open_shell(agent.id, cols, rows)
        except (ConnectionError, TimeoutError) as exc:
            raise ContainerNotRunning(f"The agent could not open a shell: {exc}") from exc
        raise ContainerNotRunning("The agent is offline; start corral agent on that machine.")

    async def close_all(self) -> None:
        self._events.remove_listener(self._heard)
        if self._relay is not None:
            await self._relay.close()
        for connection in list(self.connections.values()):
            await connection.ws.close(code=1001, message=b"server shutting down")
