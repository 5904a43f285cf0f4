"""The stats sampler: live usage of every running sandbox, while someone watches.

Why a stream of its own rather than a ``container_stats`` event: the events stream is persisted,
numbered (``seq``) and replayed after a reconnect; a sample every few seconds per sandbox would
flood that log (fifty sandboxes: 1,500 rows a minute) and every replay, for values that are
worthless a few seconds later. Samples are kept only as "the latest", in memory.

How: while at least one subscriber is connected, the sampler keeps one Docker stats stream per
running sandbox (the engine sends a reading about every second; see
``backend.docker_service.engine_http``: no thread per stream) and remembers the latest sample of
each. Every ``stats_interval_s`` it hands each subscriber one message with the latest samples of
the containers it may see. Streams open and close with the container services' own events (a
start, a stop, a rebuild's new Docker ID), and a resync from the repository every ``RESYNC_S``
catches anything missed (an engine that came back). When the last subscriber leaves, every
stream is closed: nothing runs for nobody.

Memory is bounded: one sample per running sandbox, and at most one unsent message per
subscriber. A slow subscriber's unsent message is replaced by the newer one, so it always gets
the newest samples and never a queue.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from backend.containers.repository import SandboxRef
from backend.db.models import Container, iso, utcnow
from backend.errors import DockerError, DockerNotFound, DockerUnavailable
from backend.events.hub import wire
from backend.events.log import Event
from backend.stats.sample import Sample, is_stopped, usage_of
from backend.websocket import CloseRequest
from corral.aio import TaskOwner
from corral.shapes import RUNNING_STATUSES, EventType, Status

log = logging.getLogger(__name__)

CONTAINER_EVENTS = frozenset(
    {
        EventType.CONTAINER_CREATED,
        EventType.CONTAINER_STARTED,
        EventType.CONTAINER_STOPPED,
        EventType.CONTAINER_DELETED,
        EventType.CONTAINER_UPDATED,
    }
)
RESYNC_S = 30.0
FRESH_S = 2.5  # a sample at most this old answers GET .../stats without asking the engine


class SandboxRows(Protocol):
    """Where the running sandboxes are read from (``ContainerRepository``)."""

    async def with_sandbox(self, statuses: Iterable[Status]) -> Sequence[SandboxRef]: ...


class StatsSource(Protocol):
    """Where the samples come from: the engine a sandbox lives on (``EnginePool``, which hands
    each call to that engine's ``DockerService`` and its streams)."""

    async def stats_once(self, engine: str, container_id: str) -> dict[str, Any]: ...

    def stats_stream(self, engine: str, container_id: str) -> AsyncIterator[dict[str, Any]]: ...


class StatsSubscription(CloseRequest):
    """One subscriber: at most one unsent message (replaced, never queued), a pong due, and
    whether the server asked its connection to close."""

    def __init__(self, user_id: str | None) -> None:
        super().__init__()
        self.user_id = user_id  # None: every user's containers (an admin's ?all=true)
        self.pending: str | None = None
        self.pong_due = False
        self.wake = asyncio.Event()

    def offer(self, text: str) -> None:
        self.pending = text
        self.wake.set()

    def pong(self) -> None:
        self.pong_due = True
        self.wake.set()


@dataclass
class _Followed:
    """A running sandbox whose stats stream is open."""

    db_id: str
    docker_id: str
    user_id: str
    name: str
    engine: str
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class StatsSampler:
    def __init__(
        self,
        docker: StatsSource,
        rows: SandboxRows,
        interval_s: float,
    ) -> None:
        self._docker = docker
        self._rows = rows
        self.interval_s = max(0.2, interval_s)
        self._subs: set[StatsSubscription] = set()
        self._followed: dict[str, _Followed] = {}
        self._latest: dict[str, tuple[Sample, float]] = {}  # db_id -> (sample, monotonic time)
        self._runner: asyncio.Task[None] | None = None
        self._tasks = TaskOwner("stats")
        self._idle = asyncio.Event()
        self._idle.set()

    def __len__(self) -> int:
        return len(self._subs)

    @property
    def streams(self) -> int:
        """How many running sandboxes are followed (each by one engine stats stream)."""
        return len(self._followed)

    @property
    def tasks(self) -> int:
        """How many of the sampler's tasks (the publisher, the streams' readers) still run."""
        return self._tasks.running

    # -- subscribers ------------------------------------------------------------------------------

    def subscribe(self, user_id: str | None) -> StatsSubscription:
        sub = StatsSubscription(user_id)
        self._subs.add(sub)
        self._idle.clear()
        if self._runner is None:
            self._runner = self._tasks.spawn(self._run(), "stats-sampler")
        return sub

    def unsubscribe(self, sub: StatsSubscription) -> None:
        self._subs.discard(sub)
        if self._subs:
            return
        self._idle.set()
        if self._runner is not None:
            self._runner.cancel()
            self._runner = None
        for db_id in list(self._followed):
            self._unfollow(db_id)

    def message_for(self, sub: StatsSubscription) -> str:
        """The message ``sub`` would get now (its first one, sent at once)."""
        return self._messages([sub])[sub.user_id]

    def latest(self, db_id: str) -> Sample | None:
        """The latest sample of a sandbox when it is fresh, else None."""
        entry = self._latest.get(db_id)
        if entry is None or time.monotonic() - entry[1] > FRESH_S:
            return None
        return entry[0]

    async def sample_of(self, row: Container) -> Sample | None:
        """One sample of a running sandbox: the sampler's latest when it is fresh, else one
        asked of the engine (about a second). None when the sandbox does not run."""
        if row.docker_id is None:
            return None
        fresh = self.latest(row.id)
        if fresh is not None and fresh.docker_id == row.docker_id:
            return replace(fresh, name=row.name)
        try:
            raw = await self._docker.stats_once(row.engine, row.docker_id)
        except DockerNotFound:
            return None
        usage = usage_of(raw)
        if usage is None:
            return None
        return Sample(row.id, row.docker_id, row.name, row.user_id, usage, iso(utcnow()) or "")

    async def close_all(self, code: int, reason: str, timeout_s: float) -> None:
        """Close every subscriber and wait (bounded) for their connections to end."""
        for sub in list(self._subs):
            sub.close(code, reason)
        if self._subs:
            try:
                async with asyncio.timeout(timeout_s):
                    await self._idle.wait()
            except TimeoutError:
                log.warning("%d stats subscribers did not close in time", len(self._subs))

    async def close(self) -> None:
        await self._tasks.close()
        self._runner = None
        self._followed.clear()
        self._latest.clear()

    # -- following the running sandboxes ----------------------------------------------------------

    def on_event(self, event: Event) -> None:
        """The ``EventLog`` listener: open a stream when a sandbox starts (or is rebuilt under a
        new Docker ID), close it when it stops or goes. Never waits."""
        if self._runner is None or event.type not in CONTAINER_EVENTS:
            return
        c = event.container
        db_id, docker_id = c.get("db_id"), c.get("id")
        if not isinstance(db_id, str) or not isinstance(docker_id, str):
            return
        running = event.type != EventType.CONTAINER_DELETED and c.get("status") in RUNNING_STATUSES
        engine = c.get("engine")
        if running and docker_id != db_id and isinstance(engine, str):
            self._follow(db_id, docker_id, event.user_id, str(c.get("name") or ""), engine)
        else:
            self._unfollow(db_id)

    async def _run(self) -> None:
        """Resync now and every RESYNC_S; publish every interval."""
        resynced = float("-inf")
        while True:
            if time.monotonic() - resynced >= RESYNC_S:
                resynced = time.monotonic()
                try:
                    await self._resync()
                except Exception:
                    log.exception("reading the running sandboxes for stats failed")
            await asyncio.sleep(self.interval_s)  # the publishing period, not synchronisation
            self._publish()

    async def _resync(self) -> None:
        # Shielded: the runner is cancelled when the last subscriber leaves, often during this
        # first read. A query cancelled half-way invalidates its aiosqlite connection, whose
        # shielded close can then outlive the loop (a test's teardown hung on it); the read
        # finishes on its own and hands its connection back, and the rest is skipped.
        rows = await asyncio.shield(self._rows.with_sandbox(RUNNING_STATUSES))
        running = {row.db_id for row in rows}
        for db_id in [d for d in self._followed if d not in running]:
            self._unfollow(db_id)
        for row in rows:
            self._follow(row.db_id, row.docker_id, row.user_id, row.name, row.engine)

    def _follow(self, db_id: str, docker_id: str, user_id: str, name: str, engine: str) -> None:
        current = self._followed.get(db_id)
        if current is not None and current.docker_id == docker_id:
            current.name = name  # a rename
            return
        self._unfollow(db_id)
        followed = _Followed(db_id, docker_id, user_id, name, engine)
        self._followed[db_id] = followed
        followed.task = self._tasks.spawn(self._read(followed), f"stats-{docker_id[:12]}")

    def _unfollow(self, db_id: str) -> None:
        followed = self._followed.pop(db_id, None)
        self._latest.pop(db_id, None)
        if followed is not None and followed.task is not None:
            followed.task.cancel()

    async def _read(self, followed: _Followed) -> None:
        """Read one sandbox's stream, keeping its latest sample, until it stops or is closed."""
        previous: dict[str, Any] | None = None
        try:
            async for raw in self._docker.stats_stream(followed.engine, followed.docker_id):
                if is_stopped(raw):
                    return  # its stop (or removal) arrives as an event; a resync would see it
                usage = usage_of(raw, previous)
                previous = raw
                if usage is not None and self._followed.get(followed.db_id) is followed:
                    sample = Sample(
                        followed.db_id,
                        followed.docker_id,
                        followed.name,
                        followed.user_id,
                        usage,
                        iso(utcnow()) or "",
                    )
                    self._latest[followed.db_id] = (sample, time.monotonic())
        except (DockerError, DockerUnavailable) as exc:
            log.debug("the stats stream of %s ended: %s", followed.docker_id[:12], exc)
        finally:
            if self._followed.get(followed.db_id) is followed:
                del self._followed[followed.db_id]
                self._latest.pop(followed.db_id, None)

    # -- publishing -------------------------------------------------------------------------------

    def _publish(self) -> None:
        subs = list(self._subs)
        messages = self._messages(subs)
        for sub in subs:
            sub.offer(messages[sub.user_id])

    def _messages(self, subs: list[StatsSubscription]) -> dict[str | None, str]:
        """One serialized message per audience (a user, or everyone), shared by its subscribers."""
        stale = time.monotonic() - max(3 * self.interval_s, 5.0)
        fresh = sorted(
            (sample for sample, seen in self._latest.values() if seen >= stale),
            key=lambda s: (s.name, s.db_id),
        )
        stamp = iso(utcnow())
        messages: dict[str | None, str] = {}
        for sub in subs:
            if sub.user_id in messages:
                continue
            mine = [s.as_json() for s in fresh if sub.user_id in (None, s.user_id)]
            messages[sub.user_id] = wire({"type": "stats", "stats": mine, "timestamp": stamp})
        return messages
